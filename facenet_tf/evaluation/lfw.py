"""The LFW verification run: pairs -> aligned crops -> embeddings (once per image) -> squared L2 distances ->
the protocol's metrics (paper, "Evaluation"; shared/data/README.md).

- ``view2`` (pairs.txt, the reported figure): 10 folds, each fold's threshold chosen on the other nine; mean
  accuracy ± standard error, VAL at FAR = 1e-3, ROC, AUC, EER.
- ``view1`` (development / model selection): thresholds chosen on pairsDevTrain, applied to pairsDevTest.
- Any pairs file path: evaluated as its folds say, on the image tree beside it (or under ``root`` when given;
  ``facenet_tf.data.lfw.load_pairs``), never on the default LFW tree.

Every report records ``image_root`` (the absolute image tree read) and ``pairs_files`` (each protocol file's
absolute path and SHA-256). An image that cannot be read stops the run with an error naming it
(``facenet_tf.data.images.ImageReadError``), and a model yielding a NaN or infinite embedding is refused
(``facenet_tf.evaluation.embed.NonFiniteEmbeddingError``): nothing is dropped from the protocol in silence.

``subset=n`` keeps the first ``n`` same and ``n`` different pairs of every fold (fast end-to-end checks).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from facenet_tf.align import AlignConfig, align_images
from facenet_tf.atomic import write_json_atomically
from facenet_tf.data.lfw import PairsFile, load_pairs
from facenet_tf.evaluation import verification
from facenet_tf.evaluation.embed import Embedder, embed, l2_normalize


@dataclasses.dataclass(frozen=True)
class PairArrays:
    """The pairs of one protocol file as flat arrays (optionally a per-fold subset), with where they came from:
    ``pairs_file`` and ``images_dir`` (absolute) and the file's ``sha256`` (None when built by hand)."""

    paths_a: tuple[str, ...]
    paths_b: tuple[str, ...]
    is_same: np.ndarray
    folds: np.ndarray
    pairs_file: str | None = None
    images_dir: str | None = None
    sha256: str | None = None

    @classmethod
    def from_pairs(cls, pairs: PairsFile, subset: int | None = None) -> "PairArrays":
        keep = np.ones(len(pairs), bool)
        if subset is not None:
            keep[:] = False
            for fold in np.unique(pairs.folds):
                for same in (True, False):
                    members = np.flatnonzero((pairs.folds == fold) & (pairs.is_same == same))
                    keep[members[:subset]] = True
        idx = np.flatnonzero(keep)
        return cls(tuple(str(pairs.paths_a[i]) for i in idx), tuple(str(pairs.paths_b[i]) for i in idx),
                   pairs.is_same[idx], pairs.folds[idx], str(pairs.path.absolute()),
                   str(pairs.images_dir.absolute()), pairs.sha256)


def provenance(pair_sets: list[PairArrays]) -> dict:
    """``{"image_root": ..., "pairs_files": [{"path", "sha256"}, ...]}`` of loaded pair sets, for a report."""
    roots = sorted({s.images_dir for s in pair_sets if s.images_dir is not None})
    return {"image_root": roots[0] if len(roots) == 1 else roots,
            "pairs_files": [{"path": s.pairs_file, "sha256": s.sha256} for s in pair_sets]}


def embed_pairs(embedder: Embedder, pair_sets: list[PairArrays], align: AlignConfig,
                flips: tuple[bool, ...] = (False,), progress: bool = True, batch_size: int = 64,
                cache: bool = True, cache_root: str | Path | None = None) -> tuple[dict[bool, list[np.ndarray]], dict]:
    """Aligns and embeds every distinct image of ``pair_sets`` once (and its mirror image once, if a flip
    variant is asked for); returns ``{flip: [distances of each set]}`` and alignment statistics (fallbacks are
    counted, as the paper reports its two)."""
    images = sorted({p for s in pair_sets for p in s.paths_a + s.paths_b})
    position = {p: i for i, p in enumerate(images)}
    aligned = align_images(images, config=align, progress=progress, cache=cache, cache_root=cache_root)
    plain = embed(embedder, aligned.images, batch_size=batch_size, progress=progress, sources=images)
    mirrored = None
    if True in flips:
        mirrored = embed(embedder, aligned.images[:, :, ::-1], batch_size=batch_size, progress=progress,
                         description="embedding mirrors", sources=images)
    distances: dict[bool, list[np.ndarray]] = {}
    for flip in flips:
        embeddings = l2_normalize(plain + mirrored) if flip else plain
        distances[flip] = [verification.squared_l2(embeddings[[position[p] for p in s.paths_a]],
                                                   embeddings[[position[p] for p in s.paths_b]])
                           for s in pair_sets]
    stats = {"images": len(images), "fallbacks": aligned.fallback_count, "fallback_images": aligned.fallbacks[:20],
             "alignment_summary": aligned.summary()}
    return distances, stats


def evaluate_lfw_variants(embedder: Embedder, pairs: str = "view2", root: str | None = None,
                          alignment: str = "detect", flips: tuple[bool, ...] = (False,), subset: int | None = None,
                          align_overrides: dict | None = None, far_target: float = 1e-3, progress: bool = True,
                          batch_size: int = 64, cache: bool = True, cache_root: str | Path | None = None,
                          pair_sets: list[PairArrays] | None = None) -> list[dict]:
    """One report (JSON-ready dict) per entry of ``flips``, sharing the alignment and embedding work.
    ``pair_sets``: ``load_pair_sets(pairs, root, subset)`` when already loaded (a command checks its inputs
    before loading the model)."""
    align = AlignConfig(mode=alignment, output_size=embedder.input_size, **(align_overrides or {}))
    sets = pair_sets if pair_sets is not None else load_pair_sets(pairs, root, subset)
    distances, stats = embed_pairs(embedder, sets, align, flips, progress, batch_size, cache, cache_root)
    reports = []
    for flip in flips:
        if pairs == "view1":
            (train, test), (d_train, d_test) = sets, distances[flip]
            result = verification.evaluate_with_train_split(d_train, train.is_same, d_test, test.is_same,
                                                            far_target)
        else:
            (test,), (d_test,) = sets, distances[flip]
            result = verification.evaluate_verification(d_test, test.is_same, test.folds, far_target)
        reports.append({"model": embedder.name, "pairs": pairs, "n_pairs": len(test.is_same),
                        "subset_per_fold": subset, **provenance(sets), "alignment": dataclasses.asdict(align),
                        "flip": flip, **stats,
                        "metrics": result.to_dict(), "table": result.format_table(), "_result": result})
    return reports


def write_results(results: dict, curves: dict, output_dir: str | Path, title: str) -> list[str]:
    """Writes ``roc.png`` (the ROC ``curves``) and then ``results.json`` (``results`` without its private
    ``_``-keys, at any depth) into ``output_dir``, each atomically; returns the two paths."""
    from facenet_tf.evaluation.plots import plot_roc

    out = Path(output_dir)
    plot_roc(curves, out / "roc.png", title=title)
    public = json.loads(json.dumps(_public(results), default=_json_default))
    write_json_atomically(out / "results.json", public)
    return [str(out / "results.json"), str(out / "roc.png")]


def _public(value):
    if isinstance(value, dict):
        return {k: _public(v) for k, v in value.items() if not (isinstance(k, str) and k.startswith("_"))}
    return value


def write_report(report: dict, output_dir: str | Path) -> list[str]:
    """Writes ``results.json`` and ``roc.png`` of one report into ``output_dir``."""
    label = f"{report['model']} ({report['alignment']['mode']}{', flip' if report['flip'] else ''})"
    return write_results(report, {label: report["_result"].roc}, output_dir, f"LFW {report['pairs']}: ROC")


def evaluate_lfw(embedder: Embedder, pairs: str = "view2", root: str | None = None, alignment: str = "detect",
                 flip: bool = False, subset: int | None = None, output_dir: str | Path | None = None,
                 align_overrides: dict | None = None, far_target: float = 1e-3, progress: bool = True,
                 batch_size: int = 64, cache: bool = True, cache_root: str | Path | None = None,
                 extra: dict | None = None, pair_sets: list[PairArrays] | None = None) -> dict:
    """Runs the protocol; returns a JSON-ready dict (plus ``extra``, e.g. the command line) and, with
    ``output_dir``, writes ``results.json`` and ``roc.png`` there (only once every pair has been scored).

    Raises (expected failures, each naming what is wrong): ``PairsError`` (bad ``pairs``), ``FileNotFoundError``
    (no image tree, a missing image), ``ImageReadError`` (an unreadable image), ``NonFiniteEmbeddingError``."""
    (report,) = evaluate_lfw_variants(embedder, pairs, root, alignment, (flip,), subset, align_overrides,
                                      far_target, progress, batch_size, cache, cache_root, pair_sets)
    report.update(extra or {})
    if output_dir is not None:
        report["files"] = write_report(report, output_dir)
    return report


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")


def cross_validation_folds(is_same: np.ndarray, n_folds: int = 10) -> np.ndarray:
    """Fold of each pair for cross-validation inside one unfolded pairs set: same pairs and different pairs are
    each dealt out to the folds in file order (pair k of its kind -> fold k mod ``n_folds``), so every fold has
    the same mix of the two kinds as the whole set."""
    is_same = np.asarray(is_same, bool)
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    folds = np.empty(is_same.size, np.int64)
    for kind in (True, False):
        members = np.flatnonzero(is_same == kind)
        folds[members] = np.arange(members.size) % n_folds
    if min(np.bincount(folds[is_same], minlength=n_folds).min(),
           np.bincount(folds[~is_same], minlength=n_folds).min()) == 0:
        raise ValueError(f"{int(is_same.sum())} same and {int((~is_same).sum())} different pairs cannot fill "
                         f"{n_folds} folds with both kinds")
    return folds


def load_pair_sets(pairs: str, root: str | None = None, subset: int | None = None) -> list[PairArrays]:
    """``[train, test]`` for ``view1``, ``[pairs]`` otherwise. ``view1_test_cv`` is View 1's DevTest alone, cut
    into 10 folds (``cross_validation_folds``) so that thresholds come from other DevTest pairs: unlike DevTrain's
    identities, which a model trained with ``--exclude_pairs=view1_test`` has seen, none of them was trained on.

    Names resolve under the LFW root (``root``, else ``$FACENET_TF_LFW_DIR``, else ``../shared/data/lfw``); a
    pairs file path reads the image tree beside it, or ``root``'s when ``root`` is given
    (``facenet_tf.data.lfw.load_pairs``). Every image is checked to exist."""
    if pairs == "view1":
        return [PairArrays.from_pairs(load_pairs(name, root), subset) for name in ("view1_train", "view1_test")]
    if pairs == "view1_test_cv":
        test = PairArrays.from_pairs(load_pairs("view1_test", root), subset)
        return [dataclasses.replace(test, folds=cross_validation_folds(test.is_same))]
    return [PairArrays.from_pairs(load_pairs(pairs, root), subset)]
