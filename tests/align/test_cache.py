"""The on-disk cache: hits skip the detector, other settings miss, damaged files are rebuilt, writes are atomic."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from facenet_tf.align import AlignConfig, NpzStore, align_images, get_detector, image_key
from facenet_tf.align import cache as cache_module

from tests.align.conftest import CountingDetector


def _crop_file(root, path, detector, **settings):
    config = AlignConfig(**settings)
    store = NpzStore("crops", config.cache_name, config.cache_settings(detector.settings), root)
    return store.file(image_key(path))


def _detection_file(root, path, detector):
    return NpzStore("detections", detector.settings["detector"], detector.settings, root).file(image_key(path))


def test_image_key_and_settings_hash(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"12345")
    key = image_key(path)
    assert key == image_key(str(path)) and len(key) == 40
    os.utime(path, ns=(1_000_000_000, 2_000_000_000))
    copy = tmp_path / "elsewhere" / "b.bin"
    copy.parent.mkdir()
    copy.write_bytes(b"12345")
    assert image_key(path) == key == image_key(copy)  # a new mtime or another place: the same image
    path.write_bytes(b"12346")
    assert image_key(path) != key  # new contents: a new image
    assert cache_module.settings_hash({"a": 1, "b": [2, 3]}) == cache_module.settings_hash({"b": [2, 3], "a": 1})
    assert cache_module.settings_hash({"a": 1}) != cache_module.settings_hash({"a": 2})
    with pytest.raises(OSError):
        image_key(tmp_path / "missing.jpg")


def test_second_call_hits_the_cache_without_detecting(lfw_images, tmp_path, counting_detector):
    first = align_images(lfw_images, "detect", 160, cache_root=tmp_path, progress=False, detector=counting_detector)
    assert counting_detector.images_processed == len(lfw_images) and first.cache_hits == 0
    assert not any(info.from_cache for info in first.infos)
    second = align_images(lfw_images, "detect", 160, cache_root=tmp_path, progress=False, detector=counting_detector)
    assert counting_detector.images_processed == len(lfw_images)  # not called again
    assert second.cache_hits == len(lfw_images) and second.detected == 0
    np.testing.assert_array_equal(first.images, second.images)
    for a, b in zip(first.infos, second.infos):
        assert b.from_cache and b.box == a.box and b.crop_box == a.crop_box and b.path == a.path
    # The settings are written next to the crops for people to read.
    assert (_crop_file(tmp_path, lfw_images[0], counting_detector).parent.parent / "settings.json").is_file()


def test_changed_settings_miss_the_crop_cache(lfw_images, tmp_path, counting_detector):
    files = lfw_images[:2]
    base = align_images(files, "detect", 160, cache_root=tmp_path, progress=False, detector=counting_detector)
    # Another margin / output size: new crops, but the detections are reused from the detection cache.
    wider = align_images(files, "detect", 160, margin=0.6, cache_root=tmp_path, progress=False,
                         detector=counting_detector)
    smaller = align_images(files, "detect", 96, cache_root=tmp_path, progress=False, detector=counting_detector)
    assert wider.cache_hits == 0 and smaller.cache_hits == 0
    assert counting_detector.images_processed == 2
    assert not np.array_equal(wider.images, base.images) and smaller.images.shape == (2, 96, 96, 3)
    # Another detector (other settings) misses both caches.
    other = CountingDetector(tag="other")
    again = align_images(files, "detect", 160, cache_root=tmp_path, progress=False, detector=other)
    assert again.cache_hits == 0 and other.images_processed == 2
    # Another mode misses; centre mode never runs the detector.
    center = align_images(files, "center", 160, cache_root=tmp_path, progress=False, detector=counting_detector)
    assert center.cache_hits == 0 and counting_detector.images_processed == 2
    assert align_images(files, "center", 160, cache_root=tmp_path, progress=False).cache_hits == 2


def test_a_changed_image_misses(lfw_images, tmp_path, counting_detector):
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(lfw_images[0].read_bytes())
    align_images([copy], "detect", cache_root=tmp_path / "cache", progress=False, detector=counting_detector)
    copy.write_bytes(lfw_images[1].read_bytes())
    os.utime(copy, ns=(10**18, 10**18))
    result = align_images([copy], "detect", cache_root=tmp_path / "cache", progress=False,
                          detector=counting_detector)
    assert result.cache_hits == 0 and counting_detector.images_processed == 2


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong_shape", "missing_info"])
def test_damaged_crop_files_are_ignored_and_rebuilt(lfw_images, tmp_path, counting_detector, damage, caplog):
    files = lfw_images[:3]
    first = align_images(files, "detect", 160, cache_root=tmp_path, progress=False, detector=counting_detector)
    target = _crop_file(tmp_path, files[1], counting_detector)
    assert target.is_file()
    if damage == "garbage":
        target.write_bytes(np.random.default_rng(0).bytes(300))
    elif damage == "truncated":
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif damage == "wrong_shape":
        np.savez(target, crop=np.zeros((10, 10, 3), dtype=np.uint8), info=np.array("{}"))
    else:
        np.savez(target, crop=first.images[1])
    with caplog.at_level(logging.WARNING, logger="facenet_tf.align"):
        second = align_images(files, "detect", 160, cache_root=tmp_path, progress=False, detector=counting_detector)
    assert second.cache_hits == 2 and not second.infos[1].from_cache
    assert any("unusable cache file" in record.getMessage() and target.name in record.getMessage()
               for record in caplog.records)
    np.testing.assert_array_equal(second.images, first.images)
    assert counting_detector.images_processed == 3  # the detection itself came from the detection cache
    third = align_images(files, "detect", 160, cache_root=tmp_path, progress=False, detector=counting_detector)
    assert third.cache_hits == 3  # rebuilt


def test_damaged_detection_file_is_rebuilt(lfw_images, tmp_path, counting_detector):
    files = lfw_images[:2]
    align_images(files, "detect", 160, cache_root=tmp_path, progress=False, detector=counting_detector)
    _detection_file(tmp_path, files[0], counting_detector).write_bytes(b"PK\x03\x04 not really a zip")
    result = align_images(files, "detect", 120, cache_root=tmp_path, progress=False, detector=counting_detector)
    assert result.cache_hits == 0 and result.detected == 1 and counting_detector.images_processed == 3


def test_an_interrupted_write_leaves_no_file(lfw_images, tmp_path, counting_detector, monkeypatch):
    real_savez = np.savez

    def savez_then_interrupt(stream, **arrays):
        stream.write(b"PK\x03\x04 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_module.np, "savez", savez_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        align_images(lfw_images[:1], "center", 160, cache_root=tmp_path, progress=False)
    monkeypatch.setattr(cache_module.np, "savez", real_savez)
    leftovers = [p for p in (tmp_path / "align").rglob("*") if p.is_file() and p.name != "settings.json"]
    assert leftovers == []  # neither a half-written .npz nor a temporary file
    result = align_images(lfw_images[:1], "center", 160, cache_root=tmp_path, progress=False)
    assert result.cache_hits == 0
    assert align_images(lfw_images[:1], "center", 160, cache_root=tmp_path, progress=False).cache_hits == 1


def test_no_cache_writes_nothing(lfw_images, tmp_path, counting_detector):
    align_images(lfw_images[:2], "detect", cache=False, cache_root=tmp_path, progress=False,
                 detector=counting_detector)
    assert not (tmp_path / "align").exists()


def test_real_detector_is_not_run_on_cached_images(lfw_images, tmp_path):
    detector = get_detector()
    first = align_images(lfw_images[:2], "detect", 160, cache_root=tmp_path, progress=False)
    before = detector.images_processed
    second = align_images(lfw_images[:2], "detect", 160, cache_root=tmp_path, progress=False)
    assert detector.images_processed == before and second.cache_hits == 2
    np.testing.assert_array_equal(first.images, second.images)
