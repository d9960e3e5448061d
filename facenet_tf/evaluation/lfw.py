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


SetEmbeddings = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None]

#: Test-time crops: each view is (dx, dy, margin change) of the detected box (``AlignConfig.shift``, in fractions
#: of the face size, and ``margin`` + the change); an image's embedding is the normalised sum over its views.
TEST_TIME_CROPS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "none": ((0.0, 0.0, 0.0),),
    "shift5": ((0.0, 0.0, 0.0), (-0.05, 0.0, 0.0), (0.05, 0.0, 0.0), (0.0, -0.05, 0.0), (0.0, 0.05, 0.0)),
    "scale3": ((0.0, 0.0, -0.1), (0.0, 0.0, 0.0), (0.0, 0.0, 0.1)),
}


def test_time_views(align: AlignConfig, crops: str) -> list[AlignConfig]:
    """The alignments of the test-time crops ``crops`` (a key of :data:`TEST_TIME_CROPS`) around ``align``
    (``detect`` alignment with a relative margin only)."""
    if crops not in TEST_TIME_CROPS:
        raise ValueError(f"test-time crops must be one of {sorted(TEST_TIME_CROPS)}, got {crops!r}")
    if crops != "none" and (align.mode != "detect" or align.margin_pixels is not None):
        raise ValueError(f"test-time crops {crops!r} need the detect alignment with a relative margin")
    views = []
    for dx, dy, dm in TEST_TIME_CROPS[crops]:
        if align.margin + dm < 0:
            raise ValueError(f"test-time crops {crops!r}: margin {align.margin} {dm:+} is negative")
        views.append(dataclasses.replace(align, shift=(align.shift[0] + dx, align.shift[1] + dy),
                                         margin=round(align.margin + dm, 6)))
    return views


def embed_pairs(embedder: Embedder, pair_sets: list[PairArrays], align: AlignConfig, mirrored: bool = False,
                progress: bool = True, batch_size: int = 64, cache: bool = True,
                cache_root: str | Path | None = None, crops: str = "none") -> tuple[list[SetEmbeddings], dict]:
    """Aligns and embeds every distinct image of ``pair_sets`` once (and, with ``mirrored``, its mirror image
    once); returns, per set, the embeddings of its pairs' two sides ``(a, b)`` and of their mirror images (or
    None), and statistics: alignment (fallbacks are counted, as the paper reports its two) and
    ``mean_pairwise_distance`` (``mean_pairwise_distance`` of the distinct images' embeddings: ~2 for unrelated
    unit vectors, 0 for a collapsed model). ``crops``: test-time crops (:data:`TEST_TIME_CROPS`; each image's
    embedding is the normalised sum over its views, the mirror images' likewise)."""
    images = sorted({p for s in pair_sets for p in s.paths_a + s.paths_b})
    position = {p: i for i, p in enumerate(images)}
    plain = mirror = aligned = None
    for view in test_time_views(align, crops):
        aligned = align_images(images, config=view, progress=progress, cache=cache, cache_root=cache_root)
        out = embed(embedder, aligned.images, batch_size=batch_size, progress=progress, sources=images)
        plain = out if plain is None else plain + out
        if mirrored:
            out = embed(embedder, aligned.images[:, :, ::-1], batch_size=batch_size, progress=progress,
                        description="embedding mirrors", sources=images)
            mirror = out if mirror is None else mirror + out
    if crops != "none":
        plain, mirror = l2_normalize(plain), None if mirror is None else l2_normalize(mirror)
    result = []
    for s in pair_sets:
        a, b = [position[p] for p in s.paths_a], [position[p] for p in s.paths_b]
        result.append(((plain[a], plain[b]), None if mirror is None else (mirror[a], mirror[b])))
    stats = {"images": len(images), "fallbacks": aligned.fallback_count, "fallback_images": aligned.fallbacks[:20],
             "alignment_summary": aligned.summary(), "mean_pairwise_distance": mean_pairwise_distance(plain)}
    return result, stats


def mean_pairwise_distance(embeddings: np.ndarray) -> float | None:
    """The mean squared L2 distance over all pairs of distinct rows (the paper's D), in O(n d): n^2 / (n (n - 1))
    times twice the mean squared norm minus the squared norm of the mean. None for fewer than two rows."""
    x = np.asarray(embeddings, np.float64)
    n = len(x)
    if n < 2:
        return None
    spread = 2 * (np.einsum("ij,ij->", x, x) / n - np.square(x.mean(axis=0)).sum())
    return float(max(0.0, spread) * n / (n - 1))


def score_pair_sets(recipe: verification.Recipe, sets: list[PairArrays], embeddings: list[SetEmbeddings],
                    view1: bool, far_target: float = 1e-3) -> verification.VerificationResult:
    """The protocol's result of ``recipe``: View 1 (two sets: thresholds and mean on DevTrain, accuracy on
    DevTest) or k folds of one set."""
    if view1:
        (train, test), ((train_plain, train_mirror), (plain, mirror)) = sets, embeddings
        return recipe.score(plain, mirror, test.is_same, train=(train_plain, train_mirror, train.is_same),
                            far_target=far_target)
    (test,), ((plain, mirror),) = sets, embeddings
    return recipe.score(plain, mirror, test.is_same, folds=test.folds, far_target=far_target)


def evaluate_lfw_variants(embedder: Embedder, pairs: str = "view2", root: str | None = None,
                          alignment: str = "detect", flips: tuple[bool, ...] = (False,), subset: int | None = None,
                          align_overrides: dict | None = None, far_target: float = 1e-3, progress: bool = True,
                          batch_size: int = 64, cache: bool = True, cache_root: str | Path | None = None,
                          pair_sets: list[PairArrays] | None = None,
                          recipes: tuple[verification.Recipe, ...] | None = None, crops: str = "none") -> list[dict]:
    """One report (JSON-ready dict) per recipe, sharing the alignment and embedding work. ``recipes``
    (``verification.Recipe``: flip mode, distance, training-fold mean subtraction) default to one per entry of
    ``flips`` (False: the plain embeddings; True: with the mirror image's, averaged), squared L2.
    ``pair_sets``: ``load_pair_sets(pairs, root, subset)`` when already loaded (a command checks its inputs
    before loading the model). ``crops``: test-time crops (:data:`TEST_TIME_CROPS`)."""
    recipes = recipes or tuple(verification.Recipe(flip="mean" if flip else "none") for flip in flips)
    align = AlignConfig(mode=alignment, output_size=embedder.input_size, **(align_overrides or {}))
    sets = pair_sets if pair_sets is not None else load_pair_sets(pairs, root, subset)
    embeddings, stats = embed_pairs(embedder, sets, align, any(r.flip != "none" for r in recipes), progress,
                                    batch_size, cache, cache_root, crops)
    reports = []
    for recipe in recipes:
        result = score_pair_sets(recipe, sets, embeddings, pairs == "view1", far_target)
        test = sets[-1]
        reports.append({"model": embedder.name, "pairs": pairs, "n_pairs": len(test.is_same),
                        "subset_per_fold": subset, **provenance(sets), "alignment": dataclasses.asdict(align),
                        "flip": recipe.flip != "none", "recipe": dataclasses.asdict(recipe), "test_time_crops": crops,
                        **stats,
                        "metrics": result.to_dict(), "table": result.format_table(), "_result": result})
    return reports


@dataclasses.dataclass(frozen=True)
class FusionMember:
    """One model of a fusion: its embedder, its alignment and how its mirror images are used (``flip``, a
    ``verification.FLIP_MODES`` entry), each as selected for that model alone."""

    embedder: Embedder
    align: AlignConfig
    flip: str = "none"


def fuse_embeddings(parts: list[np.ndarray]) -> np.ndarray:
    """The unit embeddings of several models side by side, each scaled by 1/sqrt(k): a unit vector whose squared
    L2 distance is the mean of the models' squared L2 distances."""
    return np.concatenate([np.asarray(p, np.float64) for p in parts], axis=1) / np.sqrt(len(parts))


def evaluate_lfw_fusion(members: list[FusionMember], pairs: str = "view2", root: str | None = None,
                        subset: int | None = None, recipes: tuple[verification.Recipe, ...] = (verification.Recipe(),),
                        far_target: float = 1e-3, progress: bool = True, batch_size: int = 64, cache: bool = True,
                        cache_root: str | Path | None = None,
                        pair_sets: list[PairArrays] | None = None) -> list[dict]:
    """Several models as one: each member embeds the pairs' images with its own alignment and flip mode; their
    unit embeddings are concatenated (``fuse_embeddings``) and every recipe scores the joint vectors (its
    ``flip`` must be ``none``: the members' own flip modes apply). One report per recipe."""
    if len(members) < 2:
        raise ValueError(f"a fusion needs at least two members, got {len(members)}")
    if any(r.flip != "none" for r in recipes):
        raise ValueError("fusion recipes take flip=none: each member's flip mode applies to its own embeddings")
    sets = pair_sets if pair_sets is not None else load_pair_sets(pairs, root, subset)
    per_member, all_stats = [], []
    for member in members:
        embeddings, stats = embed_pairs(member.embedder, sets, member.align, member.flip != "none", progress,
                                        batch_size, cache, cache_root)
        per_member.append([tuple(verification.combine_flip(p, None if m is None else m[i], member.flip)
                                 for i, p in enumerate(plain)) for plain, m in embeddings])
        all_stats.append(stats)
    fused = [((fuse_embeddings([m[k][0] for m in per_member]), fuse_embeddings([m[k][1] for m in per_member])),
              None) for k in range(len(sets))]
    reports = []
    for recipe in recipes:
        result = score_pair_sets(recipe, sets, fused, pairs == "view1", far_target)
        reports.append({"model": " + ".join(m.embedder.name for m in members), "pairs": pairs,
                        "n_pairs": len(sets[-1].is_same), "subset_per_fold": subset, **provenance(sets),
                        "members": [{"model": m.embedder.name, "alignment": dataclasses.asdict(m.align),
                                     "flip": m.flip, "fallbacks": st["fallbacks"], "images": st["images"]}
                                    for m, st in zip(members, all_stats)],
                        "alignment": dataclasses.asdict(members[0].align), "flip": False,
                        "recipe": dataclasses.asdict(recipe), "fallbacks": sum(st["fallbacks"] for st in all_stats),
                        "images": all_stats[0]["images"],
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
    recipe = report.get("recipe") or {"flip": "mean" if report["flip"] else "none"}
    extras = [f"flip {recipe['flip']}" if recipe["flip"] != "none" else "",
              "cosine" if recipe.get("distance") == "cosine" else "",
              "mean subtracted" if recipe.get("subtract_mean") else ""]
    label = f"{report['model']} ({', '.join([report['alignment']['mode'], *filter(None, extras)])})"
    return write_results(report, {label: report["_result"].roc}, output_dir, f"LFW {report['pairs']}: ROC")


def evaluate_lfw(embedder: Embedder, pairs: str = "view2", root: str | None = None, alignment: str = "detect",
                 flip: bool = False, subset: int | None = None, output_dir: str | Path | None = None,
                 align_overrides: dict | None = None, far_target: float = 1e-3, progress: bool = True,
                 batch_size: int = 64, cache: bool = True, cache_root: str | Path | None = None,
                 extra: dict | None = None, pair_sets: list[PairArrays] | None = None,
                 recipe: verification.Recipe | None = None, crops: str = "none") -> dict:
    """Runs the protocol; returns a JSON-ready dict (plus ``extra``, e.g. the command line) and, with
    ``output_dir``, writes ``results.json`` and ``roc.png`` there (only once every pair has been scored).
    ``recipe`` (``verification.Recipe``), when given, replaces ``flip``; ``crops``: test-time crops.

    Raises (expected failures, each naming what is wrong): ``PairsError`` (bad ``pairs``), ``FileNotFoundError``
    (no image tree, a missing image), ``ImageReadError`` (an unreadable image), ``NonFiniteEmbeddingError``."""
    (report,) = evaluate_lfw_variants(embedder, pairs, root, alignment, (flip,), subset, align_overrides,
                                      far_target, progress, batch_size, cache, cache_root, pair_sets,
                                      None if recipe is None else (recipe,), crops)
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

    Names resolve under ``root``, the LFW root the command resolved (``facenet_tf.paths.command_lfw_root``; a name
    without it is a one-line ``FileNotFoundError``); a pairs file path reads the image tree beside it, or
    ``root``'s when ``root`` is given (``facenet_tf.data.lfw.load_pairs``). Every image is checked to exist."""
    if pairs == "view1":
        return [PairArrays.from_pairs(load_pairs(name, root), subset) for name in ("view1_train", "view1_test")]
    if pairs == "view1_test_cv":
        test = PairArrays.from_pairs(load_pairs("view1_test", root), subset)
        return [dataclasses.replace(test, folds=cross_validation_folds(test.is_same))]
    return [PairArrays.from_pairs(load_pairs(pairs, root), subset)]
