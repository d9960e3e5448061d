"""Crop geometry with hand-derived expectations (no detector involved)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from facenet_tf.align import (align_by_landmarks, center_crop, center_crop_region, crop_face, face_region,
                              landmark_template, normalize_size, similarity_transform)


def _ramp(height: int, width: int) -> np.ndarray:
    """An image whose pixel (y, x) is (y, x, 0): a crop's content tells where it came from."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([ys, xs, np.zeros_like(xs)], axis=-1).astype(np.uint8)


def test_normalize_size():
    assert normalize_size(160) == (160, 160)
    assert normalize_size((140, 116)) == (140, 116)
    for bad in (0, (0, 5), (1, 2, 3), "big", None):
        with pytest.raises(ValueError):
            normalize_size(bad)


def test_center_crop_region_square_on_lfw_thumbnail():
    # (250 - 160) / 2 = 45 on each side.
    assert center_crop_region((250, 250, 3), 160, 160) == (45, 45, 205, 205)
    # An odd leftover rounds toward the top-left: (250 - 151) // 2 = 49.
    assert center_crop_region((250, 250), (96, 96), 151) == (49, 49, 200, 200)


def test_center_crop_region_non_square_matches_output_aspect():
    # NNS2 is 140×116 (H×W): the crop is 160 high and round(160·116/140) = 133 wide; (250-133)//2 = 58.
    assert center_crop_region((250, 250), (140, 116), 160) == (58, 45, 191, 205)
    # A wide output: 100×200 → the crop is 160 wide and 80 high.
    assert center_crop_region((250, 250), (100, 200), 160) == (45, 85, 205, 165)


def test_center_crop_region_shrinks_to_fit_small_images():
    # 120×90 (H×W) image, 160 requested: scaled by 90/160 → 90×90, centred vertically.
    assert center_crop_region((120, 90), 160, 160) == (0, 15, 90, 105)


def test_center_crop_content_and_determinism():
    image = _ramp(250, 250)
    crop = center_crop(image, 160, 160)
    assert crop.shape == (160, 160, 3) and crop.dtype == np.uint8
    # No resize needed: the crop is exactly rows/columns 45..204.
    np.testing.assert_array_equal(crop, image[45:205, 45:205])
    np.testing.assert_array_equal(center_crop(image, 160, 160), crop)
    assert center_crop(image, (140, 116), 160).shape == (140, 116, 3)


def test_face_region_margin_rule():
    # Box 90×160 at (100, 50): face size s = sqrt(90·160) = 120; margin 0.2 adds 24 px in total, 12 per side.
    assert face_region((100, 50, 190, 210), (400, 400), margin=0.2) == (88, 38, 202, 222)
    assert face_region((100, 50, 190, 210), (400, 400), margin=0.0) == (100, 50, 190, 210)
    # Clipped to the image near the top-left corner.
    assert face_region((5, 5, 95, 165), (400, 400), margin=0.2) == (0, 0, 107, 177)
    # A margin in pixels (davidsandberg's --margin 44): 22 px per side whatever the face size; margin ignored.
    assert face_region((100, 50, 190, 210), (400, 400), margin=0.2, margin_pixels=44) == (78, 28, 212, 232)
    assert face_region((10, 5, 95, 165), (400, 400), margin_pixels=44) == (0, 0, 117, 187)


def test_face_region_keep_aspect_widens_to_output_ratio():
    # Grown box: 114 wide × 184 high at x 88..202, y 38..222. Square output → widened to 184 around x = 145.
    assert face_region((100, 50, 190, 210), (400, 400), 0.2, output_size=160, keep_aspect=True) == (53, 38, 237, 222)
    # Output 100×200 (H×W): the height stays 184, the width becomes 368 around x = 545.
    assert face_region((500, 50, 590, 210), (400, 1000), 0.2, output_size=(100, 200),
                       keep_aspect=True) == (361, 38, 729, 222)


def test_face_region_rejects_bad_boxes():
    with pytest.raises(ValueError, match="x2 > x1"):
        face_region((50, 50, 40, 80), (100, 100))
    with pytest.raises(ValueError, match="does not overlap"):
        face_region((500, 500, 600, 600), (100, 100), margin=0.0)
    with pytest.raises(ValueError, match="margin"):
        face_region((10, 10, 50, 50), (100, 100), margin=-0.1)


def test_crop_face_takes_the_region():
    image = _ramp(250, 250)
    crop = crop_face(image, (100, 50, 190, 210), (184, 114), margin=0.2)
    assert crop.shape == (184, 114, 3)
    # Region (88, 38, 202, 222) has exactly the output size, so the crop is the region itself.
    np.testing.assert_array_equal(crop, image[38:222, 88:202])
    assert crop_face(image, (100, 50, 190, 210), (140, 116)).shape == (140, 116, 3)


def test_similarity_transform_recovers_a_known_transform():
    rng = np.random.default_rng(1)
    source = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = math.radians(17.0), 1.7, np.array([12.0, -30.0])
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    target = source @ (scale * rotation).T + shift
    matrix = similarity_transform(source, target)
    np.testing.assert_allclose(matrix[:, :2], scale * rotation, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)
    # A reflected point set is fitted by a proper rotation, never a reflection.
    mirrored = similarity_transform(source, source * np.array([-1.0, 1.0]))
    assert np.linalg.det(mirrored[:, :2]) > 0


def test_landmark_template_framing():
    np.testing.assert_allclose(landmark_template(112), [[38.2946, 51.6963], [73.5318, 51.5014],
                                                        [56.0252, 71.7366], [41.5493, 92.3655],
                                                        [70.7299, 92.2041]])
    # margin 1 halves the distances from the centre.
    np.testing.assert_allclose(landmark_template(112, margin=1.0) - 56.0, (landmark_template(112) - 56.0) / 2)
    # Non-square output: scaled by the shorter side, centred in the taller one.
    tall = landmark_template((140, 116))
    np.testing.assert_allclose(tall, (landmark_template(112) - 56.0) * 116 / 112 + [58.0, 70.0])


def test_align_by_landmarks_puts_rotated_dots_on_the_template():
    # Five white dots on a black image at the template (160 px, margin 0.3) rotated by 25°, scaled 1.4, shifted.
    size, margin = 160, 0.3
    template = landmark_template(size, margin)
    angle = math.radians(25.0)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    points = (template - 80.0) @ (1.4 * rotation).T + [200.0, 170.0]
    image = np.zeros((340, 400, 3), dtype=np.uint8)
    for x, y in points:
        cv2.circle(image, (int(round(x)), int(round(y))), 4, (255, 255, 255), -1)
    aligned = align_by_landmarks(image, points, size, margin)
    assert aligned.shape == (160, 160, 3)
    for x, y in template:  # every dot lands on its template position, eyes level
        assert aligned[int(round(y)), int(round(x))].min() > 200
    assert aligned.mean() < 20  # and nothing else is bright


def test_shift_moves_the_box_by_fractions_of_the_face_size_before_the_margin():
    box, shape = (100, 50, 190, 210), (400, 400)  # s = sqrt(90 * 160) = 120
    base = face_region(box, shape, margin=0.2)
    moved = face_region(box, shape, margin=0.2, shift=(0.05, -0.1))  # +6 px right, -12 px up
    assert (moved[0] - base[0], moved[2] - base[2]) == (6, 6) and (moved[1] - base[1], moved[3] - base[3]) == (-12, -12)
    assert face_region(box, shape, margin=0.2, shift=(0, 0)) == base
