"""Faces in photos with a stand-in detector (no TensorFlow): scaling, filters, order, selection, skipped files."""

import cv2
import numpy as np
import pytest

from facenet_tf.align import Face
from facenet_tf.recognition import find_faces, list_photos, load_faces, save_faces, scan_photos
from facenet_tf.recognition.outputs import foreign_files, is_replaceable_output, write_manifest


class FakeDetector:
    """Returns fixed faces, given in the coordinates of the image it is shown (records the shapes it saw)."""

    def __init__(self, faces_by_width):
        self.faces_by_width = faces_by_width
        self.shapes = []
        self.batches = []

    def detect(self, image):
        self.shapes.append(image.shape)
        return [Face(box, confidence, np.zeros((5, 2), np.float32))
                for box, confidence in self.faces_by_width.get(image.shape[1], [])]

    def detect_batch(self, images, batch_size=32):  # the FaceDetector interface: several images, one call
        self.batches.append(len(images))
        return [self.detect(image) for image in images]


def write(path, width=200, height=100, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((height, width, 3), value, np.uint8)
    image[:, : width // 2, 2] = 255  # left half red (BGR on disk), to check crops come from the right place
    cv2.imwrite(str(path), image)
    return path


def test_list_photos_walks_folders_and_keeps_files(tmp_path):
    write(tmp_path / "a" / "x.JPG")
    write(tmp_path / "a" / "sub" / "y.png")
    (tmp_path / "a" / "notes.txt").write_text("not a photo")
    single = write(tmp_path / "z.jpeg")
    photos = list_photos([tmp_path / "a", single, tmp_path / "a" / "x.JPG"])
    assert photos == [tmp_path / "a" / "sub" / "y.png", tmp_path / "a" / "x.JPG", single]
    with pytest.raises(FileNotFoundError, match="missing.jpg' does not exist"):
        list_photos([tmp_path / "missing.jpg"])


def test_scan_lists_link_loops_and_earlier_outputs_and_skips_hidden_files(tmp_path):
    """Regression: symbolic-link loops were skipped without being listed."""
    album = tmp_path / "album"
    write(album / "a.jpg")
    write(album / "trip" / "b.jpg")
    (album / "trip" / "back").symlink_to(album, target_is_directory=True)    # a loop through a link
    (album / "self").symlink_to(album / "self")                              # a link to itself
    (album / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")                # a broken link
    write(album / ".hidden.jpg")
    write(album / ".thumbnails" / "c.jpg")
    write(album / "people" / "person_001" / "a_face0.jpg")                   # an earlier run's output
    write_manifest(album / "people", "cluster", ["person_001/a_face0.jpg"])
    scanned = scan_photos([album])
    assert scanned.photos == [album / "a.jpg", album / "trip" / "b.jpg"]
    reasons = dict(scanned.skipped)
    assert "loop" in reasons[str(album / "trip" / "back")]
    assert "loop" in reasons[str(album / "self")]
    assert "broken" in reasons[str(album / "gone.jpg")]
    assert "earlier facenet-tf run" in reasons[str(album / "people")]
    assert len(reasons) == 4


def test_folders_take_every_format_the_reader_decodes_and_images_without_a_suffix(tmp_path):
    """Regression: a folder scan took only .jpg .jpeg .png .bmp .webp, though verify read .pgm, .gif and .tif."""
    from PIL import Image

    from facenet_tf.data.images import read_image

    album = tmp_path / "album"
    album.mkdir()
    picture = Image.fromarray(np.tile(np.arange(64, dtype=np.uint8)[None, :, None], (48, 1, 3)))
    picture.save(album / "a.gif")
    picture.save(album / "b.TIF")
    picture.convert("L").save(album / "c.pgm")
    picture.save(album / "d.ppm")
    picture.save(album / "IMG_0005", format="JPEG")   # no suffix: recognised by its first bytes
    picture.save(album / "f.dat", format="PNG")
    (album / "notes").write_text("P5 is not enough: this is text")
    (album / "readme.txt").write_text("not a photo")
    (album / "g.bin").write_bytes(b"\x00" * 64)
    photos = scan_photos([album]).photos
    assert [p.name for p in photos] == ["IMG_0005", "a.gif", "b.TIF", "c.pgm", "d.ppm", "f.dat"]
    for photo in photos:
        assert read_image(photo).shape == (48, 64, 3), photo


def test_image_format_sniffs_the_first_bytes():
    from facenet_tf.data.images import image_format

    assert image_format(b"\xff\xd8\xff\xe0\x00\x10JFIF") == "jpeg"
    assert image_format(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    assert image_format(b"RIFF\x00\x00\x00\x00WAVEfmt ") is None
    assert image_format(b"P6\n64 48\n255\n") == "pnm"
    assert image_format(b"Plain text") is None
    assert image_format(b"") is None


def test_only_what_a_manifest_lists_is_replaceable(tmp_path):
    out = tmp_path / "people"
    write(out / "person_001" / "a.jpg")
    assert foreign_files(out) == ["person_001/a.jpg"] and not is_replaceable_output(out)
    write_manifest(out, "cluster", ["person_001/a.jpg"])
    assert foreign_files(out) == [] and is_replaceable_output(out)
    (out / "person_001" / "mine.jpg").write_bytes(b"x")
    assert foreign_files(out) == ["person_001/mine.jpg"] and not is_replaceable_output(out)


def test_find_faces_filters_orders_and_scales_back(tmp_path):
    big = write(tmp_path / "big.jpg", width=400, height=200)
    detector = FakeDetector({
        # the 400-px photo is shown to the detector at max_side=200, i.e. half size
        200: [((110, 20, 150, 60), 0.99),   # kept: right face
              ((10, 20, 50, 60), 0.95),     # kept: left face (numbered 0)
              ((60, 20, 64, 24), 0.99),     # 8 px in the original: below min_face_size
              ((60, 50, 100, 90), 0.5)],    # low confidence
    })
    found = find_faces([big], output_size=32, margin=0.0, min_confidence=0.9, min_face_size=20, max_side=200,
                       detector=detector, progress=False)
    assert detector.shapes == [(100, 200, 3)]
    assert [r.face for r in found.records] == [0, 1]
    assert found.records[0].box == pytest.approx((20, 40, 100, 120))
    assert found.records[1].box == pytest.approx((220, 40, 300, 120))
    assert found.crops.shape == (2, 32, 32, 3) and found.crops.dtype == np.uint8
    # the left face lies in the red half of the photo, the right one does not
    assert found.crops[0, ..., 0].mean() > 250 and found.crops[1, ..., 0].mean() < 140
    assert found.faces_of(big) == [0, 1]


def test_find_faces_runs_the_detector_on_chunks_of_photos_in_order(tmp_path):
    """MTCNN sees DETECT_BATCH photos per call (unreadable ones left out), and every photo keeps its own faces."""
    from facenet_tf.recognition.photos import DETECT_BATCH

    photos = [write(tmp_path / f"p{i:02d}.jpg", width=200 + 20 * (i % 2)) for i in range(DETECT_BATCH + 4)]
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    detector = FakeDetector({200: [((10, 10, 60, 60), 0.99)], 220: []})
    found = find_faces([*photos[:3], tmp_path / "broken.jpg", *photos[3:]], detector=detector, progress=False)
    assert detector.batches == [DETECT_BATCH - 1, 5]
    assert [r.source for r in found.records] == [str(p) for p in photos[::2]]
    assert found.without_faces == [str(p) for p in photos[1::2]] and len(found.unreadable) == 1


def test_find_faces_one_per_photo_and_skipped_files(tmp_path):
    photo = write(tmp_path / "p.jpg")
    empty = write(tmp_path / "empty.jpg", width=300)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    detector = FakeDetector({200: [((10, 10, 40, 40), 0.99), ((100, 10, 180, 90), 0.99)]})
    found = find_faces([broken, photo, empty], faces="largest", output_size=(20, 16), detector=detector,
                       progress=False)
    assert len(found) == 1 and found.records[0].box == pytest.approx((100, 10, 180, 90))
    assert found.crops.shape == (1, 20, 16, 3)
    assert found.photos == [str(photo), str(empty)]
    assert found.without_faces == [str(empty)]
    assert [path for path, _ in found.unreadable] == [str(broken)]
    with pytest.raises(ValueError, match="faces must be one of"):
        find_faces([photo], faces="first", detector=detector)


def test_no_faces_at_all_gives_an_empty_array(tmp_path):
    found = find_faces([write(tmp_path / "p.jpg")], output_size=24, detector=FakeDetector({}), progress=False)
    assert found.crops.shape == (0, 24, 24, 3) and found.records == []


def test_save_and_load_faces(tmp_path):
    photo = write(tmp_path / "p.jpg")
    found = find_faces([photo], detector=FakeDetector({200: [((10, 10, 60, 60), 0.97)]}), progress=False)
    embeddings = np.eye(1, 128, dtype=np.float32)
    path = save_faces(tmp_path / "out" / "faces", found, embeddings, "inception_resnet_v1/msceleb")
    assert path.name == "faces.npz"
    loaded, records, model = load_faces(path)
    np.testing.assert_array_equal(loaded, embeddings)
    assert records == found.records and model == "inception_resnet_v1/msceleb"
    with pytest.raises(ValueError, match="2 embeddings for 1 faces"):
        save_faces(tmp_path / "x.npz", found, np.zeros((2, 128)), "m")
    np.savez(tmp_path / "other.npz", a=np.zeros(1))
    with pytest.raises(ValueError, match="not a faces file"):
        load_faces(tmp_path / "other.npz")
