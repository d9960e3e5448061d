"""Converts an ``<identity>/*.jpg`` image tree (LFW, VGGFace2, MS-Celeb-style folders) into sharded TFRecords for
``experiments/train.py --data_dir=<output_dir>`` (facenet_tf/data/tfrecord.py describes the format).

    .venv/bin/python experiments/make_tfrecords.py --data_dir=/data/vggface2/train --output_dir=/data/vggface2_tfr \
        --images_per_record=64 --max_side=250

Streaming: one identity group in memory at a time. Unreadable images are skipped, named in a warning and listed in
the output's facenet_tfrecords.json. The set appears under --output_dir only once complete.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

F = flags.FLAGS
flags.DEFINE_string("data_dir", None, "LFW root or any <identity>/*.jpg tree (default: $FACENET_TF_LFW_DIR, then "
                    "../shared/data/lfw).")
flags.DEFINE_string("output_dir", None, "Directory to create. Required.")
flags.DEFINE_list("exclude_pairs", [], "Pairs files whose identities are left out of the set (view1_test, view2, "
                  "paths). Default: none (the reader can also exclude them at training time).")
flags.DEFINE_integer("num_shards", None, "Shard files (default: one per ~5,000 images).")
flags.DEFINE_integer("images_per_record", 64, "Most images of one identity in one record; larger identities are "
                     "split into near-equal groups (keep it >= --faces_per_identity of training).")
flags.DEFINE_integer("max_side", None, "Re-encode images whose longer side exceeds this (default: keep as is).")
flags.DEFINE_integer("seed", 0, "Seed of the order in which identity groups are written.")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output_dir (once the new set is complete).")
flags.mark_flag_as_required("output_dir")


def main(argv):
    del argv
    from facenet_tf import paths
    from facenet_tf.data.lfw import list_identities, load_pairs, training_identities
    from facenet_tf.data.tfrecord import write_tfrecords

    try:
        root = paths.command_lfw_root(F.data_dir)  # resolved once
        images_dir = paths.lfw_images_dir(root)
        excluded = [load_pairs(name, root=root, check_exists=False) for name in F.exclude_pairs]
        split = training_identities(list_identities(images_dir), excluded)
        logging.info("%s", split.summary())
        metadata = write_tfrecords(split.identities, F.output_dir, num_shards=F.num_shards,
                                   images_per_record=F.images_per_record, seed=F.seed, max_side=F.max_side,
                                   overwrite=F.overwrite, source=str(images_dir))
    except (ValueError, FileExistsError, FileNotFoundError) as error:
        raise app.UsageError(str(error))
    logging.info("Wrote %d images of %d identities in %d records, %d shards, to %s in %.0f s (%d skipped)",
                 metadata["images"], metadata["identities"], metadata["records"], len(metadata["shards"]),
                 F.output_dir, metadata["seconds"], len(metadata["skipped"]))
    print(f"{metadata['images']} images, {metadata['identities']} identities, {metadata['records']} records, "
          f"{len(metadata['shards'])} shards -> {F.output_dir} ({metadata['seconds']} s, "
          f"{len(metadata['skipped'])} skipped)")


if __name__ == "__main__":
    app.run(main)
