"""Harmonic embeddings report (paper appendix): LFW verification old-old, new-new and old-new for one old model and
several new ones, a markdown table and one ROC PNG per new model; or (--timing) the time per harmonic training step
with precomputed vs in-step old embeddings.

    .venv/bin/python experiments/harmonic_report.py --old=inception_resnet_v1 --old_weights=msceleb \
        --new=alone=runs/nns2_lfw_view1,harmonic=runs/harmonic_p2 --pairs=view1 --output_dir=results/harmonic

    .venv/bin/python experiments/harmonic_report.py --timing --timing_workdir=runs/harmonic_timing \
        --init_from=runs/nns2_lfw_view1 --output_dir=results/harmonic

With one source per new model a second table (``diagnosis<tag>.md``) says *why* old-new scores as it does: the mean
cosine of same-identity and different-identity pairs and their separation d' per comparison, the mean cosine of
an image's old and new embeddings, and the split of the residual new_i - old_i into a per-identity part (the same
shift for every image of a person: it cancels in new-new but not in old-new) and a per-image part.

old-new is the pooled "both orders" comparison (every pair twice: first image by the old model and second by the
new one, and the reverse); the two orders are also reported separately. Each model gets its own input size and
alignment crop. Embeddings are cached per model (``<cache>/harmonic_eval``) so reruns only embed new models.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

F = flags.FLAGS
flags.DEFINE_string("old", "inception_resnet_v1", "Old model source (zoo name, workdir, .keras); with "
                    "--split_folds also 'src1|src2' (one old model per fold group, like --new).")
flags.DEFINE_string("old_weights", "msceleb", "Weights of a zoo --old.")
flags.DEFINE_list("new", [], "label=source of each new model (workdir, .keras, or zoo_name@weights).")
flags.DEFINE_string("pairs", "view1", "view1 (DevTrain thresholds -> DevTest), view1_test_cv (DevTest alone, "
                    "10-fold thresholds: for new models trained on DevTrain's identities) or view2.")
flags.DEFINE_string("alignment", "detect", "Alignment mode for both models.")
flags.DEFINE_integer("subset", None, "First N same and N different pairs per fold (quick checks).")
flags.DEFINE_string("output_dir", "results/harmonic", "Where the table, JSON and ROC PNGs go.")
flags.DEFINE_integer("split_folds", 0, "With --pairs=view2: each --new source is 'src1|src2|...', src k scoring "
                     "folds k*N+1..(k+1)*N (models trained without the identities of the folds they score).")
flags.DEFINE_string("tag", "", "Suffix of the output file names (e.g. _view2).")
flags.DEFINE_bool("timing", False, "Measure time per training step: precomputed vs in-step old embeddings.")
flags.DEFINE_string("timing_workdir", "runs/harmonic_timing", "Scratch workdir prefix for --timing.")
flags.DEFINE_string("init_from", "runs/nns2_lfw_view1", "--timing: the trained new model (its config is used).")
flags.DEFINE_integer("timing_steps", 5, "--timing: measured steps per mode (after 2 warm-up steps).")


def _cached_embeddings(source, weights, images, alignment, subset_key):
    import hashlib
    import json
    from pathlib import Path

    import numpy as np

    from facenet_tf import paths
    from facenet_tf.evaluation.embed import load_embedder
    from facenet_tf.harmonic.cross_model import ImageEmbeddings, embed_images

    stamp = ""
    for candidate in (Path(source) / "embedding_model.keras", Path(source)):
        if candidate.is_file():
            stamp = str(candidate.stat().st_mtime_ns)
            break
    key = hashlib.sha256(json.dumps([source, weights, alignment, stamp, images]).encode()).hexdigest()[:20]
    file = paths.cache_dir() / "harmonic_eval" / f"{key}.npz"
    if file.is_file():
        data = np.load(file, allow_pickle=False)
        return ImageEmbeddings(str(data["name"]), {p: i for i, p in enumerate(images)}, data["vectors"],
                               json.loads(str(data["stats"])))
    embedder = load_embedder(source, weights)
    result = embed_images(embedder, images, alignment)
    file.parent.mkdir(parents=True, exist_ok=True)
    np.savez(file, name=result.name, vectors=result.vectors, stats=json.dumps(result.stats))
    return result


def _test_pairs(sets, pairs):
    """The pair set that is reported: DevTest for View 1, the whole file otherwise."""
    return sets[1] if pairs == "view1" else sets[0]


def report_main():
    import json
    from pathlib import Path

    from facenet_tf import paths
    from facenet_tf.evaluation.lfw import load_pair_sets
    from facenet_tf.harmonic.cross_model import evaluate_cross_model, harmonic_diagnosis, pair_images
    from facenet_tf.evaluation.plots import plot_roc
    from facenet_tf.evaluation.verification import paired_fold_difference
    from facenet_tf.models.source import split_source

    if not F.new:
        raise app.UsageError("--new: give at least one label=source.")
    news = []
    for item in F.new:
        if "=" not in item:
            raise app.UsageError(f"--new: expected label=source, got '{item}'.")
        news.append(tuple(item.split("=", 1)))
    sets = load_pair_sets(F.pairs, paths.command_lfw_root(None, F.pairs), F.subset)
    images = pair_images(sets)
    old_sources = F.old.split("|")
    if len(old_sources) > 1 and not F.split_folds:
        raise app.UsageError("--old: several sources ('|') need --split_folds.")
    olds = [_cached_embeddings(src, F.old_weights or None, images, F.alignment, F.subset) for src in old_sources]
    old = olds if len(olds) > 1 else olds[0]
    out = Path(F.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, public = [], {}
    for label, source in news:
        sources = source.split("|")
        if len(sources) > 1 and not F.split_folds:
            raise app.UsageError(f"--new {label}: several sources ('|') need --split_folds.")
        if F.split_folds and len(sources) * F.split_folds != 10:
            raise app.UsageError(f"--new {label}: {len(sources)} sources x --split_folds={F.split_folds} folds "
                                 "must cover the 10 folds of View 2.")
        if len(olds) > 1 and len(sources) != len(olds):
            raise app.UsageError(f"--new {label}: {len(sources)} sources for {len(olds)} --old sources.")
        new = [_cached_embeddings(*split_source(src), images, F.alignment, F.subset) for src in sources]
        reports = evaluate_cross_model(old, new if F.split_folds else new[0], sets, F.pairs,
                                       folds_per_model=F.split_folds or None)
        names = {"a-a": "old-old", "b-b": "new-new", "cross": "old-new (both orders)", "a-b": "old->new",
                 "b-a": "new->old"}
        for key in ("a-a", "b-b", "cross", "a-b", "b-a"):
            m = reports[key]["metrics"]
            roc = reports[key]["_result"].roc
            rows.append((label, names[key], m["accuracy_mean"], m["val_mean"], m["far_mean"], m["auc"], m["eer"],
                         reports[key]["n_pairs"], roc.val_at(1e-2), roc.val_at(1e-1)))
        png = out / f"roc_{label}{F.tag}.png"
        plot_roc({f"old-old ({F.old})": reports["a-a"]["_result"].roc,
                  f"new-new ({label})": reports["b-b"]["_result"].roc,
                  "old-new (both orders)": reports["cross"]["_result"].roc}, png,
                 title=f"LFW {F.pairs}: harmonic embeddings, new = {label}")
        public[label] = {k: {kk: vv for kk, vv in r.items() if not kk.startswith("_")} for k, r in reports.items()}
        public[label]["source"] = source
        public[label]["roc_png"] = str(png)
    diagnoses = {label: harmonic_diagnosis(
        olds[0], _cached_embeddings(*split_source(src), images, F.alignment, F.subset),
        _test_pairs(sets, F.pairs)) for label, src in news if "|" not in src and len(olds) == 1}
    if diagnoses:
        dl = ["Why old-new scores as it does (reported pairs; cos = cosine of the two L2-normalised embeddings; "
              "residual = new_i - old_i of the same image, squared norm split into a per-identity part and a "
              "per-image part over the identities with >= 2 images)", "",
              "| new model | old-old same / diff cos (d') | new-new same / diff cos (d') | old-new same / diff cos (d') "
              "| same-image cos | residual per identity | residual per image |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
        for label, dg in diagnoses.items():
            cells = [f"{dg[c]['same_cos']:.3f} / {dg[c]['diff_cos']:.3f} ({dg[c]['d_prime']:.2f})"
                     for c in ("old-old", "new-new", "old-new")]
            dl.append(f"| {label} | {' | '.join(cells)} | {dg['same_image_cos']:.3f} | "
                      f"{dg['residual']['per_identity']:.3f} | {dg['residual']['per_image']:.3f} |")
        (out / f"diagnosis{F.tag}.md").write_text("\n".join(dl) + "\n")
        for label, dg in diagnoses.items():
            public[label]["diagnosis"] = dg
        print("\n".join(dl))
    split = f"; new models per {F.split_folds} folds (label=src1|src2...)" if F.split_folds else ""
    protocol = {"view1": "DevTrain thresholds -> DevTest", "view1_test_cv": "DevTest in 10 folds, thresholds from "
                "the other 9"}.get(F.pairs, "10 folds")
    lines = [f"LFW {F.pairs} ({protocol}){split}, "
             f"alignment {F.alignment}; old = {F.old} ({F.old_weights}); {len(images)} images",
             "", "| new model | comparison | accuracy | VAL@FAR=1e-3 | FAR | AUC | EER | pairs | VAL@1e-2 (ROC) "
             "| VAL@1e-1 (ROC) |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, name, acc, val, far, auc, eer, n, val2, val1 in rows:
        lines.append(f"| {label} | {name} | {acc:.4f} | {val:.4f} | {far:.4f} | {auc:.4f} | {eer:.4f} | {n} | "
                     f"{val2:.4f} | {val1:.4f} |")
    lines += ["", "VAL@1e-2 / 1e-1 (ROC): read off the ROC of all pairs pooled (no cross-validation), to compare the "
              "curves at more operating points; VAL@FAR=1e-3 and accuracy follow the 10-fold protocol."]
    lines += ["", "Old-new minus new-new accuracy, fold by fold (paired: the same folds, each comparison with its own "
              "thresholds): mean +- standard error over the folds, and in how many folds old-new is higher.", "",
              "| new model | old-new - new-new (points) | SE | folds old-new higher / equal / lower |",
              "| --- | --- | --- | --- |"]
    for label, _ in news:
        paired = paired_fold_difference(public[label]["cross"]["metrics"]["folds"],
                                        public[label]["b-b"]["metrics"]["folds"])
        public[label]["old_new_minus_new_new"] = paired
        lines.append(f"| {label} | {100 * paired['mean']:+.2f} | {100 * paired['sem']:.2f} | "
                     f"{paired['higher']} / {paired['equal']} / {paired['lower']} |")
    table = "\n".join(lines)
    (out / f"table{F.tag}.md").write_text(table + "\n")
    (out / f"results{F.tag}.json").write_text(json.dumps(public, indent=2, default=str))
    print(table)
    print("wrote", out / f"table{F.tag}.md", *(public[label]["roc_png"] for label, _ in news))


def timing_main():
    import dataclasses
    import time
    from pathlib import Path

    import numpy as np
    import tensorflow as tf

    from facenet_tf import paths
    from facenet_tf.data.pipeline import training_dataset
    from facenet_tf.data.sampling import BatchComposition
    from facenet_tf.harmonic.models import load_old_model
    from facenet_tf.harmonic.old_embeddings import precompute_old_embeddings
    from facenet_tf.harmonic.training import build_harmonic_model, harmonic_training_dataset
    from facenet_tf.train import TrainConfig
    from facenet_tf.train.loop import build_model, split_identities

    base = TrainConfig.load(F.init_from).with_flags(workdir=F.timing_workdir, harmonic_with=F.old,
                                                    harmonic_weights=F.old_weights, lr_decay_steps=(),
                                                    init_from=F.init_from)
    index, _, _ = split_identities(base, paths.lfw_dir(required=False))
    composition = BatchComposition(base.identities_per_batch, base.faces_per_identity, base.extra_negatives)

    def time_steps(model, dataset):
        iterator = iter(dataset)
        step = tf.function(model.train_step)
        for _ in range(2):
            step(next(iterator))
        batches = [next(iterator) for _ in range(F.timing_steps)]  # input pipeline excluded from the step time
        t0 = time.perf_counter()
        for batch in batches:
            float(step(batch)["loss"])
        return (time.perf_counter() - t0) / F.timing_steps

    rows = []
    for phase in ("embedding_layer", "all"):
        for mode in ("precomputed", "in_step"):
            config = base.with_flags(harmonic_phase=phase, harmonic_old_embeddings=mode)
            model = build_harmonic_model(config)
            if mode == "precomputed":
                dataset, _ = harmonic_training_dataset(config, index, composition,
                                                       old_embeddings=precompute_old_embeddings(config, index))
            else:
                dataset, _ = training_dataset(index, config.image_size, composition, config.seed, 0,
                                              config.crop_fraction, config.jitter, config.flip)
            seconds = time_steps(model, dataset)
            rows.append((phase, mode, seconds))
            print(phase, mode, f"{seconds:.3f} s/step", flush=True)
    plain = build_model(dataclasses.replace(base, harmonic=None))
    dataset, _ = training_dataset(index, base.image_size, composition, base.seed, 0, base.crop_fraction, base.jitter,
                                  base.flip)
    rows.append(("(plain triplet, all)", "none", time_steps(plain, dataset)))
    # One-off cost of precomputing: the old model on a sample of centre crops, per image.
    old = load_old_model(F.old, F.old_weights)
    call = tf.function(lambda x: old(x, training=False))
    sample = tf.random.uniform((64, *old.input.shape[1:3], 3), 0, 255)
    call(sample)
    t0 = time.perf_counter()
    for _ in range(2):
        call(sample).numpy()
    per_image = (time.perf_counter() - t0) / 128
    b = composition.batch_size
    lines = [f"Batch {b} images ({composition.identities_per_batch}x{composition.faces_per_identity}+"
             f"{composition.extra_negatives}), new = {base.model} {base.image_size}, old = {F.old}; mean of "
             f"{F.timing_steps} steps after 2 warm-up steps, input pipeline excluded; 2 shared CPU cores.", "",
             "| phase | old embeddings | s / step |", "| --- | --- | --- |"]
    lines += [f"| {p} | {m} | {s:.2f} |" for p, m, s in rows]
    lines += ["", f"Precomputing: old model forward {per_image * 1000:.1f} ms / image (batches of 64) -> "
              f"{per_image * len(index) / 60:.1f} min once for the {len(index)} training images."]
    text = "\n".join(lines)
    out = Path(F.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "timing.md").write_text(text + "\n")
    print(text)


def main(argv):
    del argv
    if F.timing:
        timing_main()
    else:
        report_main()


if __name__ == "__main__":
    app.run(main)
