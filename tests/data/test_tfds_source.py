"""tensorflow-datasets splits as training data (``facenet_tf.data.tfds_source``): features found or named, the split
indexed once, identity-balanced batches read by offset (resumable, excluded identities never read), and one-line
errors naming the flag. The datasets are prepared here from synthetic images; nothing is downloaded."""

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from facenet_tf.data import tfds_lfw  # noqa: E402
from facenet_tf.data.sampling import BatchComposition  # noqa: E402
from facenet_tf.data.tfds_source import (TfdsSourceError, decode_images, index_split, is_tfds_source,  # noqa: E402
                                         open_split, parse_source, record_offsets, tfds_training_dataset)
from tests.train.conftest import make_tree  # noqa: E402


class OddFaces(tfds.core.GeneratorBasedBuilder):
    """Two images, several label-like features (text and integer), no supervised keys: every choice is ambiguous."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "photo": tfds.features.Image(shape=(None, None, 3)), "thumb": tfds.features.Image(shape=(None, None, 3)),
            "person": tfds.features.Text(), "number": np.int64, "score": np.float32}))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(12):
            image = np.full((20, 16, 3), 20 * (i % 4), np.uint8)
            yield i, {"photo": image, "thumb": image[:8], "person": f"person_{'dcba'[i % 4]}", "number": i % 4,
                      "score": 0.5}


class NoLabelFaces(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3)), "score": np.float32}))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        yield 0, {"image": np.zeros((8, 8, 3), np.uint8), "score": 1.0}


class NoImageFaces(NoLabelFaces):
    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "embedding": tfds.features.Tensor(shape=(4,), dtype=np.float32), "label": tfds.features.ClassLabel(
                num_classes=2)}))

    def _generate_examples(self):
        yield 0, {"embedding": np.zeros(4, np.float32), "label": 1}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """lfw_local prepared from an LFW-like tree (8 people x 4 images; View 1 test names id_00..id_02), and the
    three datasets above."""
    root = tmp_path_factory.mktemp("lfw")
    make_tree(root / "lfw-deepfunneled", identities=8, images=4)
    (root / "pairsDevTest.txt").write_text("1\nid_00\t1\t2\nid_01\t1\tid_02\t1\n")
    data_dir = tmp_path_factory.mktemp("tfds")
    tfds_lfw.prepare(root, data_dir)
    for builder in (OddFaces, NoLabelFaces, NoImageFaces):
        builder(data_dir=str(data_dir)).download_and_prepare()
    return data_dir


def test_source_syntax():
    assert is_tfds_source("tfds:lfw_local/full") and not is_tfds_source("/data/lfw") and not is_tfds_source(None)
    assert parse_source("tfds:some_set/config:1.0.0/train[:90%]") == ("some_set/config:1.0.0", "train[:90%]")
    with pytest.raises(TfdsSourceError, match=r"^--data_dir=tfds:lfw_local: expected tfds:NAME/SPLIT"):
        parse_source("tfds:lfw_local")


def test_lfw_local_features_index_and_offsets(data_dir):
    split = open_split("tfds:lfw_local/full", data_dir)
    assert (split.image_feature, split.label_feature, split.label_kind) == ("image", "label", "class_label")
    assert split.class_names == tuple(f"id_{i:02d}" for i in range(8))
    index = index_split(split)
    assert index.counts() == {"images": 32, "identities": 8, "identities_with_2_or_more_images": 8}
    assert np.bincount(index.labels).tolist() == [4] * 8
    offsets, lengths = record_offsets(split.shards[0][0])
    assert offsets.size == 32 and (index.offsets == offsets).all() and (index.lengths == lengths).all()
    # a record read by its offset is the example tfds reads at that position, the image and its label
    first = next(iter(tfds.as_numpy(tfds.builder("lfw_local", data_dir=str(data_dir)).as_dataset(
        split="full", shuffle_files=False))))
    assert int(first["label"]) == index.labels[0]
    assert (decode_images(index, [0])[0] == first["image"]).all()
    view1 = index_split(open_split("tfds:lfw_local/train_view1", data_dir))  # the builder's own split
    assert sorted({view1.names[label] for label in view1.labels}) == [f"id_{i:02d}" for i in range(3, 8)]
    half = index_split(open_split("tfds:lfw_local/full[:50%]", data_dir))  # slices are read as tfds reads them
    assert (half.labels == index.labels[:16]).all() and (half.offsets == index.offsets[:16]).all()


def test_batches_are_identity_balanced_resumable_and_never_hold_excluded_identities(data_dir):
    index = index_split(open_split("tfds:lfw_local/full", data_dir))
    kept, n_excluded = index.without({"id_00", "id_01", "nobody"})
    assert n_excluded == 2 and kept.counts()["identities"] == 6
    composition = BatchComposition(2, 3, 2)

    def batches(start, n):
        return [(images.numpy(), labels.numpy()) for images, labels in
                tfds_training_dataset(kept, (40, 32), composition, seed=3, start_step=start).take(n)]

    run = batches(0, 3)
    for images, labels in run:
        assert images.shape == (8, 40, 32, 3) and images.dtype == np.float32
        assert 0 <= images.min() <= images.max() <= 255
        assert labels[0] == labels[1] == labels[2] != labels[3] == labels[4] == labels[5]
        assert not set(labels[6:]) & set(labels[:6]) and not {0, 1} & set(labels)
    resumed = batches(2, 1)  # step 2 read from a fresh start: the batch an uninterrupted run saw
    assert (resumed[0][1] == run[2][1]).all() and np.allclose(resumed[0][0], run[2][0])


def test_text_labels_and_features_named_when_ambiguous(data_dir):
    with pytest.raises(TfdsSourceError, match=r"^--tfds_image_feature: tfds:odd_faces/train has several image "
                                              r"features \(photo, thumb\); name one\.$"):
        open_split("tfds:odd_faces/train", data_dir)
    with pytest.raises(TfdsSourceError, match=r"^--tfds_label_feature: .* several label features \(person, number\)"):
        open_split("tfds:odd_faces/train", data_dir, image_feature="photo")
    with pytest.raises(TfdsSourceError, match=r"^--tfds_label_feature=score: not a label feature of "
                                              r"tfds:odd_faces/train \(label features: person, number;"):
        open_split("tfds:odd_faces/train", data_dir, image_feature="photo", label_feature="score")
    by_name = index_split(open_split("tfds:odd_faces/train", data_dir, image_feature="photo", label_feature="person"))
    assert by_name.names == ("person_a", "person_b", "person_c", "person_d")  # numbered by sorted name
    assert by_name.counts()["identities"] == 4 and by_name.without({"person_a"})[0].counts()["images"] == 9
    by_number = index_split(open_split("tfds:odd_faces/train", data_dir, "photo", "number"))
    assert by_number.names is None and by_number.without(())[1] == 0
    half, three = by_number.subset(0.5, seed=1), by_number.subset(0.75, seed=1)  # by label number: no names
    assert half.counts()["identities"] == 2 and three.counts()["identities"] == 3
    assert set(half.labels) < set(three.labels) and by_number.subset(1, seed=1) is by_number
    with pytest.raises(TfdsSourceError, match=r"^--exclude_pairs: the label feature 'number' of tfds:odd_faces/train "
                                              r"is an integer without names"):
        by_number.without({"person_a"})


@pytest.mark.parametrize("source,data,message", [
    ("tfds:no_such_faces/train", None, r"--data_dir=tfds:no_such_faces/train: unknown tensorflow-datasets dataset "
                                       r"'no_such_faces'"),
    ("tfds:lfw_local/full", "empty", r"--data_dir=tfds:lfw_local/full: 'lfw_local' 1\.1\.0 is not prepared in "
                                     r"'.*empty' \(read with download=False\)"),
    ("tfds:lfw_local/test", None, r"--data_dir=tfds:lfw_local/test: no split 'test' in lfw_local \(splits: full, "
                                  r"train_view1"),
    ("tfds:no_label_faces/train", None, r"--data_dir=tfds:no_label_faces/train: no label feature \(features: image, "
                                        r"score\); name one with --tfds_label_feature"),
    ("tfds:no_image_faces/train", None, r"--data_dir=tfds:no_image_faces/train: no image feature \(features: "
                                        r"embedding, label\); name one with --tfds_image_feature"),
])
def test_errors_are_one_line_naming_the_flag(data_dir, tmp_path, source, data, message):
    where = tmp_path / data if data else data_dir
    where.mkdir(exist_ok=True)
    with pytest.raises(TfdsSourceError, match=rf"^{message}") as raised:
        open_split(source, where)
    assert "\n" not in str(raised.value)
    assert not list(where.rglob("*.tfrecord*")) or not data  # read with download=False: nothing prepared

