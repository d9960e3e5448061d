"""Identity-balanced batch sampling (paper, "Triplet loss and selection": around 40 faces per identity per
mini-batch, plus randomly sampled negative faces).

Each batch is ``P`` identities x ``K`` faces plus ``R`` extra faces of other identities, a fixed size of
``P*K + R``. Identities with fewer than two images can never give an anchor-positive pair, so they serve only as
extra negatives. When an identity has fewer than ``K`` images, all of them are taken and further identities fill
the remaining anchor-positive slots, so the batch keeps its size and stays rich in positives. On LFW this fills a
nominal 15 x 12 batch with ~46 identities of ~4 faces (most people have 2-3 images); ``complete_groups`` draws the
groups only from identities with at least ``K`` images instead, so every batch is exactly ``P`` groups of ``K``.

Batch ``i`` is a pure function of ``(seed, i)``: a run that resumes at step ``i`` sees exactly the batches it would
have seen, and two runs with one seed see the same data.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class BatchComposition:
    """``identities_per_batch`` (P), ``faces_per_identity`` (K), ``extra_negatives`` (R); ``complete_groups``: the
    P groups come only from identities with at least K images (exactly K faces each; the others serve as extra
    negatives), instead of topping up short groups with more identities."""

    identities_per_batch: int = 45
    faces_per_identity: int = 40
    extra_negatives: int = 0
    complete_groups: bool = False

    def __post_init__(self):
        if self.identities_per_batch < 1:
            raise ValueError(f"identities_per_batch must be >= 1, got {self.identities_per_batch}.")
        if self.faces_per_identity < 2:
            raise ValueError(f"faces_per_identity must be >= 2 (an anchor and a positive), got "
                             f"{self.faces_per_identity}.")
        if self.extra_negatives < 0:
            raise ValueError(f"extra_negatives must be >= 0, got {self.extra_negatives}.")

    @property
    def batch_size(self) -> int:
        return self.identities_per_batch * self.faces_per_identity + self.extra_negatives


class IdentityBalancedSampler:
    """Draws batches of image indices from integer ``labels`` (one per image) with a fixed composition."""

    def __init__(self, labels, composition: BatchComposition, seed: int = 0, stream: int = 0):
        """``stream`` > 0: an independent sequence of batches for the same ``seed`` (e.g. the offline subsets of
        facenet_tf.train.offline beside the training batches); 0 is the training stream."""
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.size == 0:
            raise ValueError("labels must be a non-empty 1-D array (one identity label per image).")
        self.labels = labels
        self.composition = composition
        self.seed = int(seed)
        self.stream = int(stream)
        order = np.argsort(labels, kind="stable")
        identities, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
        self._members = {int(i): order[s:s + c] for i, s, c in zip(identities, starts, counts)}
        self._multi = np.array([i for i, c in zip(identities, counts) if c >= 2], dtype=np.int64)
        if self._multi.size < 2:
            raise ValueError(f"Need at least 2 identities with >= 2 images to form triplets; the data has "
                             f"{self._multi.size} (of {identities.size} identities, {labels.size} images).")
        if composition.complete_groups:  # groups only from identities that fill one
            k = composition.faces_per_identity
            self._multi = np.array([i for i, c in zip(identities, counts) if c >= k], dtype=np.int64)
            if self._multi.size < max(2, composition.identities_per_batch):
                raise ValueError(f"Complete groups of K={k} faces need at least "
                                 f"{max(2, composition.identities_per_batch)} identities with >= {k} images "
                                 f"(P={composition.identities_per_batch}); the data has {self._multi.size}.")
        if composition.batch_size > labels.size:
            raise ValueError(f"The batch size {composition.batch_size} (P*K+R) exceeds the {labels.size} images "
                             "available; lower identities_per_batch, faces_per_identity or extra_negatives.")

    @property
    def batch_size(self) -> int:
        return self.composition.batch_size

    def batch(self, step: int) -> np.ndarray:
        """Image indices of batch ``step`` (shape ``(batch_size,)``), grouped by identity, negatives last."""
        return self.draw(step)[0]

    def draw(self, step: int) -> tuple[np.ndarray, int]:
        """``(indices, n_grouped)``: the first ``n_grouped`` indices are the identity groups (>= 2 images each),
        the rest are extra negatives from identities outside those groups."""
        rng = np.random.default_rng([self.seed, int(step)] + ([self.stream] if self.stream else []))
        c = self.composition
        positive_slots = c.identities_per_batch * c.faces_per_identity
        chosen: list[np.ndarray] = []
        used_identities: list[int] = []
        filled = 0
        for identity in rng.permutation(self._multi):
            room = positive_slots - filled
            if room < 2:
                break
            members = self._members[int(identity)]
            take = min(c.faces_per_identity, members.size, room)
            chosen.append(rng.choice(members, size=take, replace=False))
            used_identities.append(int(identity))
            filled += take
        n_negatives = self.batch_size - filled
        if n_negatives:
            excluded = np.isin(self.labels, used_identities)
            pool = np.flatnonzero(~excluded)
            if pool.size < n_negatives:  # tiny datasets: allow repeats rather than fail
                chosen.append(rng.choice(pool if pool.size else np.flatnonzero(excluded), size=n_negatives))
            else:
                chosen.append(rng.choice(pool, size=n_negatives, replace=False))
        return np.concatenate(chosen).astype(np.int64), filled


def equal_images_schedule(steps: int, checkpoint_every: int, lr_decay_steps, batch_size: int,
                          images: int) -> tuple[int, int, tuple[int, ...]]:
    """``(steps, checkpoint_every, lr_decay_steps)`` of a run with batches of ``batch_size`` images that shows
    ``images`` images in all, keeping the shape of a schedule written for ``steps`` steps: as many checkpoints
    where the new step count allows it (else the nearest count that divides it), learning-rate decays at the same
    fractions of the run. Raises ``ValueError`` unless ``images`` is a whole number of batches (an ablation then
    compares runs that saw exactly the same number of images)."""
    if batch_size < 1 or images < batch_size or images % batch_size:
        raise ValueError(f"{images} images are not a whole number of batches of {batch_size}.")
    new = images // batch_size
    intervals = steps // checkpoint_every
    count = min((n for n in range(1, new + 1) if new % n == 0), key=lambda n: (abs(n - intervals), n))
    decays = tuple(sorted({max(1, round(s * new / steps)) for s in lr_decay_steps}))
    return new, new // count, decays
