"""align_image / align_images: the modes on real LFW images, fallbacks, bad input, settings."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from facenet_tf.align import (AlignConfig, AlignInfo, ImageReadError, align_image, align_images, center_crop,
                              crop_face, get_detector, make_config, read_image)


def _write_rgb(path, rgb: np.ndarray) -> None:
    ok, encoded = cv2.imencode(path.suffix, rgb[:, :, ::-1] if rgb.ndim == 3 and rgb.shape[2] == 3 else rgb)
    assert ok
    path.write_bytes(encoded.tobytes())


# --- configuration ------------------------------------------------------------------------------------------------

def test_config_validation_and_overrides():
    with pytest.raises(ValueError, match=r"unknown alignment mode 'funnel'.*center.*detect.*landmarks"):
        AlignConfig(mode="funnel")
    for bad in (dict(margin=-0.5), dict(crop_size=0), dict(crop_size=160.5), dict(selection="leftmost"),
                dict(min_relative_size=2.0), dict(min_face_size=5), dict(thresholds=(0.6, 0.7)), dict(output_size=(0, 10))):
        with pytest.raises(ValueError):
            AlignConfig(**bad)
    config = make_config(None, mode="center", output_size=(140, 116), margin=None)
    assert config.output_size == (140, 116) and config.margin == AlignConfig().margin  # None keeps the default
    assert make_config(config, crop_size=150).crop_size == 150 and make_config(config, crop_size=150).mode == "center"
    assert AlignConfig(output_size=96).output_size == (96, 96)
    with pytest.raises(TypeError, match=r"unknown alignment settings \['margins'\].*'margin'"):
        align_images([], "center", margins=0.2, cache=False, progress=False)
    with pytest.raises(ValueError, match="on_error"):
        align_images([], "center", on_error="ignore", cache=False, progress=False)


def test_cache_settings_leave_out_what_does_not_matter():
    center = AlignConfig(mode="center")
    assert center.cache_settings() == dataclass_replace_settings(center, margin=0.9, selection="largest")
    assert center.cache_settings() != dataclass_replace_settings(center, crop_size=150)
    detect = AlignConfig(mode="detect")
    assert detect.cache_settings() != dataclass_replace_settings(detect, margin=0.1)
    assert detect.cache_settings() != dataclass_replace_settings(detect, min_face_size=40)
    # davidsandberg's recipe settings are keys only when set, so crops cached before they existed stay valid
    assert "margin_pixels" not in detect.cache_settings() and "prepared_size" not in detect.cache_settings()
    assert detect.cache_settings() != dataclass_replace_settings(detect, margin_pixels=44)
    assert dataclass_replace_settings(detect, prepared_size=182) != dataclass_replace_settings(detect, prepared_size=190)
    for bad in (dict(margin_pixels=-1), dict(prepared_size=150)):  # 150 < the 160 output
        with pytest.raises(ValueError):
            AlignConfig(**bad)


def dataclass_replace_settings(config: AlignConfig, **changes) -> dict:
    return make_config(config, **changes).cache_settings()


def test_align_info_json_round_trip():
    info = AlignInfo(path="a.jpg", mode="detect", method="detect", fallback=False, image_size=(250, 250),
                     crop_box=(1, 2, 3, 4), box=(1.5, 2.5, 3.5, 4.5), confidence=0.99,
                     landmarks=((1.0, 2.0),) * 5, num_faces=2, from_cache=False)
    assert AlignInfo.from_json(info.to_json()) == info
    assert AlignInfo.from_json(info.to_json(), from_cache=True).from_cache


# --- real LFW images ------------------------------------------------------------------------------------------------

def test_center_mode_is_the_fixed_centre_crop(lfw_images):
    images, infos = align_images(lfw_images, "center", 160, crop_size=160, cache=False, progress=False)
    assert images.shape == (len(lfw_images), 160, 160, 3) and images.dtype == np.uint8
    for path, crop, info in zip(lfw_images, images, infos):
        np.testing.assert_array_equal(crop, read_image(path)[45:205, 45:205])
        assert (info.method, info.fallback, info.num_faces) == ("center", False, None)
        assert info.crop_box == (45, 45, 205, 205)
    again, _ = align_images(lfw_images, "center", 160, crop_size=160, cache=False, progress=False)
    np.testing.assert_array_equal(images, again)
    tall, _ = align_images(lfw_images[:1], "center", (140, 116), cache=False, progress=False)
    np.testing.assert_array_equal(tall[0], center_crop(read_image(lfw_images[0]), (140, 116), 160))


@pytest.mark.parametrize("output_size", [(160, 160), (140, 116)])
def test_detect_mode_crops_the_central_face(lfw_images, output_size):
    result = align_images(lfw_images, "detect", output_size, cache=False, progress=False, batch_size=3)
    assert result.images.shape == (len(lfw_images), *output_size, 3)
    assert result.fallback_count == 0 and result.detected == len(lfw_images)
    for path, crop, info in zip(lfw_images, result.images, result.infos):
        assert (info.method, info.fallback, info.num_faces, info.path) == ("detect", False, 1, str(path))
        x1, y1, x2, y2 = info.box
        assert abs((x1 + x2) / 2 - 125) < 25 and abs((y1 + y2) / 2 - 125) < 25
        # The crop is the box grown by margin 0.3 of sqrt(w·h), clipped, resized.
        pad = 0.3 * math.sqrt((x2 - x1) * (y2 - y1)) / 2
        left, top, right, bottom = info.crop_box
        assert left == math.floor(x1 - pad) and bottom == math.ceil(y2 + pad)
        np.testing.assert_array_equal(crop, crop_face(read_image(path), info.box, output_size, margin=0.3))

    # One image at a time gives the same crops as the batch.
    single, info = align_image(lfw_images[2], "detect", output_size)
    np.testing.assert_array_equal(single, result.images[2])
    assert info.box == result.infos[2].box


def test_davidsandberg_recipe_margin_in_pixels_then_the_centre_of_a_larger_resize(lfw_images):
    """margin_pixels=44, prepared_size=182, output 160: the box grown by 22 px a side, resized to 182×182, and
    rows/columns 11..170 of it kept (davidsandberg/facenet's align_dataset_mtcnn + facenet.crop)."""
    from facenet_tf.align.geometry import resize

    result = align_images(lfw_images[:2], "detect", 160, margin_pixels=44, prepared_size=182, cache=False,
                          progress=False)
    for path, crop, info in zip(lfw_images[:2], result.images, result.infos):
        x1, y1, x2, y2 = info.box
        left, top, right, bottom = info.crop_box
        assert (left, top) == (max(0, math.floor(x1 - 22)), max(0, math.floor(y1 - 22)))
        assert (right, bottom) == (min(250, math.ceil(x2 + 22)), min(250, math.ceil(y2 + 22)))
        prepared = resize(read_image(path)[top:bottom, left:right], (182, 182))
        np.testing.assert_array_equal(crop, prepared[11:171, 11:171])


def test_landmarks_mode_levels_the_eyes(lfw_images):
    image = read_image(lfw_images[0])
    rotation = cv2.getRotationMatrix2D((125.0, 125.0), 20.0, 1.0)  # tilt the head by 20°
    tilted = cv2.warpAffine(image, rotation, (250, 250), borderMode=cv2.BORDER_REFLECT)
    detector = get_detector()
    eyes_before = detector.detect(tilted)[0].landmarks[:2]
    assert abs(eyes_before[0, 1] - eyes_before[1, 1]) > 10  # clearly tilted
    crop, info = align_image(tilted, "landmarks", 160, margin=0.3)
    assert crop.shape == (160, 160, 3) and info.method == "landmarks" and info.crop_box is None
    eyes_after = detector.detect(crop)[0].landmarks[:2]
    assert abs(eyes_after[0, 1] - eyes_after[1, 1]) < 3  # level after the warp
    tall, _ = align_image(tilted, "landmarks", (140, 116))
    assert tall.shape == (140, 116, 3)


def test_images_without_a_face_fall_back_to_the_centre_crop_and_are_counted(tmp_path, lfw_images):
    gray, noise = tmp_path / "gray.png", tmp_path / "noise.png"
    _write_rgb(gray, np.full((250, 250, 3), 128, dtype=np.uint8))
    _write_rgb(noise, np.random.default_rng(0).integers(0, 256, (250, 250, 3), dtype=np.uint8))
    result = align_images([gray, lfw_images[0], noise], "detect", 160, cache=False, progress=False)
    assert result.fallback_count == 2
    assert result.fallbacks == [str(gray), str(noise)]
    for index in (0, 2):
        info = result.infos[index]
        assert (info.method, info.fallback, info.num_faces, info.box) == ("center", True, 0, None)
    np.testing.assert_array_equal(result.images[2], center_crop(read_image(noise), 160, 160))
    assert not result.infos[1].fallback and result.infos[1].method == "detect"
    assert "2 centre-crop fallbacks" in result.summary()


# --- bad input ----------------------------------------------------------------------------------------------------

@pytest.fixture
def mixed_files(tmp_path, lfw_images):
    """Readable odd formats and unreadable files, in a known order."""
    face = read_image(lfw_images[0])
    files = {
        "good": lfw_images[0],
        "missing": tmp_path / "missing.jpg",
        "corrupt": tmp_path / "corrupt.jpg",
        "text": tmp_path / "text.jpg",
        "gray": tmp_path / "gray.png",
        "rgba": tmp_path / "rgba.png",
        "tiny": tmp_path / "tiny.png",
    }
    files["corrupt"].write_bytes(np.random.default_rng(0).bytes(5000))
    files["text"].write_text("not an image")
    _write_rgb(files["gray"], cv2.cvtColor(face, cv2.COLOR_RGB2GRAY))
    bgra = np.dstack([face[:, :, ::-1], np.full(face.shape[:2], 77, dtype=np.uint8)])
    _write_rgb(files["rgba"], bgra)
    _write_rgb(files["tiny"], np.full((5, 5, 3), 200, dtype=np.uint8))
    return files


def test_unreadable_image_raises_naming_it(mixed_files, counting_detector):
    with pytest.raises(ImageReadError, match="corrupt.jpg"):
        align_images([mixed_files["good"], mixed_files["corrupt"]], "detect", cache=False, progress=False,
                     detector=counting_detector)
    with pytest.raises(ImageReadError, match="missing.jpg.*no such file"):
        align_images([mixed_files["missing"]], "center", cache=False, progress=False)


@pytest.mark.parametrize("cache", [False, True])
def test_skip_leaves_out_unreadable_images_and_reports_them(mixed_files, counting_detector, cache, tmp_path):
    order = ["good", "missing", "corrupt", "gray", "text", "rgba", "tiny"]
    result = align_images([mixed_files[name] for name in order], "detect", 160, on_error="skip", cache=cache,
                          cache_root=tmp_path / "cache", progress=False, detector=counting_detector)
    assert result.images.shape == (3, 160, 160, 3)
    assert list(result.indices) == [0, 3, 5]
    assert [info.path for info in result.infos] == [str(mixed_files[n]) for n in ("good", "gray", "rgba")]
    skipped = dict(result.skipped)
    assert list(skipped) == [str(mixed_files[n]) for n in ("missing", "corrupt", "text", "tiny")]
    assert "no such file" in skipped[str(mixed_files["missing"])]
    assert "5×5" in skipped[str(mixed_files["tiny"])]
    gray_crop = result.images[1]
    assert np.array_equal(gray_crop[:, :, 0], gray_crop[:, :, 1])  # grayscale stays gray, as 3 channels
    np.testing.assert_array_equal(result.images[2], result.images[0])  # the alpha channel is dropped
    assert "4 skipped" in result.summary()
