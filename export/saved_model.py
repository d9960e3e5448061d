"""Exports an embedding model as a SavedModel for serving (TF Serving, tf.saved_model.load, keras TFSMLayer).

    .venv/bin/python export/saved_model.py --model=inception_resnet_v1 --weights=msceleb \
        --calibrate_threshold=view1_train --output_dir=runs/exports/inception_resnet_v1
    .venv/bin/python export/saved_model.py --model=runs/nns2 --threshold=1.1 --output_dir=runs/exports/nns2 --overwrite

--model is a zoo name (with --weights: msceleb, a weights file, or random), a training workdir or a .keras file.
Signatures: embed_images (= serving_default), embed_jpeg, verify, embed_images_int8, int8_distances; metadata in
<output_dir>/assets/metadata.json. Written atomically: a failed export leaves an existing one untouched.
Expected failures print one line "error: ..." and exit 2 (bad request) or 1 (the export failed).
--evaluate_int8=view2 then measures the export's 128-byte embeddings on LFW (--report writes the table).
See facenet_tf/export/saved_model.py.
"""

import os
import sys

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

F = flags.FLAGS
flags.DEFINE_string("model", None, "Zoo name, training workdir or .keras file. Required.")
flags.DEFINE_string("weights", None, "For a zoo name: 'msceleb' (inception_resnet_v1), a weights file, or 'random'.")
flags.DEFINE_string("output_dir", None, "The SavedModel directory to write. Required.")
flags.DEFINE_float("threshold", None, "Verification threshold (squared L2 distance) to store.")
flags.DEFINE_enum("calibrate_threshold", None, ["view1_train"],
                  "Store the best-accuracy threshold on this split (LFW pairsDevTrain, centre-aligned).")
flags.DEFINE_float("int8_scale", None, "Scale of the int8 embeddings (default facenet_tf.export.quantize."
                   "DEFAULT_SCALE).")
flags.DEFINE_bool("overwrite", False, "Replace an existing export at --output_dir (atomically).")
flags.DEFINE_integer("crop_size", None, "Centre alignment (int8 calibration, threshold calibration, evaluation): "
                     "crop side in LFW thumbnail pixels (default: the alignment's, 160).")
flags.DEFINE_string("data_dir", None, "LFW root (default: $FACENET_TF_LFW_DIR, then ../shared/data/lfw).")
flags.DEFINE_string("evaluate_int8", None, "After export, compare its int8 and float embeddings on these LFW pairs "
                    "(view2).")
flags.DEFINE_integer("subset", None, "Calibration and evaluation: first N same and N different pairs per fold.")
flags.DEFINE_string("report", None, "Write the int8 evaluation table here (e.g. results/export_int8_embeddings.md).")
flags.mark_flags_as_required(["model", "output_dir"])


def main(argv):
    del argv
    from facenet_tf import paths
    from facenet_tf.export.commands import (SavedModelCommand, command_line, run_saved_model_command, run_binary,
                                            usage_error)

    try:
        lfw_root, pairs_root = paths.command_lfw_roots(F.data_dir, F.evaluate_int8)  # resolved once, here
    except FileNotFoundError as error:
        return usage_error(error)
    args = SavedModelCommand(model=F.model, output_dir=F.output_dir, weights=F.weights, threshold=F.threshold,
                             calibrate_threshold=F.calibrate_threshold, int8_scale=F.int8_scale,
                             overwrite=F.overwrite, lfw_root=lfw_root, pairs_root=pairs_root, crop_size=F.crop_size,
                             evaluate_int8=F.evaluate_int8, subset=F.subset, report=F.report,
                             command=command_line(sys.argv))
    return run_binary(lambda: run_saved_model_command(args))


if __name__ == "__main__":
    app.run(main)
