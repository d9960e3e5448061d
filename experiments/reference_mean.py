"""The reference mean embedding of registered weights (``facenet_tf.models.reference``): faces found and embedded
exactly as ``facenet_tf.FaceNet`` does (MTCNN, its crop, the inference form), plain and flip-averaged, on the one
image of every LFW person who appears in no View 2 pair and has a single image (so in no LFW pair and in no photo
collection of experiments/photo_defaults.py, which draws people with 2 or more images).

    .venv/bin/python experiments/reference_mean.py --weights=msceleb
    .venv/bin/python experiments/reference_mean.py --weights=casia_webface
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import sys  # noqa: E402

from absl import app, flags  # noqa: E402

F = flags.FLAGS
flags.DEFINE_string("weights", None, "Registered weights (facenet-tf weights list). Required.")
flags.DEFINE_float("margin", 0.3, "Crop margin (facenet_tf.FaceNet's default).")
flags.DEFINE_string("data_dir", None, "LFW root (default: $FACENET_TF_LFW_DIR, then ../shared/data/lfw).")
flags.DEFINE_bool("overwrite", False, "Replace the weights' existing reference file.")
flags.mark_flags_as_required(["weights"])


def main(argv):
    del argv
    from facenet_tf import paths
    from facenet_tf.api import FaceNet
    from facenet_tf.atomic import check_output
    from facenet_tf.data.lfw import load_pairs, training_identities
    from facenet_tf.evaluation.embed import embed, l2_normalize
    from facenet_tf.models.reference import reference_path, write_reference
    from facenet_tf.models.weights import get_entry

    try:
        get_entry(F.weights)
        check_output(reference_path(F.weights), overwrite=F.overwrite, flag="--weights")
        root = paths.lfw_dir(F.data_dir)
    except (ValueError, KeyError, OSError) as error:
        raise app.UsageError(str(error).strip("'\""))
    split = training_identities(paths.lfw_images_dir(root), [load_pairs("view2", root, check_exists=False)])
    images = [files[0] for _, files in sorted(split.identities.items()) if len(files) == 1]
    net = FaceNet(F.weights, margin=F.margin, centre=False, flip=False)  # the plain embeddings whose mean this is
    found, plain = net.find(images, "largest", progress=True)
    mirrored = embed(net.embedder, found.crops[:, :, ::-1], batch_size=net.batch_size, progress=True)
    path = write_reference(
        F.weights, plain, l2_normalize(plain + mirrored), model=net.model_name,
        people=len(images), faces_found=len(found), margin=F.margin, min_confidence=net.min_confidence,
        min_face_size=net.min_face_size, faces="largest",
        source="LFW deep-funneled: the one image of each person in no View 2 pair with a single image",
        command="python " + " ".join(sys.argv))
    print(f"{path}: mean of {len(found)} faces ({len(images)} photos)")


if __name__ == "__main__":
    app.run(main)
