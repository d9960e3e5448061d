"""Converts an embedding model to TFLite (float32, float16, dynamic-range int8, full int8) and, optionally, measures
each variant against the Keras model on LFW (parity and accuracy).

    .venv/bin/python export/tflite.py --model=inception_resnet_v1 --weights=msceleb --output_dir=runs/exports/tflite
    .venv/bin/python export/tflite.py --model=inception_resnet_v1 --weights=msceleb --output_dir=runs/exports/tflite \
        --evaluate=view2 --report=results/export_tflite.md

--model is a zoo name (with --weights: msceleb, a weights file, or random), a training workdir or a .keras file.
Writes <output_dir>/<model>_<variant>.tflite and .json (metadata; also embedded in the .tflite). The int8 variant
is calibrated on centre-aligned LFW faces of identities outside View 2. The folder is written atomically; an
existing one is refused unless --overwrite is given. Expected failures print one line "error: ..." and exit 2
(bad request) or 1 (the export failed). See facenet_tf/export/tflite.py.
"""

import os
import sys

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

F = flags.FLAGS
flags.DEFINE_string("model", None, "Zoo name, training workdir or .keras file. Required.")
flags.DEFINE_string("weights", None, "For a zoo name: 'msceleb' (inception_resnet_v1), a weights file, or 'random'.")
flags.DEFINE_string("output_dir", None, "Directory for the .tflite and .json files. Required.")
flags.DEFINE_bool("overwrite", False, "Replace an existing TFLite export at --output_dir (atomically: all variants "
                  "are built first, then swapped in).")
flags.DEFINE_list("variants", ["float32", "float16", "dynamic_int8", "int8"], "Variants to write.")
flags.DEFINE_integer("num_calibration_images", 200, "int8: representative LFW faces (identities outside View 2).")
flags.DEFINE_bool("per_channel", True, "int8 / dynamic_int8: per-channel weight scales (else per tensor).")
flags.DEFINE_list("float_nodes", [], "int8: keep the ops whose output tensor names match these regular expressions "
                  "in float32 (e.g. preprocess,Bottleneck); input and output stay int8.")
flags.DEFINE_float("threshold", None, "Verification threshold (squared L2) to record in the metadata.")
flags.DEFINE_enum("calibrate_threshold", None, ["view1_train"], "Calibrate the threshold to record on this split.")
flags.DEFINE_integer("crop_size", None, "Centre alignment (int8 calibration, threshold calibration, evaluation): "
                     "crop side in LFW thumbnail pixels (default: the alignment's, 160).")
flags.DEFINE_string("data_dir", None, "LFW root (default: $FACENET_TF_LFW_DIR, then ../shared/data/lfw).")
flags.DEFINE_string("evaluate", None, "After export, evaluate Keras and every variant on these LFW pairs (view2).")
flags.DEFINE_integer("subset", None, "Evaluation: first N same and N different pairs of each fold.")
flags.DEFINE_integer("num_threads", None, "Evaluation: TFLite interpreter threads (default: LiteRT's choice).")
flags.DEFINE_string("report", None, "Evaluation: write the markdown table here (e.g. results/export_tflite.md).")
flags.DEFINE_string("reference_embeddings", None, "Evaluation: .npz cache of the Keras embeddings (read if it holds "
                    "this model's, else written), so re-evaluating new variants skips the Keras pass.")
flags.DEFINE_multi_string("note", [], "Evaluation: a line added under the report's table (repeatable).")
flags.mark_flags_as_required(["model", "output_dir"])


def main(argv):
    del argv
    from facenet_tf import paths
    from facenet_tf.export.commands import TFLiteCommand, command_line, run_tflite_command, run_binary, usage_error

    try:
        lfw_root, pairs_root = paths.command_lfw_roots(F.data_dir, F.evaluate)  # resolved once, here
    except FileNotFoundError as error:
        return usage_error(error)
    args = TFLiteCommand(model=F.model, output_dir=F.output_dir, weights=F.weights, variants=tuple(F.variants),
                         num_calibration_images=F.num_calibration_images, per_channel=F.per_channel,
                         float_nodes=tuple(F.float_nodes), threshold=F.threshold,
                         calibrate_threshold=F.calibrate_threshold, lfw_root=lfw_root, pairs_root=pairs_root,
                         crop_size=F.crop_size, evaluate=F.evaluate, subset=F.subset, num_threads=F.num_threads,
                         report=F.report, reference_embeddings=F.reference_embeddings, overwrite=F.overwrite,
                         command=command_line(sys.argv),
                         notes=tuple(F.note))
    return run_binary(lambda: run_tflite_command(args))


if __name__ == "__main__":
    app.run(main)
