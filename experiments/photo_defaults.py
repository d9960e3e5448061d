"""The `facenet-tf cluster` / `identify` defaults measured on degraded photo collections made from LFW people
(facenet_tf.evaluation.photo_collections): chosen on the `select` collections, reported on the `check` ones
(other people), beside the former defaults (agglomerative, average linkage, 0.92). Writes one markdown file.

    nice -n 10 .venv/bin/python experiments/photo_defaults.py --output=results/photo_defaults.md

Faces are found and embedded with facenet_tf.api.FaceNet("msceleb") (cached in $FACENET_TF_CACHE_DIR/photo_defaults,
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
GRID = np.round(np.arange(0.60, 1.4001, 0.02), 2)
PHOTOS = {"searched": 0, "from the cache": 0}  # photos whose faces this run found and embedded / read back


def faces(net, files, which):
    """(sources, boxes, embeddings) of the faces of ``files`` (``which``: FaceNet.find's choice), cached."""
    from facenet_tf import paths

    key = hashlib.sha1(json.dumps([net.model_name, which, net.margin, net.min_confidence, net.min_face_size]).encode())
    for file in files:
        key.update(str(file).encode() + Path(file).read_bytes())
    cache = paths.cache_dir() / "photo_defaults" / f"{key.hexdigest()[:20]}.npz"
    PHOTOS["from the cache" if cache.is_file() else "searched"] += len(files)
    if not cache.is_file():
        found, embeddings = net.find(files, which)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache.with_suffix(".tmp.npz"), sources=np.array([r.source for r in found.records], str),
                 boxes=np.array([r.box for r in found.records]).reshape(-1, 4), embeddings=embeddings)
        os.replace(cache.with_suffix(".tmp.npz"), cache)
    with np.load(cache) as data:
        return data["sources"].tolist(), data["boxes"], data["embeddings"]


def evaluate(net, key, folder, root, enrolled, pc):
    """One collection: detect, embed, label, sweep the clustering candidates, identify against its own gallery."""
    from facenet_tf.recognition import Gallery

    truth = pc.load_truth(folder)
    sources, boxes, embeddings = faces(net, [folder / p["file"] for p in truth["photos"]], "all")
    labels, counts = pc.label_detections(truth, zip(sources, boxes))
    people = {n: [root / f for f in p["enrol"]] for n, p in truth["people"].items() if not p["unknown"]}
    clean, _, clean_embeddings = faces(net, [f for files in people.values() for f in files], "largest")
    row = {source: i for i, source in enumerate(clean)}
    identify = {}
    for n in enrolled:  # each person's first n reserved photos in which a face was found
        gallery = Gallery()
        for name, files in people.items():
            gallery.add(name, clean_embeddings[[row[str(f)] for f in files if str(f) in row][:n]])
        identify[n] = pc.identify_scores(*gallery.identity_distances(embeddings), labels, GRID)
    sweep = pc.clustering_sweep(embeddings, pc.cluster_labels(labels), GRID)
    return pc.CollectionResult(key[0], key[1], truth, labels, counts, sweep, identify)


def main(argv):
    del argv
    from facenet_tf import paths
    from facenet_tf.api import FaceNet
    from facenet_tf.evaluation import photo_collections as pc

    started, enrolled = time.time(), [int(n) for n in F.enrolled]
    root = paths.lfw_images_dir(paths.command_lfw_root(F.data_dir))
    folders = pc.build_collections(root, F.collections_dir or paths.cache_dir() / "photo_collections", F.seed,
                                   rebuild=F.rebuild)
    net = FaceNet("msceleb")
    results = [evaluate(net, key, folder, root, enrolled, pc) for key, folder in folders.items()]
    select = [r for r in results if r.set == "select"]
    chosen, best_f1 = pc.choose_cluster_default({r.name: r.sweep for r in select})
    identify, _, _ = pc.choose_identify_default([pc.pool([r.identify[n] for r in select]) for n in enrolled],
                                                F.max_far)
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
    Path(F.output).parent.mkdir(parents=True, exist_ok=True)
    Path(F.output).write_text("\n".join(out) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    app.run(main)
