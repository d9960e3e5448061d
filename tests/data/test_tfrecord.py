"""Sharded TFRecords: converter (streaming, atomic, bad images skipped), the same from images in memory, and the
identity-balanced streaming reader."""

import json
import logging

import cv2
import numpy as np
import pytest
import tensorflow as tf

from facenet_tf.data.lfw import list_identities
from facenet_tf.data.pipeline import center_crop_box
from facenet_tf.data.sampling import BatchComposition
from facenet_tf.data.tfrecord import (METADATA_FILE, decode_face, encode_image, is_tfrecord_dir, read_metadata,
                                      tfrecord_training_dataset, write_tfrecords, write_tfrecords_from_groups)


def _value(identity: int, image: int) -> int:
    return 20 * identity + image  # flat colour: identity = value // 20 for up to 20 images each


@pytest.fixture()
def tree(tmp_path):
    """6 identities with 1, 2, 3, 5, 7, 9 images; each image a flat colour that encodes (identity, image)."""
    root = tmp_path / "tree"
    for i, n in enumerate([1, 2, 3, 5, 7, 9]):
        person = root / f"person_{i}"
        person.mkdir(parents=True)
        for j in range(n):
            suffix = ".png" if j % 2 else ".jpg"
            cv2.imwrite(str(person / f"person_{i}_{j:04d}{suffix}"), np.full((40, 32, 3), _value(i, j), np.uint8))
    return root


def _records(directory):
    out = []
    for shard in read_metadata(directory)["shards"]:
        for raw in tf.data.TFRecordDataset(str(directory / shard["file"])):
            ex = tf.train.Example.FromString(raw.numpy())
            f = ex.features.feature
            out.append((f["identity"].bytes_list.value[0].decode(), f["label"].int64_list.value[0],
                        len(f["images"].bytes_list.value), [p.decode() for p in f["paths"].bytes_list.value]))
    return out


def test_converter_writes_every_image_once_in_identity_groups(tree, tmp_path):
    out = tmp_path / "records"
    meta = write_tfrecords(list_identities(tree), out, num_shards=3, images_per_record=4, source=str(tree))
    assert is_tfrecord_dir(out) and json.loads((out / METADATA_FILE).read_text()) == meta
    assert meta["images"] == 27 and meta["identities"] == 6 and meta["identities_with_2_or_more_images"] == 5
    records = _records(out)
    assert len(records) == meta["records"] == sum(s["records"] for s in meta["shards"])
    # 9 images with at most 4 per record -> 3 near-equal groups of 3; 7 -> 4 + 3 (near-equal split)
    sizes = sorted(n for name, _, n, _ in records if name == "person_5")
    assert sizes == [3, 3, 3]
    assert sorted(n for name, _, n, _ in records if name == "person_4") == [3, 4]
    paths = sorted(p for *_, ps in records for p in ps)
    assert paths == sorted(str(p.relative_to(tree)) for images in list_identities(tree).values() for p in images)
    labels = {name: label for name, label, _, _ in records}
    assert sorted(labels.values()) == list(range(6))
    assert all(s["records"] > 0 for s in meta["shards"])  # round-robin fills every shard


def test_stored_images_decode_to_the_source_pixels(tree, tmp_path):
    out = tmp_path / "records"
    write_tfrecords(list_identities(tree), out, num_shards=1, images_per_record=16)
    raw = next(iter(tf.data.TFRecordDataset(str(out / read_metadata(out)["shards"][0]["file"]))))
    ex = tf.train.Example.FromString(raw.numpy())
    for data in ex.features.feature["images"].bytes_list.value:
        image = tf.io.decode_image(data, channels=3).numpy()
        assert image.shape == (40, 32, 3) and np.ptp(image) <= 2  # flat colour survives (JPEG within 2 levels)


def test_converter_skips_corrupt_images_once_each_and_lists_them(tree, tmp_path, caplog):
    bad = tree / "person_3" / "person_3_0002.jpg"
    bad.write_bytes(b"\xff\xd8\xff truncated")
    with caplog.at_level(logging.WARNING):
        meta = write_tfrecords(list_identities(tree), tmp_path / "records", num_shards=2)
    assert meta["images"] == 26
    assert [s["file"] for s in meta["skipped"]] == [str(bad)]
    assert len([r for r in caplog.records if str(bad) in r.getMessage()]) == 1


def test_converter_refuses_to_overwrite_and_replaces_atomically(tree, tmp_path, monkeypatch):
    import facenet_tf.data.tfrecord as module

    out = tmp_path / "records"
    write_tfrecords(list_identities(tree), out, num_shards=2)
    with pytest.raises(FileExistsError, match="records"):
        write_tfrecords(list_identities(tree), out, num_shards=2)
    calls = []
    real = module._example

    def failing(*args):  # the conversion dies part-way (disk full, kill, ...)
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(*args)

    monkeypatch.setattr(module, "_example", failing)
    with pytest.raises(OSError, match="disk full"):
        write_tfrecords(list_identities(tree), out, num_shards=3, overwrite=True)
    assert read_metadata(out)["images"] == 27 and len(read_metadata(out)["shards"]) == 2  # the old set survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records", "tree"]  # no temporary directory left
    monkeypatch.setattr(module, "_example", real)
    write_tfrecords(list_identities(tree), out, num_shards=3, overwrite=True)
    assert len(read_metadata(out)["shards"]) == 3 and sorted(p.name for p in tmp_path.iterdir()) == ["records",
                                                                                                       "tree"]


def test_read_metadata_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=METADATA_FILE):
        read_metadata(tmp_path)
    (tmp_path / METADATA_FILE).write_text("{ not json")
    with pytest.raises(ValueError, match="line 1"):
        read_metadata(tmp_path)
    (tmp_path / METADATA_FILE).write_text(json.dumps({"format_version": 1, "shards": [{"file": "x.tfrecord"}]}))
    with pytest.raises(FileNotFoundError, match="x.tfrecord"):
        read_metadata(tmp_path)


def test_decode_face_matches_the_folder_pipeline_crop():
    image = np.random.default_rng(0).integers(0, 256, (90, 70, 3), np.uint8)
    data = tf.io.encode_png(image)
    face = decode_face(data, (24, 20), crop_fraction=0.5).numpy()
    top, left, h, w = center_crop_box(90, 70, 24, 20, 0.5)
    expected = cv2.resize(image[top:top + h, left:left + w], (20, 24), interpolation=cv2.INTER_AREA)
    assert face.shape == (24, 20, 3)
    assert np.abs(face.astype(int) - expected.astype(int)).mean() < 2.0


@pytest.fixture()
def records(tree, tmp_path):
    out = tmp_path / "records"
    write_tfrecords(list_identities(tree), out, num_shards=3, images_per_record=4)
    return out


def _check_batch(images, labels, composition):
    images, labels = images.numpy(), labels.numpy()
    assert images.shape[0] == labels.shape[0] == composition.batch_size
    values = np.round(images[:, 0, 0, 0]).astype(int)
    np.testing.assert_array_equal(values // 20, labels)  # every image carries its own identity's label
    p_k = composition.identities_per_batch * composition.faces_per_identity
    grouped = labels[:p_k]
    assert (np.bincount(grouped) != 1).sum() >= 1  # anchor-positive pairs exist
    assert not np.isin(grouped, [0]).any()  # person_0 has one image: never in the anchor-positive part
    return values


def test_reader_batches_are_identity_balanced_and_labelled(records):
    comp = BatchComposition(2, 3, 2)
    ds = tfrecord_training_dataset(records, (24, 20), comp, seed=1, jitter=0.0, flip=False)
    seen = set()
    for images, labels in ds.take(12):
        assert images.dtype == tf.float32 and images.shape == (8, 24, 20, 3)
        seen |= set(_check_batch(images, labels, comp).tolist())
    assert len(seen) >= 20  # the stream cycles over the whole set (27 images), not a fixed few


def test_reader_resumes_with_the_same_batches(records):
    comp = BatchComposition(2, 3, 2)
    full = [b for b in tfrecord_training_dataset(records, (24, 20), comp, seed=3).take(6)]
    resumed = [b for b in tfrecord_training_dataset(records, (24, 20), comp, seed=3, start_step=4).take(2)]
    for (x1, y1), (x2, y2) in zip(full[4:], resumed):
        np.testing.assert_array_equal(y1.numpy(), y2.numpy())
        np.testing.assert_array_equal(x1.numpy(), x2.numpy())
    other = [b for b in tfrecord_training_dataset(records, (24, 20), comp, seed=4).take(6)]
    assert any(not np.array_equal(a[1].numpy(), b[1].numpy()) for a, b in zip(full, other))


def test_reader_never_yields_excluded_identities(records):
    comp = BatchComposition(2, 2, 1)
    ds = tfrecord_training_dataset(records, (24, 20), comp, seed=0, jitter=0.0, flip=False,
                                   exclude_identities=["person_5", "person_2"])
    for images, labels in ds.take(10):
        assert not np.isin(labels.numpy(), [2, 5]).any()
        np.testing.assert_array_equal(np.round(images.numpy()[:, 0, 0, 0]).astype(int) // 20, labels.numpy())


def test_reader_refuses_a_set_without_positive_pairs(tmp_path):
    tree = tmp_path / "tree"
    for i in range(3):
        (tree / f"p{i}").mkdir(parents=True)
        cv2.imwrite(str(tree / f"p{i}" / "a.png"), np.full((30, 30, 3), 9, np.uint8))
    write_tfrecords(list_identities(tree), tmp_path / "r", num_shards=1)
    with pytest.raises(ValueError, match="at least 2"):
        tfrecord_training_dataset(tmp_path / "r", (24, 20), BatchComposition(2, 2))


def test_max_side_reencodes_large_images_and_keeps_small_ones_as_is(tmp_path):
    tree = tmp_path / "tree"
    (tree / "a").mkdir(parents=True)
    (tree / "b").mkdir(parents=True)
    big = np.random.default_rng(0).integers(0, 256, (200, 100, 3), np.uint8)
    cv2.imwrite(str(tree / "a" / "big.png"), big)
    cv2.imwrite(str(tree / "a" / "small.jpg"), big[:50, :40])
    cv2.imwrite(str(tree / "b" / "small.png"), big[:30, :30])
    write_tfrecords(list_identities(tree), tmp_path / "r", num_shards=1, max_side=80)
    shapes, stored = {}, {}
    for raw in tf.data.TFRecordDataset(str(tmp_path / "r" / read_metadata(tmp_path / "r")["shards"][0]["file"])):
        f = tf.train.Example.FromString(raw.numpy()).features.feature
        for path, data in zip(f["paths"].bytes_list.value, f["images"].bytes_list.value):
            shapes[path.decode()] = tf.io.decode_image(data).shape
            stored[path.decode()] = data
    assert shapes[str(tree / "a" / "big.png")] == (80, 40, 3)
    assert stored[str(tree / "a" / "small.jpg")] == (tree / "a" / "small.jpg").read_bytes()  # stored as-is
    assert stored[str(tree / "b" / "small.png")] == (tree / "b" / "small.png").read_bytes()


def test_groups_from_memory_are_read_like_a_converted_folder(tmp_path):
    """``write_tfrecords_from_groups``: arrays (encoded as JPEG) and encoded bytes, an identity yielded twice keeps
    its label, the reader's batches carry each image's identity; bad input is refused and leaves nothing."""
    def groups():
        for i, n in enumerate([1, 2, 3, 5, 7, 9]):
            images = [np.full((40, 32, 3), _value(i, j), np.uint8) for j in range(n)]
            if i == 4:  # bytes as they are
                images = [encode_image(image) for image in images]
            yield f"person_{i}", images[:4]
            if n > 4:
                yield f"person_{i}", images[4:]

    out = tmp_path / "generated"
    meta = write_tfrecords_from_groups(groups(), out, num_shards=3, images_per_record=4, source="synthetic")
    assert (meta["images"], meta["identities"], meta["identities_with_2_or_more_images"]) == (27, 6, 5)
    assert read_metadata(out) == meta and meta["source"] == "synthetic"
    records = _records(out)
    assert {name: label for name, label, _, _ in records} == {f"person_{i}": i for i in range(6)}
    assert sorted(n for name, _, n, _ in records if name == "person_5") == [2, 3, 4]  # 4 + 5 -> 4, then 3 + 2
    comp = BatchComposition(2, 3, 2)
    for images, labels in tfrecord_training_dataset(out, (24, 20), comp, seed=1, jitter=0.0, flip=False).take(4):
        _check_batch(images, labels, comp)
    with pytest.raises(FileExistsError, match="generated"):
        write_tfrecords_from_groups(groups(), out, num_shards=1)
    with pytest.raises(ValueError, match="identity 'x' is neither JPEG nor PNG"):
        write_tfrecords_from_groups([("x", [b"GIF89a"])], tmp_path / "bad", num_shards=1)
    with pytest.raises(ValueError, match=r"expected a uint8 \(H, W, 3\)"):
        write_tfrecords_from_groups([("x", [np.zeros((4, 4, 3), np.float32)])], tmp_path / "bad", num_shards=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generated"]  # no temporary directory left
