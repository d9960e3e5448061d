"""The `facenet-tf cluster` / `identify` defaults measured on degraded photo collections made from LFW people
(facenet_tf.evaluation.photo_collections): chosen on the `select` collections, reported on the `check` ones
(other people), beside the former defaults (agglomerative, average linkage, 0.92). Writes one markdown file.

    nice -n 10 .venv/bin/python experiments/photo_defaults.py --output=results/photo_defaults.md

The way faces are embedded (--variants: plain, the stored reference mean subtracted, flip, both) is chosen first,
and with it the verify threshold (LFW View 1 pairs through FaceNet.find). Faces are found and embedded (plain, and
their mirror images) with facenet_tf.api.FaceNet("msceleb", centre=False) (cached in $FACENET_TF_CACHE_DIR/photo_defaults,
keyed by model, detector settings and photo bytes); collections are built in $FACENET_TF_CACHE_DIR/photo_collections
(or --collections_dir) and reused while their recipe is unchanged.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import hashlib  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

F = flags.FLAGS
flags.DEFINE_string("data_dir", None, "LFW root (default: $FACENET_TF_LFW_DIR, then ../shared/data/lfw).")
flags.DEFINE_string("collections_dir", None, "Where the collections are built (default: <cache>/photo_collections).")
flags.DEFINE_integer("seed", 0, "Seed of the people split and of every degradation.")
flags.DEFINE_bool("rebuild", False, "Rebuild the collections even when their folders match the recipes.")
flags.DEFINE_float("former", 0.92, "The former (pre-study) cluster and identify threshold (cluster: average linkage).")
flags.DEFINE_float("max_far", 0.01, "Identify: the largest unknown-face false-accept rate allowed on select.")
flags.DEFINE_list("enrolled", ["1", "3"], "Clean photos enrolled per person (one gallery each).")
flags.DEFINE_string("output", "results/photo_defaults.md", "The markdown report.")
flags.DEFINE_list("variants", list(("plain", "centred", "flip", "flip_centred")),
                  "Embedding variants compared (FaceNet flip= / centre=); the defaults are chosen on the best.")
flags.DEFINE_float("flip_margin", 0.005, "A flip variant (twice the model calls) is chosen only if its select score "
                   "beats the best variant without flip by more than this.")
GRID = np.round(np.arange(0.60, 1.8001, 0.02), 2)
#: variant -> (flip, centre) of facenet_tf.api.FaceNet.
VARIANTS = {"plain": (False, False), "centred": (False, True), "flip": (True, False), "flip_centred": (True, True)}
PHOTOS = {"searched": 0, "from the cache": 0}  # photos whose faces this run found and embedded / read back


def faces(net, files, which, variant="plain"):
    """(sources, boxes, embeddings) of the faces of ``files`` (``which``: FaceNet.find's choice), cached; the
    embeddings of ``variant``, as FaceNet(flip=, centre=) makes them (from the cached plain and mirror-image
    embeddings, and the stored reference mean)."""
    from facenet_tf import paths
    from facenet_tf.evaluation.embed import embed, l2_normalize
    from facenet_tf.models.reference import centre, reference_mean

    flip, centred = VARIANTS[variant]
    key = hashlib.sha1(json.dumps([net.model_name, which, net.margin, net.min_confidence, net.min_face_size,
                                   "mirrored"]).encode())
    for file in files:
        key.update(str(file).encode() + Path(file).read_bytes())
    cache = paths.cache_dir() / "photo_defaults" / f"{key.hexdigest()[:20]}.npz"
    if not cache.is_file():
        PHOTOS["searched"] += len(files)
        found, plain = net.find(files, which)
        mirrored = (embed(net.embedder, found.crops[:, :, ::-1], batch_size=net.batch_size, progress=False)
                    if len(found) else plain)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache.with_suffix(".tmp.npz"), sources=np.array([r.source for r in found.records], str),
                 boxes=np.array([r.box for r in found.records]).reshape(-1, 4), plain=plain, mirrored=mirrored)
        os.replace(cache.with_suffix(".tmp.npz"), cache)
    elif variant == "plain":
        PHOTOS["from the cache"] += len(files)
    with np.load(cache) as data:
        sources, boxes, embeddings = data["sources"].tolist(), data["boxes"], data["plain"]
        if flip and len(embeddings):
            embeddings = l2_normalize(embeddings + data["mirrored"])
    if centred and len(embeddings):
        embeddings = centre(embeddings, reference_mean(net.weights, flip))
    return sources, boxes, embeddings


def evaluate(net, key, folder, root, enrolled, pc, variant="plain"):
    """One collection: detect, embed, label, sweep the clustering candidates, identify against its own gallery."""
    from facenet_tf.recognition import Gallery

    truth = pc.load_truth(folder)
    sources, boxes, embeddings = faces(net, [folder / p["file"] for p in truth["photos"]], "all", variant)
    labels, counts = pc.label_detections(truth, zip(sources, boxes))
    people = {n: [root / f for f in p["enrol"]] for n, p in truth["people"].items() if not p["unknown"]}
    clean, _, clean_embeddings = faces(net, [f for files in people.values() for f in files], "largest", variant)
    row = {source: i for i, source in enumerate(clean)}
    identify = {}
    for n in enrolled:  # each person's first n reserved photos in which a face was found
        gallery = Gallery()
        for name, files in people.items():
            gallery.add(name, clean_embeddings[[row[str(f)] for f in files if str(f) in row][:n]])
        identify[n] = pc.identify_scores(*gallery.identity_distances(embeddings), labels, GRID)
    sweep = pc.clustering_sweep(embeddings, pc.cluster_labels(labels), GRID)
    return pc.CollectionResult(key[0], key[1], truth, labels, counts, sweep, identify)


def study(results, enrolled, pc):
    """One embedding variant: the cluster and identify defaults chosen on its select collections, and its score
    (the mean of the chosen cluster candidate's mean F1 and the identify accuracy, mean over enrolment sizes, on
    select), by which the variant is chosen."""
    select = [r for r in results if r.set == "select"]
    check = [r for r in results if r.set == "check"]
    chosen, best_f1 = pc.choose_cluster_default({r.name: r.sweep for r in select})
    identify, accuracy, _ = pc.choose_identify_default([pc.pool([r.identify[n] for r in select]) for n in enrolled],
                                                       F.max_far)
    checked = [pc.pool([r.identify[n] for r in check]).at(identify) for n in enrolled]
    return {"results": results, "cluster": chosen, "f1": best_f1, "identify": identify, "accuracy": accuracy,
            "score": (best_f1 + accuracy) / 2, "check_f1": pc.mean_score(check, chosen),
            "check_accuracy": float(np.mean([c["accuracy"] for c in checked])),
            "check_far": float(max(c["far"] for c in checked))}


def verify_study(net, lfw_root, variant):
    """The verify threshold of ``variant`` as the API measures a pair (the largest face of each photo, through
    FaceNet.find): the best-accuracy threshold on LFW View 1 training pairs (pairsDevTrain), and the accuracy it
    gives on pairsDevTest. Pairs in which a photo has no face are left out (counted)."""
    from facenet_tf.data.lfw import load_pairs
    from facenet_tf.evaluation import verification

    out = {}
    for name in ("view1_train", "view1_test"):
        pairs = load_pairs(name, lfw_root)
        files = sorted({str(f) for f in pairs.paths_a + pairs.paths_b})
        sources, _, embeddings = faces(net, files, "largest", variant)
        row = {source: i for i, source in enumerate(sources)}
        kept = [i for i, (a, b) in enumerate(zip(pairs.paths_a, pairs.paths_b)) if str(a) in row and str(b) in row]
        a = embeddings[[row[str(pairs.paths_a[i])] for i in kept]]
        b = embeddings[[row[str(pairs.paths_b[i])] for i in kept]]
        distances, same = verification.squared_l2(a, b), np.asarray(pairs.is_same)[kept]
        if name == "view1_train":
            out["threshold"], out["train_accuracy"] = verification.best_accuracy_threshold(distances, same)
        else:
            out["test_accuracy"] = verification.accuracy_at_threshold(distances, same, out["threshold"])
        out[f"{name}_pairs"], out[f"{name}_left_out"] = len(pairs.is_same), len(pairs.is_same) - len(kept)
    return out


def choose_variant(studies, margin):
    """The variant with the best select score; one with flip (twice the model calls) only if it beats the best
    variant without flip by more than ``margin``. Ties: the first listed."""
    best = max(studies, key=lambda v: studies[v]["score"])
    plain = [v for v in studies if not VARIANTS[v][0]]
    if VARIANTS[best][0] and plain:
        cheaper = max(plain, key=lambda v: studies[v]["score"])
        if studies[best]["score"] - studies[cheaper]["score"] <= margin:
            return cheaper
    return best


def variants_table(studies, variant, pc):
    rows = []
    for name, s in studies.items():
        flip, centred = VARIANTS[name]
        v = s["verify"]
        rows.append([f"**{name}** (chosen)" if name == variant else name, "yes" if flip else "no",
                     "yes" if centred else "no", pc.candidate_name(s["cluster"]), f"{s['f1']:.4f}",
                     f"{s['identify']:.2f}", f"{s['accuracy']:.4f}", f"{s['score']:.4f}", f"{s['check_f1']:.4f}",
                     f"{s['check_accuracy']:.4f}", f"{s['check_far']:.4f}", f"{v['threshold']:.4f}",
                     f"{v['test_accuracy']:.4f}"])
    return pc.markdown_table(["variant", "flip", "centred", "cluster default (select)", "select mean F1",
                              "identify threshold (select)", "select identify accuracy", "select score",
                              "check mean F1", "check identify accuracy", "check worst FAR",
                              "verify threshold (LFW DevTrain)", "verify accuracy (LFW DevTest)"], rows)


def main(argv):
    del argv
    from facenet_tf import paths
    from facenet_tf.api import FaceNet
    from facenet_tf.atomic import write_text_atomically
    from facenet_tf.evaluation import photo_collections as pc

    started, enrolled = time.time(), [int(n) for n in F.enrolled]
    lfw_root = paths.command_lfw_root(F.data_dir)
    root = paths.lfw_images_dir(lfw_root)
    folders = pc.build_collections(root, F.collections_dir or paths.cache_dir() / "photo_collections", F.seed,
                                   rebuild=F.rebuild)
    net = FaceNet("msceleb", centre=False)  # plain embeddings: the variants are made from them and their mirrors
    bad = sorted(set(F.variants) - set(VARIANTS))
    if bad or not F.variants:
        raise app.UsageError(f"--variants: unknown {bad}; expected some of {sorted(VARIANTS)}")
    studies = {v: study([evaluate(net, key, folder, root, enrolled, pc, v) for key, folder in folders.items()],
                        enrolled, pc) for v in F.variants}
    for v in F.variants:
        studies[v]["verify"] = verify_study(net, lfw_root, v)
    variant = choose_variant(studies, F.flip_margin)
    results, chosen, best_f1, identify = (studies[variant][k] for k in ("results", "cluster", "f1", "identify"))
    select = [r for r in results if r.set == "select"]
    current = ("average", round(F.former, 2))
    ranked = sorted(select[0].sweep, key=lambda c: -pc.mean_score(select, c))
    shown = ranked[:12] + [next(c for c in ranked if c[0] == a) for a in pc.CLUSTER_ALGORITHMS] + [current]
    cpu = next((line.split(":", 1)[1].strip() for line in subprocess.run(
        ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name")), "unknown")
    out = [
        "# `facenet-tf cluster` and `identify` defaults on web-like photo collections", "",
        "Command: `nice -n 10 .venv/bin/python " + " ".join(sys.argv) + "`", "",
        f"Hardware: {cpu} ({os.cpu_count()} CPU cores, no GPU; TensorFlow CPU). Model `{net.model_name}` through "
        f"`facenet_tf.api.FaceNet(\"msceleb\")`: MTCNN, confidence >= {net.min_confidence}, faces >= "
        f"{net.min_face_size} px, margin {net.margin}. This run: {time.time() - started:.0f} s; faces found and "
        f"embedded in {PHOTOS['searched']} photos, read from `cache/photo_defaults/` for {PHOTOS['from the cache']}.",
        "",
        "## Embedding variants", "",
        "Each variant embeds the same detected faces: `flip` averages each face's embedding with its mirror "
        "image's (FaceNet(flip=True), twice the model calls); `centred` subtracts the model's stored reference mean "
        "(`facenet_tf/models/reference/msceleb.json`, written by experiments/reference_mean.py from LFW people in "
        "no pair and no collection) and renormalises (FaceNet(centre=True); squared L2 is then twice the cosine "
        "distance of the mean-subtracted embeddings, the LFW recipe selected on View 1). Each variant's cluster "
        "and identify defaults are chosen on the select collections as below. The variant with the best select "
        "score (mean of its cluster F1 and its identify accuracy at unknown FAR <= "
        f"{F.max_far:g}, mean over 1 and 3 enrolled) is chosen, except that a flip variant, which makes twice the "
        f"model calls, must beat the best variant without flip by more than {F.flip_margin:g} (this margin was "
        "added after a first run of this study found flip_centred ahead of centred by 0.0025 on select, and behind "
        "it on check). The rest of this report is of the chosen variant. Check columns: the variant's "
        "select-chosen defaults on the check collections (other people). Verify columns: the `verify` threshold "
        "of the variant as the API measures a pair (the largest face of each photo, FaceNet.find), the "
        "best-accuracy threshold on LFW View 1 training pairs (pairsDevTrain, 2,200 pairs), and the accuracy it "
        "gives on pairsDevTest (1,000 pairs; pairs with a photo without a face left out: "
        + ", ".join(f"{v} {studies[v]['verify']['view1_train_left_out']} / {studies[v]['verify']['view1_test_left_out']}"
                    for v in studies) + ").", "",
        variants_table(studies, variant, pc), "",
        "## Data", "",
        pc.data_description(root.name, F.seed), "",
        pc.data_table(results), "",
        pc.markdown_table(["collection", "kind", "recipe (drawn per photo)"],
                          [(s.name, s.description, s.summary()) for s in pc.collection_specs()]),
        "", "## Clustering candidates on the select collections", "",
        "All detected faces of a collection are clustered (each *other* face counts as a person of its own); "
        "pairwise precision / recall / F1 from `facenet_tf.evaluation.clustering.pairwise_scores`; agglomerative "
        "clustering (`agglomerative_clustering`, as cuts of one `linkage_tree` per linkage) with average, complete "
        f"and single linkage, and `chinese_whispers`; thresholds {GRID[0]:.2f}-{GRID[-1]:.2f} in 0.02 steps. The 12 "
        "best by mean F1 over the select collections, the best of each algorithm, and the former default (people: "
        "the real people among the detected faces, known and strangers):", "",
        pc.candidates_table(select, shown), "",
        f"The 12 best are within {pc.mean_score(select, ranked[0]) - pc.mean_score(select, ranked[11]):.4f} mean F1 "
        "of each other.", "",
        "## Identify thresholds on the select collections", "",
        "Each collection has its own gallery (`facenet_tf.recognition.Gallery`): its known people with "
        f"{' or '.join(map(str, enrolled))} clean photo(s) each (the largest face of their first reserved images). "
        "Every detected face is a probe. Rank-1: the nearest enrolled person is the right one (known faces). "
        "Accuracy: a known face named right and accepted (distance <= threshold); FAR: a stranger's face accepted "
        "as anyone; other accepted: an *other* face accepted. Pooled over the select collections:", "",
        pc.identify_sweep_table({n: pc.pool([r.identify[n] for r in select]) for n in enrolled},
                                {identify: "chosen", F.former: "former"}), "",
        "## Chosen defaults", "",
        f"- **cluster: {pc.candidate_name(chosen)}**: the highest mean pairwise F1 over the select collections "
        f"({best_f1:.4f}; ties would go to the first of {', '.join(pc.CLUSTER_ALGORITHMS)}, then to the middle of "
        "its tied thresholds).",
        f"- **identify: {identify:.2f}**: the largest threshold of the grid whose pooled stranger FAR on the select "
        f"collections is <= {F.max_far:g} with {' and with '.join(map(str, enrolled))} photo(s) enrolled (accuracy "
        "only grows with the threshold, so this maximises accuracy under that bound).", "",
        "## Every collection: chosen vs former defaults", "",
        pc.clustering_table(results, {"chosen": chosen, "former": current}), "",
        pc.identify_table(results, [identify, F.former]), "",
        "## What the defaults trade away", ""]
    out += pc.trade_offs(results, chosen, current, identify, F.former)
    write_text_atomically(F.output, "\n".join(out) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    app.run(main)
