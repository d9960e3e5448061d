"""A tensorflow-datasets builder for a local LFW copy (``manual_dir``), with splits that respect the protocol.

    import facenet_tf.data.tfds_lfw  # registers "lfw_local"
    ds = tfds.load("lfw_local", split="train_view1", data_dir="~/tensorflow_datasets",
                   download_and_prepare_kwargs={"download_config": tfds.download.DownloadConfig(
                       manual_dir="../shared/data/lfw")})

or, once, ``python -m facenet_tf.data.tfds_lfw --manual_dir=../shared/data/lfw --data_dir=~/tensorflow_datasets``
(``prepare``; ``tfds build`` needs apache-beam), then ``experiments/train.py --data_dir=tfds:lfw_local/train_view1``.

Nothing is downloaded: ``manual_dir`` is an LFW root as everywhere in facenet_tf (``lfw-deepfunneled/<Name>/*.jpg``
plus the pairs files). Splits:

* ``full``: every image (``all`` is reserved by tfds);
* ``train_view1``: identities that appear in no pair of View 1 test (``pairsDevTest.txt``) — for model selection;
* ``train_view2``: identities that appear in no pair of View 2 (``pairs.txt``) — before reporting on View 2.

(The ``train_*`` splits are left out when their pairs file is missing.) Features: ``image`` (the JPEG as stored),
``label`` (a ``ClassLabel`` whose names are the identities, sorted: one label per identity over ``full``, so labels
agree between splits, and ``--exclude_pairs`` of a ``--data_dir=tfds:lfw_local/SPLIT`` run matches them by name),
``identity`` (the name again, as text) and ``file`` (``Name/Name_0001.jpg``). Unreadable images are skipped with
one warning naming the file. ``facenet_tf.data.pipeline`` and ``facenet_tf.data.tfrecord`` do not need the builder;
``facenet_tf.data.tfds_source`` reads its splits (and any other prepared tfds dataset's) for training.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import tensorflow_datasets as tfds

from facenet_tf import paths
from facenet_tf.data.images import ImageReadError, read_image
from facenet_tf.data.lfw import list_identities, load_pairs

logger = logging.getLogger(__name__)

SPLIT_EXCLUDES = {"train_view1": "view1_test", "train_view2": "view2"}


class LfwLocal(tfds.core.GeneratorBasedBuilder):
    """LFW (deep-funneled or any variant) from a local directory, with identity-disjoint training splits."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {"1.0.0": "First release: full / train_view1 / train_view2 splits.",
                     "1.1.0": "label is a ClassLabel named by the identities (was int64)."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Place LFW in manual_dir: lfw-deepfunneled/<Name>/<Name>_NNNN.jpg (from http://vis-www.cs.umass.edu/lfw/, "
        "'All images aligned with deep funneling', or the figshare/Kaggle mirrors) and the pairs files "
        "pairsDevTrain.txt, pairsDevTest.txt, pairs.txt beside it.")

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(  # not dataset_info_from_configs: no package metadata, runs as __main__ too
            builder=self,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
                "label": tfds.features.ClassLabel(),  # names set from manual_dir in _split_generators
                "identity": tfds.features.Text(),
                "file": tfds.features.Text(),
            }),
            supervised_keys=("image", "label"),
            homepage="http://vis-www.cs.umass.edu/lfw/",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = Path(dl_manager.manual_dir)
        images_dir = paths.lfw_images_dir(root)
        identities = list_identities(images_dir)
        labels = {name: i for i, name in enumerate(sorted(identities))}
        self.info.features["label"].names = sorted(identities)
        splits = {"full": self._generate_examples(identities, labels)}
        for split, pairs in SPLIT_EXCLUDES.items():
            try:
                excluded = load_pairs(pairs, root=root, check_exists=False).identities
            except FileNotFoundError:
                logger.warning("No %s pairs file in %s: split %s left out.", pairs, root, split)
                continue
            kept = {name: files for name, files in identities.items() if name not in excluded}
            splits[split] = self._generate_examples(kept, labels)
        return splits

    def _generate_examples(self, identities, labels):
        for name, files in identities.items():
            for path in files:
                try:
                    read_image(path)
                except ImageReadError as error:
                    logger.warning("Skipping image: %s", error)
                    continue
                key = f"{name}/{Path(path).name}"
                yield key, {"image": str(path), "label": labels[name], "identity": name, "file": key}


def prepare(manual_dir: str | os.PathLike, data_dir: str | os.PathLike) -> LfwLocal:
    """Prepares ``lfw_local`` from the LFW root ``manual_dir`` into ``data_dir`` (nothing is downloaded); returns
    the builder. A prepared version is left as it is."""
    builder = LfwLocal(data_dir=str(Path(data_dir).expanduser()))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(Path(manual_dir).expanduser())))
    return builder


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m facenet_tf.data.tfds_lfw", description=prepare.__doc__)
    parser.add_argument("--manual_dir", required=True, help="The LFW root (lfw-deepfunneled/ and the pairs files).")
    parser.add_argument("--data_dir", default=None, help="Where tensorflow-datasets keeps prepared datasets "
                        "(default: $TFDS_DATA_DIR, else ~/tensorflow_datasets).")
    args = parser.parse_args()
    prepared = prepare(args.manual_dir, paths.tfds_data_dir(args.data_dir))
    print(f"lfw_local {prepared.version} in {prepared.data_dir}: "
          + ", ".join(f"{name} {split.num_examples}" for name, split in prepared.info.splits.items()))
