"""How far can a *linear* embedding layer on top of a frozen new network go towards the old model's space? A
closed-form probe of the harmonic phase 1 (paper appendix: "first retrain only v2's embedding layer").

The paper's phase 1 trains v2's embedding layer with the harmonic triplet loss. The probe replaces that training by
ridge regression from the new network's features (e.g. Inception-ResNet-v1's 1,792-D ``AvgPool``) onto a target in
the old model's space, fitted on the training identities, and scores the result on LFW exactly like
``harmonic_report.py`` (old-old, new-new, old-new):

- ``--targets=image``: each training image's own old embedding (distillation, the best a linear layer can do at
  copying the old model);
- ``--targets=centroid``: the L2-normalised mean old embedding of the image's identity (its other images too). To
  *beat* old-old, a new embedding must land nearer the person's place in the old space than the old model's own
  embedding of another photo does; the centroid target asks for exactly that.

Every figure is the mean over 10 folds with thresholds from the other nine, as in the report. The ridge strength is
relative: lambda * trace(X^T X) / d on standardised features (``facenet_tf.harmonic.least_squares.fit_ridge``, the
solve of ``--harmonic_solver=least_squares`` with that penalty).

    .venv/bin/python experiments/harmonic_probe.py --old=runs/nns2_lfw_view1 --exclude=view1_test \
        --pairs=view1_test_cv --output_dir=results/harmonic/probe

    # View 2: one old model and one training set per half; each pair scored by the models of its half
    .venv/bin/python experiments/harmonic_probe.py --old='runs/v2A_alone|runs/v2B_alone' \
        --exclude='view2:folds=1-5|view2:folds=6-10' --pairs=view2 --split_folds=5 --ridge=0.01 \
        --output_dir=results/harmonic_view2/probe --tag=_view2
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

F = flags.FLAGS


def define_flags():
    """The command-line flags (defined only when run as a script, so tests can import this module beside other
    experiment scripts that define flags of the same names)."""
    flags.DEFINE_string("old", "runs/nns2_lfw_view1", "Old model source (workdir, .keras, zoo_name@weights); with "
                        "--split_folds one per fold group: 'src1|src2'.")
    flags.DEFINE_string("features", "inception_resnet_v1@msceleb:AvgPool",
                        "New network and the layer whose output is the probe's input: 'source[@weights]:layer' "
                        "(layer 'auto': the input of the last Dense layer).")
    flags.DEFINE_string("exclude", "view1_test", "Pairs whose identities the probe must not fit on ('|' per fold "
                        "group with --split_folds, like --old).")
    flags.DEFINE_string("pairs", "view1_test_cv", "view1_test_cv or view2 (see harmonic_report.py).")
    flags.DEFINE_integer("split_folds", 0, "With --pairs=view2: fold groups of this size, one --old/--exclude each.")
    flags.DEFINE_list("targets", ["image", "centroid"], "Regression targets: image, centroid.")
    flags.DEFINE_list("ridge", ["0.001", "0.01", "0.1"], "Relative ridge strengths to try.")
    flags.DEFINE_string("alignment", "detect", "Alignment of every image (training and test).")
    flags.DEFINE_string("output_dir", "results/harmonic/probe", "Where the table and JSON go.")
    flags.DEFINE_string("tag", "", "Suffix of the output file names.")
    flags.DEFINE_string("save_dir", None, "Also save each fitted new model (the --features network with its final "
                        "projection set to the fit) as <save_dir>/<target>_ridge<r>_<group>.keras, for "
                        "harmonic_report.py or export; --features must then end in its final projection (layer auto).")


def _feature_embedder(spec: str):
    import keras

    from facenet_tf.evaluation.embed import keras_embedder

    source, _, layer = spec.rpartition(":")
    if not source or not layer:
        raise app.UsageError(f"--features: expected 'source[@weights]:layer', got '{spec}'.")
    from facenet_tf.models.source import load_model

    model = load_model(source).model
    name = source
    if layer == "auto":  # the input of the final projection (the last Dense layer): what phase 1 re-learns
        dense = [lay for lay in model.layers if isinstance(lay, keras.layers.Dense)]
        if not dense:
            raise app.UsageError(f"--features: model '{name}' has no Dense layer for ':auto'; name a layer.")
        output = dense[-1].input
    else:
        try:
            output = model.get_layer(layer).output
        except ValueError as err:
            raise app.UsageError(f"--features: model '{name}' has no layer '{layer}'.") from err
    return keras_embedder(keras.Model(model.input, output), f"{source}:{layer}"), model


def main(argv):
    del argv
    import hashlib
    import json
    from pathlib import Path

    import numpy as np

    from facenet_tf import paths
    from facenet_tf.data.lfw import list_identities, load_pairs, training_identities
    from facenet_tf.evaluation.embed import load_embedder
    from facenet_tf.evaluation.lfw import load_pair_sets
    from facenet_tf.harmonic.cross_model import (ImageEmbeddings, embed_images, evaluate_cross_model,
                                                 harmonic_diagnosis, pair_images)
    from facenet_tf.harmonic.least_squares import fit_ridge, project, targets_for
    from facenet_tf.harmonic.models import set_head_linear

    old_sources, excludes = F.old.split("|"), F.exclude.split("|")
    groups = len(old_sources)
    if len(excludes) != groups:
        raise app.UsageError(f"--exclude: {len(excludes)} entries for {groups} --old sources.")
    if groups > 1 and (not F.split_folds or groups * F.split_folds != 10):
        raise app.UsageError("Several --old sources need --split_folds with sources x folds = 10.")
    root = paths.lfw_dir()  # the identities fitted on and the --exclude pairs; --pairs as every command reads it
    sets = load_pair_sets(F.pairs, paths.command_lfw_root(None, F.pairs))
    test_images = pair_images(sets)
    listed = list_identities(paths.lfw_images_dir(root))
    if F.save_dir and not F.features.endswith(":auto"):
        raise app.UsageError("--save_dir: --features must end in ':auto' (the input of the final projection, which "
                             "the saved model's head is set from).")
    features, network = _feature_embedder(F.features)
    saved = []

    def save_model(kernel, bias, name):
        set_head_linear(network, kernel, bias)
        path = Path(F.save_dir) / f"{name}.keras"
        path.parent.mkdir(parents=True, exist_ok=True)
        network.save(path.with_name(f".{path.name}.tmp.keras"))
        path.with_name(f".{path.name}.tmp.keras").replace(path)
        return str(path)

    def embed_all(embedder, images, what, spec):
        """Embeddings of ``images``, cached under <cache>/harmonic_probe by (model spec + file stamp, images)."""
        stamp = ""
        source = Path(spec.rpartition(":")[0] if ":" in spec else spec).expanduser()
        for candidate in (source / "embedding_model.keras", source):
            if candidate.is_file():
                stamp = str(candidate.stat().st_mtime_ns)
                break
        key = hashlib.sha256(json.dumps([spec, stamp, F.alignment, images]).encode()).hexdigest()[:20]
        file = paths.cache_dir() / "harmonic_probe" / f"{key}.npz"
        if file.is_file():
            with np.load(file, allow_pickle=False) as data:
                print(f"{what}: {len(images)} images (cached {file.name})")
                return ImageEmbeddings(embedder.name, {p: i for i, p in enumerate(images)}, data["vectors"], {})
        print(f"{what}: {len(images)} images")
        result = embed_images(embedder, images, F.alignment)
        file.parent.mkdir(parents=True, exist_ok=True)
        np.savez(file.with_name(f".{key}.tmp.npz"), vectors=result.vectors)
        file.with_name(f".{key}.tmp.npz").replace(file)
        return result

    tests_new = embed_all(features, test_images, "features (test)", F.features)
    olds_test, fits = [], []
    for source, exclude in zip(old_sources, excludes):
        split = training_identities(listed, [load_pairs(e, root) for e in exclude.split(",")])
        train_images = [str(p) for images in split.identities.values() for p in images]
        train_ids = [name for name, images in split.identities.items() for _ in images]
        old = load_embedder(source)
        olds_test.append(embed_all(old, test_images, f"old {source} (test)", source))
        old_train = embed_all(old, train_images, f"old {source} (train)", source).vectors
        fits.append((split, train_images, train_ids, old_train,
                     embed_all(features, train_images, "features (train)", F.features).vectors))
    rows, public = [], {"features": F.features, "old": F.old, "exclude": F.exclude, "pairs": F.pairs,
                        "alignment": F.alignment, "runs": {}}
    for kind in F.targets:
        for lam in map(float, F.ridge):
            label = f"{kind}, ridge {lam:g}"
            news = []
            for old_test, (split, train_images, train_ids, old_train, feat_train) in zip(olds_test, fits):
                kernel, bias = fit_ridge(feat_train, targets_for(kind, old_train, train_ids), lam)
                train_cos = float(np.mean(np.sum(project(feat_train, kernel, bias) * old_train, axis=1)))
                if F.save_dir:
                    saved.append(save_model(kernel, bias, f"{kind}_ridge{lam:g}_{len(news) + 1}"))
                news.append((ImageEmbeddings(label, tests_new.position, project(tests_new.vectors, kernel, bias),
                                             {"train_images": len(train_images),
                                              "train_identities": split.n_identities,
                                              "train_same_image_cos": train_cos}), old_test))
            new_list = [n for n, _ in news]
            reports = evaluate_cross_model(olds_test if groups > 1 else olds_test[0],
                                           new_list if groups > 1 else new_list[0], sets, F.pairs,
                                           folds_per_model=F.split_folds or None)
            diagnosis = [harmonic_diagnosis(o, n, sets[0]) for n, o in news] if groups == 1 else []
            metrics = {k: reports[k]["metrics"] for k in ("a-a", "b-b", "cross")}
            rows.append((label, metrics, [n.stats["train_same_image_cos"] for n in new_list], diagnosis))
            public["runs"][label] = {"metrics": metrics, "train": [n.stats for n in new_list],
                                     "diagnosis": diagnosis}
            print(f"{label}: old-old {metrics['a-a']['accuracy_mean']:.4f} new-new "
                  f"{metrics['b-b']['accuracy_mean']:.4f} old-new {metrics['cross']['accuracy_mean']:.4f} "
                  f"(AUC {metrics['cross']['auc']:.4f})", flush=True)
    lines = [f"Linear probe of harmonic phase 1 on LFW {F.pairs}: features {F.features}, old {F.old}, training "
             f"identities = LFW minus those of {F.exclude}; alignment {F.alignment}; {len(test_images)} test images; "
             "accuracy = mean over 10 folds, thresholds from the other nine", "",
             "| target, ridge | old-old acc | new-new acc | **old-new acc** | old-old AUC | new-new AUC "
             "| old-new AUC | old-new VAL@1e-3 | train same-image cos | old-new d' (old-old d') "
             "| residual per identity / per image |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, m, train_cos, diagnosis in rows:
        d = (f"{diagnosis[0]['old-new']['d_prime']:.2f} ({diagnosis[0]['old-old']['d_prime']:.2f})"
             if diagnosis else "")
        r = (f"{diagnosis[0]['residual']['per_identity']:.3f} / {diagnosis[0]['residual']['per_image']:.3f}"
             if diagnosis else "")
        lines.append(f"| {label} | {m['a-a']['accuracy_mean']:.4f} | {m['b-b']['accuracy_mean']:.4f} | "
                     f"**{m['cross']['accuracy_mean']:.4f}** | {m['a-a']['auc']:.4f} | {m['b-b']['auc']:.4f} | "
                     f"{m['cross']['auc']:.4f} | {m['cross']['val_mean']:.4f} | "
                     f"{' / '.join(f'{c:.3f}' for c in train_cos)} | {d} | {r} |")
    out = Path(F.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"table{F.tag}.md").write_text("\n".join(lines) + "\n")
    public["saved_models"] = saved
    (out / f"results{F.tag}.json").write_text(json.dumps(public, indent=2, default=str))
    if saved:
        print("saved", *saved)
    print("\n".join(lines))


if __name__ == "__main__":
    define_flags()
    app.run(main)
