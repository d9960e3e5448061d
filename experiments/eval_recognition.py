"""Identification, open-set identification and clustering on LFW with one model (paper: "recognition is k-NN",
"clustering ... agglomerative"). Writes results/recognition_lfw.md and contact sheets in results/recognition/.

    nice -n 10 .venv/bin/python experiments/eval_recognition.py --model=inception_resnet_v1 --weights=msceleb \
        --alignment=detect --output=results/recognition_lfw.md --sheets_dir=results/recognition

People with >= --min_images images (158 for 10). Closed set: each person's first image(s) enrolled, the rest probe.
Open set: every other person (sorted by name) enrolled with their first image; the rest of their images are the
known probes, all images of the others the unknown probes. Clustering: all images of the same people.
Thresholds (unless --thresholds): both chosen on LFW View 1 training pairs (pairsDevTrain, the protocol's
development set): the best-accuracy verification threshold and the stricter one with FAR <= 1e-3 there. The
contact sheets use the last one. Embeddings are cached under $FACENET_TF_CACHE_DIR/recognition.

Any prepared tensorflow-datasets split with an image and an identity label takes LFW's place with
``--data_dir=tfds:NAME/SPLIT`` (``--tfds_data_dir``, ``--tfds_image_feature``, ``--tfds_label_feature`` as for
experiments/train.py; facenet_tf/data/tfds_source.py): its people with >= --min_images examples, each image decoded
from the split and aligned in memory. The thresholds are then still chosen on LFW View 1 training pairs (the LFW
root from $FACENET_TF_LFW_DIR, then ../shared/data/lfw) unless --thresholds gives them.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import hashlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

F = flags.FLAGS
flags.DEFINE_string("model", "inception_resnet_v1", "Zoo name, training workdir, .keras file or SavedModel.")
flags.DEFINE_string("weights", "msceleb", "For a zoo name: 'msceleb' (inception_resnet_v1) or a weights file; "
                    "empty for other sources.")
flags.DEFINE_enum("alignment", "detect", ["center", "detect", "landmarks"], "LFW alignment (see facenet_tf.align).")
flags.DEFINE_string("data_dir", None, "LFW root (default: $FACENET_TF_LFW_DIR, then ../shared/data/lfw), or "
                    "tfds:NAME/SPLIT, a prepared tensorflow-datasets split.")
flags.DEFINE_string("tfds_data_dir", None, "With --data_dir=tfds:...: where it is prepared (default: $TFDS_DATA_DIR, "
                    "then ~/tensorflow_datasets).")
flags.DEFINE_string("tfds_image_feature", None, "With --data_dir=tfds:...: the image feature, when ambiguous.")
flags.DEFINE_string("tfds_label_feature", None, "With --data_dir=tfds:...: the identity feature, when ambiguous.")
flags.DEFINE_integer("min_images", 10, "People with at least this many images take part.")
flags.DEFINE_list("enrolled", ["1", "3"], "Closed set: images enrolled per person (one row each).")
flags.DEFINE_list("thresholds", None, "Squared-L2 thresholds for open set and clustering (default: both chosen on "
                  "View 1 training pairs: best accuracy, FAR <= 1e-3).")
flags.DEFINE_list("far_targets", ["0.001", "0.01", "0.1"], "Open set: FAR targets for DIR.")
flags.DEFINE_list("sweep", ["0.6", "0.8", "0.9", "1.0", "1.1", "1.2", "1.3", "1.4"], "Clustering thresholds to list.")
flags.DEFINE_string("output", "results/recognition_lfw.md", "The markdown report.")
flags.DEFINE_string("sheets_dir", "results/recognition", "Where the cluster contact sheets go.")
flags.DEFINE_integer("batch_size", 64, "Embedding batch size.")


def embed_files(embedder, files, align_config):
    """Embeddings of image files (aligned with align_config), cached by model, alignment and file list."""
    import cv2

    from facenet_tf import paths
    from facenet_tf.align import align_images
    from facenet_tf.evaluation.embed import embed

    key = json.dumps([embedder.name, F.weights, repr(align_config), [str(f) for f in files]])
    cache = paths.cache_dir() / "recognition" / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"
    if cache.is_file():
        with np.load(cache) as data:
            return data["embeddings"], data["crops"], str(cache)
    aligned = align_images(files, config=align_config)
    print(aligned.summary())
    embeddings = embed(embedder, aligned.images, batch_size=F.batch_size)
    cache.parent.mkdir(parents=True, exist_ok=True)
    small = np.stack([cv2.resize(img, (80, 80), interpolation=cv2.INTER_AREA) for img in aligned.images])
    np.savez(cache, embeddings=embeddings, crops=small, files=np.array([str(f) for f in files]))
    return embeddings, small, str(cache)


def embed_tfds_rows(embedder, index, rows, align_config):
    """``embed_files`` for rows of an indexed tfds split: decoded and aligned in memory, cached by model,
    alignment, the split's files and the rows."""
    import cv2

    from facenet_tf import paths
    from facenet_tf.align import align_image
    from facenet_tf.data.tfds_source import decode_images
    from facenet_tf.evaluation.embed import embed

    shards = [(path, os.stat(path).st_size, os.stat(path).st_mtime_ns) for path, *_ in index.split.shards]
    key = json.dumps([embedder.name, F.weights, repr(align_config), index.split.source, shards,
                      np.asarray(rows).tolist()])
    cache = paths.cache_dir() / "recognition" / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"
    if cache.is_file():
        with np.load(cache) as data:
            return data["embeddings"], data["crops"], str(cache)
    crops = []
    for start in range(0, len(rows), 256):  # decoded a chunk at a time
        crops += [align_image(image, config=align_config)[0] for image in decode_images(index, rows[start:start + 256])]
    embeddings = embed(embedder, np.stack(crops), batch_size=F.batch_size)
    cache.parent.mkdir(parents=True, exist_ok=True)
    small = np.stack([cv2.resize(img, (80, 80), interpolation=cv2.INTER_AREA) for img in crops])
    np.savez(cache, embeddings=embeddings, crops=small, rows=np.asarray(rows))
    return embeddings, small, str(cache)


def main(argv):
    del argv
    from facenet_tf import paths
    from facenet_tf.align import AlignConfig
    from facenet_tf.data.lfw import list_identities, load_pairs, unique_images
    from facenet_tf.data.tfds_source import index_split, is_tfds_source, open_split
    from facenet_tf.evaluation import clustering, identification, verification
    from facenet_tf.evaluation.embed import load_embedder
    from facenet_tf.recognition import Gallery, write_contact_sheet

    started = time.time()
    tfds_index = None
    try:
        if is_tfds_source(F.data_dir):  # the split, and LFW (its View 1 training pairs) only for the thresholds
            tfds_index = index_split(open_split(F.data_dir, paths.tfds_data_dir(F.tfds_data_dir),
                                                F.tfds_image_feature, F.tfds_label_feature))
            try:
                root = None if F.thresholds else paths.lfw_dir()
            except FileNotFoundError as error:
                raise ValueError(f"--thresholds: not given, and LFW, whose View 1 training pairs choose them, is not "
                                 f"found: {error}") from None
        else:
            root = paths.command_lfw_root(F.data_dir)  # resolved once
            images_dir = paths.lfw_images_dir(root)
        embedder = load_embedder(F.model, F.weights or None)  # --weights= for a workdir, .keras or SavedModel
    except (ValueError, FileNotFoundError) as error:
        raise app.UsageError(str(error))
    align = AlignConfig(mode=F.alignment, output_size=embedder.input_size)
    if tfds_index is None:
        people = {k: v for k, v in list_identities(images_dir).items() if len(v) >= F.min_images}
    else:  # people by name (a ClassLabel's names, text labels; else the label number), their rows in split order
        names, counts = np.unique(tfds_index.labels, return_counts=True)
        kept = names[counts >= F.min_images]
        name_of = (lambda label: tfds_index.names[label]) if tfds_index.names else str
        people = {name_of(int(label)): np.flatnonzero(tfds_index.labels == label) for label in kept}
        people = dict(sorted(people.items()))
    files = [f for images in people.values() for f in images]
    labels = np.array([name for name, images in people.items() for _ in images])
    position = {name: int(np.flatnonzero(labels == name)[0]) for name in people}
    if tfds_index is None:
        embeddings, crops, cache = embed_files(embedder, files, align)
    else:
        embeddings, crops, cache = embed_tfds_rows(embedder, tfds_index, np.asarray(files, np.int64), align)
    where = "LFW" if tfds_index is None else f"`{F.data_dir}`"
    report = [f"# Recognition and clustering on {where} ({embedder.name}, `{F.alignment}` alignment)", "",
              "Command: `nice -n 10 .venv/bin/python " + " ".join(sys.argv) + "`", "",
              f"{len(people)} people with >= {F.min_images} images, {len(files)} images. "
              f"Embeddings: `{_relative(cache)}`.", ""]

    if F.thresholds:
        thresholds = [float(t) for t in F.thresholds]
        report += [f"Thresholds {', '.join(f'{t:.4f}' for t in thresholds)} (given with --thresholds).", ""]
    else:
        pairs = load_pairs("view1_train", root)
        unique = unique_images(pairs)
        pair_embeddings, _, _ = embed_files(embedder, list(unique.paths), align)
        distances = verification.squared_l2(pair_embeddings[unique.index_a], pair_embeddings[unique.index_b])
        best, accuracy = verification.best_accuracy_threshold(distances, pairs.is_same)
        strict, far = verification.threshold_at_far(distances, pairs.is_same, 1e-3)
        thresholds = [best, strict]
        report += [f"Thresholds, both chosen on LFW View 1 training pairs (pairsDevTrain, {len(pairs)} pairs, the "
                   f"protocol's development set): **{best:.4f}**, best verification accuracy there ({accuracy:.4f}); "
                   f"**{strict:.4f}**, the largest with FAR <= 1e-3 there (FAR {far:.4f}).", ""]

    report += ["## Closed-set identification", "",
               "Identity distance = min squared L2 over the identity's enrolled embeddings; rank = 1 + number of "
               "other identities at least as close. Balanced = mean over people of their probes' rank-1.", "",
               "| enrolled per person | identities | probes | rank-1 | rank-5 | rank-10 | balanced rank-1 |",
               "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for n_enrolled in (int(n) for n in F.enrolled):
        enrolled, probes = identification.enrolment_split(people, n_enrolled)
        gallery = Gallery()
        gallery.add([n for n, _ in enrolled], embeddings[[position[n] + i for n, i in enrolled]])
        probe_rows = [position[n] + i for n, i in probes]
        result = identification.closed_set_identification(gallery, embeddings[probe_rows], labels[probe_rows])
        report.append(f"| {n_enrolled} | {result.n_identities} | {len(probe_rows)} | {result.accuracy(1):.4f} | "
                      f"{result.accuracy(5):.4f} | {result.accuracy(10):.4f} | {result.balanced_rank1:.4f} |")

    names = sorted(people)
    enrolled_people, unknown_people = names[0::2], names[1::2]
    gallery = Gallery()
    gallery.add(enrolled_people, embeddings[[position[n] for n in enrolled_people]])
    known = np.isin(labels, enrolled_people) & ~np.isin(np.arange(len(labels)), list(position.values()))
    unknown = np.isin(labels, unknown_people)
    open_set = identification.open_set_identification(
        gallery, embeddings[known], labels[known], embeddings[unknown],
        far_targets=[float(t) for t in F.far_targets], thresholds=thresholds)
    report += ["", "## Open-set identification", "",
               f"{len(enrolled_people)} people enrolled (every other name, first image); {int(known.sum())} known "
               f"probes (their other images), {int(unknown.sum())} unknown probes (all images of the other "
               f"{len(unknown_people)} people). DIR = known probe identified correctly and accepted; FAR = unknown "
               "probe accepted.", "", open_set.format_table()]

    started_clustering = time.time()
    tree = clustering.linkage_tree(embeddings, "average")
    rows = []
    for threshold in thresholds:
        rows.append((f"agglomerative, average linkage, {threshold:.4f}", clustering.cut_tree(tree, threshold)))
        for linkage in ("complete", "single"):
            rows.append((f"agglomerative, {linkage} linkage, {threshold:.4f}",
                         clustering.agglomerative_clustering(embeddings, threshold, linkage)))
        rows.append((f"Chinese whispers, {threshold:.4f}", clustering.chinese_whispers(embeddings, threshold)))
    sweep = [float(t) for t in F.sweep]
    report += ["", "## Clustering", "",
               f"All {len(files)} images, {len(people)} true identities ({time.time() - started_clustering:.1f} s "
               "for these rows).", "",
               clustering.format_scores([(name, clustering.pairwise_scores(labels, lab)) for name, lab in rows]),
               "", "At other thresholds (for reference only: chosen on these people, it would be tuning on the test "
               "data):", "",
               clustering.format_scores([(f"average linkage, {t:.2f}", s) for t, s in clustering.threshold_sweep(
                   tree, labels, sweep)] + [(f"Chinese whispers, {t:.2f}", clustering.pairwise_scores(
                       labels, clustering.chinese_whispers(embeddings, t))) for t in sweep])]

    average = rows[-4][1]  # average linkage at the last (strictest by default) threshold
    composition = clustering.cluster_composition(average, labels)
    impure = sorted((c for c in composition if c.size >= 3 and c.purity < 1), key=lambda c: (c.purity, c.cluster))
    sheets = []
    for title, chosen in (("largest", composition[:10]), ("mixed", impure[:8])):
        rows = [_faces_by_identity(np.flatnonzero(average == c.cluster), labels, title == "mixed") for c in chosen]
        sheets.append(write_contact_sheet(Path(F.sheets_dir) / f"lfw_clusters_{title}.png", [crops[r] for r in rows],
                                          [c.describe() for c in chosen], max_per_row=14, label_width=230))
    report += ["", f"Contact sheets (average linkage, {thresholds[-1]:.4f}): " + ", ".join(f"`{s}`" for s in sheets)
               + " — the 10 largest clusters; the impure clusters of >= 3 faces, least pure first, showing up to 4 "
               "faces of each identity in them.", "", f"Total time {time.time() - started:.0f} s (embeddings from the "
               "cache when present)."]
    Path(F.output).parent.mkdir(parents=True, exist_ok=True)
    Path(F.output).write_text("\n".join(report) + "\n")
    print("\n".join(report))


def _relative(path):
    return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path


def _faces_by_identity(rows, labels, mixed):
    """The rows to show: all (in order), or for a mixed cluster up to 4 of each identity, largest identity first."""
    if not mixed:
        return rows
    names, counts = np.unique(labels[rows], return_counts=True)
    return np.concatenate([rows[labels[rows] == name][:4] for name in names[np.argsort(-counts, kind="stable")]])


if __name__ == "__main__":
    app.run(main)
