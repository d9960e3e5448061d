"""Cross-model (harmonic) verification on LFW: every image aligned and embedded by each of two models (each at its
own input size), pairs scored old-old, new-new and old-new (``CROSS_COMPARISONS``; with one new model per group
of folds for models trained without the identities they score), and ``harmonic_diagnosis``: why old-new scores as
it does. The protocol itself (pairs, folds, thresholds) is ``facenet_tf.evaluation``'s."""

from __future__ import annotations

import collections
import dataclasses
import os

import numpy as np

from facenet_tf.align import AlignConfig, align_images
from facenet_tf.evaluation import verification
from facenet_tf.evaluation.embed import Embedder, embed
from facenet_tf.evaluation.lfw import PairArrays, load_pair_sets, provenance

CROSS_COMPARISONS = ("a-a", "b-b", "a-b", "b-a", "cross")


@dataclasses.dataclass(frozen=True)
class ImageEmbeddings:
    """Embeddings of a list of images by one model: ``vectors[position[path]]``."""

    name: str
    position: dict
    vectors: np.ndarray
    stats: dict

    def of(self, image_paths) -> np.ndarray:
        return self.vectors[[self.position[p] for p in image_paths]]


def pair_images(pair_sets: list[PairArrays]) -> list[str]:
    return sorted({p for s in pair_sets for p in s.paths_a + s.paths_b})


def embed_images(embedder: Embedder, images: list[str], alignment: str = "detect", align_overrides: dict | None = None,
                 progress: bool = True, batch_size: int = 64, cache: bool = True) -> ImageEmbeddings:
    """Aligns ``images`` for this model (its own input size) and embeds each once."""
    align = AlignConfig(mode=alignment, output_size=embedder.input_size, **(align_overrides or {}))
    aligned = align_images(images, config=align, progress=progress, cache=cache)
    vectors = embed(embedder, aligned.images, batch_size=batch_size, progress=progress, sources=images)
    return ImageEmbeddings(embedder.name, {p: i for i, p in enumerate(images)}, vectors,
                           {"images": len(images), "fallbacks": aligned.fallback_count,
                            "alignment": dataclasses.asdict(align)})


def cross_model_distances(a: ImageEmbeddings, b: ImageEmbeddings, pair_set: PairArrays
                          ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``{comparison: (distances, is_same, folds)}`` of one pairs set for every ``CROSS_COMPARISONS`` entry:
    ``a-a`` / ``b-b`` both images by one model; ``a-b`` the pair's first image by model a and the second by model
    b; ``b-a`` the reverse; ``cross`` both orders pooled (every pair twice, once in each order, same fold)."""
    sa, sb = pair_set.paths_a, pair_set.paths_b
    same, folds = pair_set.is_same, pair_set.folds
    out = {
        "a-a": verification.squared_l2(a.of(sa), a.of(sb)),
        "b-b": verification.squared_l2(b.of(sa), b.of(sb)),
        "a-b": verification.squared_l2(a.of(sa), b.of(sb)),
        "b-a": verification.squared_l2(b.of(sa), a.of(sb)),
    }
    result = {k: (v, same, folds) for k, v in out.items()}
    result["cross"] = (np.concatenate([out["a-b"], out["b-a"]]), np.concatenate([same, same]),
                       np.concatenate([folds, folds]))
    return result


def cross_model_distances_by_fold(a: ImageEmbeddings | list[ImageEmbeddings], bs: list[ImageEmbeddings],
                                  pair_set: PairArrays, folds_per_model: int
                                  ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """As ``cross_model_distances``, but the pairs of folds ``[k*folds_per_model, (k+1)*folds_per_model)`` are
    scored with ``bs[k]``: for new models each trained without the identities of the folds it scores (e.g. two
    halves of View 2), so every pair is scored by a model that never saw its people. ``a`` may be a list as long
    as ``bs`` (old models per fold group too), or one model for all folds."""
    olds = a if isinstance(a, list) else [a] * len(bs)
    if len(olds) != len(bs):
        raise ValueError(f"{len(olds)} old models for {len(bs)} new models: give one old model or one per new model.")
    per_model = [cross_model_distances(old, b, pair_set) for old, b in zip(olds, bs)]
    out = {}
    for key, (d0, same, folds) in per_model[0].items():
        owner = folds // folds_per_model
        if owner.max() >= len(bs):
            raise ValueError(f"{len(bs)} models x {folds_per_model} folds do not cover fold {int(folds.max()) + 1}.")
        distances = np.choose(owner, [per_model[k][key][0] for k in range(len(bs))])
        out[key] = (distances, same, folds)
    return out


def evaluate_cross_model(a: ImageEmbeddings | list[ImageEmbeddings], b: ImageEmbeddings | list[ImageEmbeddings],
                         pair_sets: list[PairArrays], pairs: str, far_target: float = 1e-3,
                         folds_per_model: int | None = None) -> dict[str, dict]:
    """One report per comparison (``CROSS_COMPARISONS``) from embeddings of both models: View 1 chooses thresholds
    on the train set, other pairs files use their folds. ``b`` (and ``a``) may be lists of models with
    ``folds_per_model`` (``cross_model_distances_by_fold``)."""
    if isinstance(b, list) or isinstance(a, list):
        if pairs == "view1" or not folds_per_model:
            raise ValueError("Several models per side need a multi-fold pairs file and folds_per_model.")
        bs = b if isinstance(b, list) else [b] * len(a)
        per_set = [cross_model_distances_by_fold(a, bs, s, folds_per_model) for s in pair_sets]
        b = dataclasses.replace(bs[0], name="|".join(m.name for m in bs))
        if isinstance(a, list):
            a = dataclasses.replace(a[0], name="|".join(m.name for m in a))
    else:
        per_set = [cross_model_distances(a, b, s) for s in pair_sets]
    reports = {}
    for name in CROSS_COMPARISONS:
        if pairs == "view1":
            (d_tr, s_tr, _), (d_te, s_te, _) = per_set[0][name], per_set[1][name]
            result = verification.evaluate_with_train_split(d_tr, s_tr, d_te, s_te, far_target)
        else:
            d_te, s_te, f_te = per_set[0][name]
            result = verification.evaluate_verification(d_te, s_te, f_te, far_target)
        reports[name] = {"model_a": a.name, "model_b": b.name, "comparison": name, "pairs": pairs,
                         "n_pairs": int(len(s_te)), "metrics": result.to_dict(), "table": result.format_table(),
                         "_result": result}
    return reports


def evaluate_lfw_cross(embedder_a: Embedder, embedder_b: Embedder, pairs: str = "view1", root: str | None = None,
                       alignment: str = "detect", subset: int | None = None, align_overrides: dict | None = None,
                       far_target: float = 1e-3, progress: bool = True, batch_size: int = 64,
                       cache: bool = True, pair_sets: list[PairArrays] | None = None) -> dict[str, dict]:
    """Cross-model verification: every image aligned and embedded by both models (each at its own input size);
    reports for a-a, b-b, a-b, b-a and both orders pooled (``cross``), each with the sets' ``provenance``.
    ``pair_sets``: ``load_pair_sets(pairs, root, subset)`` when already loaded."""
    sets = pair_sets if pair_sets is not None else load_pair_sets(pairs, root, subset)
    images = pair_images(sets)
    ea = embed_images(embedder_a, images, alignment, align_overrides, progress, batch_size, cache)
    eb = embed_images(embedder_b, images, alignment, align_overrides, progress, batch_size, cache)
    reports = evaluate_cross_model(ea, eb, sets, pairs, far_target)
    for report in reports.values():
        report.update(provenance(sets))
    return reports


def harmonic_diagnosis(old: ImageEmbeddings, new: ImageEmbeddings, pair_set: PairArrays) -> dict:
    """Why old-new verification scores as it does, on the images of ``pair_set``:

    - per comparison (``old-old``, ``new-new``, ``old-new`` with the first image by the old model): the mean cosine
      of same-identity and of different-identity pairs and their separation d' = (mean_s - mean_d) /
      sqrt((var_s + var_d) / 2);
    - ``same_image_cos``: the mean cosine between an image's old and new embedding;
    - ``residual``: the squared norm of r_i = new_i - old_i split, over the identities with >= 2 images, into a
      per-identity part (the same shift for every image of a person; unbiased estimate |mean r|^2 - var / n) and a
      per-image part (the within-identity variance of r). A per-identity shift cancels when two new embeddings are
      compared but not when a new embedding meets an old one.

    The identity of an image is the name of its folder (``<identity>/<file>``).
    """
    same = np.asarray(pair_set.is_same, bool)
    if same.all() or not same.any():
        raise ValueError("harmonic_diagnosis needs both same-identity and different-identity pairs.")
    result = {}
    for name, a, b in (("old-old", old, old), ("new-new", new, new), ("old-new", old, new)):
        cos = np.sum(a.of(pair_set.paths_a) * b.of(pair_set.paths_b), axis=1)
        s, d = cos[same], cos[~same]
        result[name] = {"same_cos": float(s.mean()), "diff_cos": float(d.mean()),
                        "d_prime": float((s.mean() - d.mean()) / np.sqrt(0.5 * (s.var() + d.var())))}
    images = sorted(set(pair_set.paths_a) | set(pair_set.paths_b))
    o, n = old.of(images), new.of(images)
    result["same_image_cos"] = float(np.sum(o * n, axis=1).mean())
    groups = collections.defaultdict(list)
    for i, path in enumerate(images):
        groups[os.path.basename(os.path.dirname(path))].append(i)
    groups = [g for g in groups.values() if len(g) >= 2]
    residual = n - o
    within = [np.sum((residual[g] - residual[g].mean(0)) ** 2, axis=1).sum() / (len(g) - 1) for g in groups]
    between = [np.sum(residual[g].mean(0) ** 2) - w / len(g) for g, w in zip(groups, within)]
    result["residual"] = {"identities": len(groups), "images": int(sum(map(len, groups))),
                          "per_identity": float(np.mean(between)), "per_image": float(np.mean(within))}
    return result
