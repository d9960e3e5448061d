"""Identity-balanced sampling: composition, reproducibility per (seed, step), singleton handling, bad settings."""

import numpy as np
import pytest

from facenet_tf.data.sampling import BatchComposition, IdentityBalancedSampler, equal_images_schedule


def _labels():
    # identity 0..9 with 10 images each, 10..14 with 3 images, 15..29 singletons
    return np.array([i for i in range(10) for _ in range(10)] + [i for i in range(10, 15) for _ in range(3)]
                    + list(range(15, 30)))


def test_composition_and_fixed_size():
    labels = _labels()
    sampler = IdentityBalancedSampler(labels, BatchComposition(4, 5, 6), seed=1)
    for step in range(20):
        batch, n_grouped = sampler.draw(step)
        np.testing.assert_array_equal(batch, sampler.batch(step))
        assert batch.shape == (26,) and n_grouped >= 19
        positives, negatives = labels[batch[:n_grouped]], labels[batch[n_grouped:]]
        ids, counts = np.unique(positives, return_counts=True)
        assert counts.min() >= 2, "every identity in the positive part has an anchor-positive pair"
        assert not set(negatives) & set(ids), "extra negatives come from other identities"
        assert len(set(batch.tolist())) == batch.size, "no image twice in a batch"


def test_identities_with_fewer_than_k_images_are_topped_up_with_more_identities():
    labels = np.repeat(np.arange(20), 3)  # every identity has 3 < K=5 images
    sampler = IdentityBalancedSampler(labels, BatchComposition(4, 5, 0), seed=0)
    batch = sampler.batch(0)
    _, counts = np.unique(labels[batch], return_counts=True)
    assert batch.size == 20 and counts.min() >= 2 and len(counts) >= 7


def test_singletons_are_never_in_identity_groups():
    labels = _labels()
    sampler = IdentityBalancedSampler(labels, BatchComposition(3, 4, 0), seed=3)
    singletons = set(range(15, 30))
    for step in range(30):
        batch, n_grouped = sampler.draw(step)
        assert not singletons & set(labels[batch[:n_grouped]].tolist())


def test_reproducible_per_seed_and_step():
    labels = _labels()
    a = IdentityBalancedSampler(labels, BatchComposition(4, 5, 6), seed=7)
    b = IdentityBalancedSampler(labels, BatchComposition(4, 5, 6), seed=7)
    c = IdentityBalancedSampler(labels, BatchComposition(4, 5, 6), seed=8)
    np.testing.assert_array_equal(a.batch(11), b.batch(11))
    assert not np.array_equal(a.batch(11), a.batch(12))
    assert not np.array_equal(a.batch(11), c.batch(11))


@pytest.mark.parametrize("kwargs,match", [({"identities_per_batch": 0}, "identities_per_batch"),
                                          ({"faces_per_identity": 1}, "faces_per_identity"),
                                          ({"extra_negatives": -1}, "extra_negatives")])
def test_bad_composition(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BatchComposition(**kwargs)


def test_too_few_identities_or_images():
    with pytest.raises(ValueError, match="at least 2 identities"):
        IdentityBalancedSampler(np.array([0, 0, 1, 2]), BatchComposition(1, 2))
    with pytest.raises(ValueError, match="exceeds"):
        IdentityBalancedSampler(np.array([0, 0, 1, 1]), BatchComposition(2, 2, 4))


def test_complete_groups_are_k_faces_of_identities_with_k_images():
    """--complete_groups: P groups of exactly K from the identities with >= K images; the rest only as negatives."""
    labels = _labels()  # identities 0..9 have 10 images, 10..14 have 3
    sampler = IdentityBalancedSampler(labels, BatchComposition(3, 4, 5, complete_groups=True), seed=2)
    for step in range(20):
        batch, n_grouped = sampler.draw(step)
        ids, counts = np.unique(labels[batch[:n_grouped]], return_counts=True)
        assert n_grouped == 12 and len(ids) == 3 and set(counts) == {4} and ids.max() < 10
        assert not set(labels[batch[n_grouped:]]) & set(ids) and batch.size == 17
    short = IdentityBalancedSampler(labels, BatchComposition(3, 4, 5), seed=2)  # the default tops groups up
    assert any(labels[short.draw(s)[0][:short.draw(s)[1]]].max() >= 10 for s in range(20))


def test_complete_groups_need_p_identities_with_k_images():
    with pytest.raises(ValueError, match="Complete groups of K=11 faces need at least 3 identities with >= 11"):
        IdentityBalancedSampler(_labels(), BatchComposition(3, 11, 0, complete_groups=True))


@pytest.mark.parametrize("batch", [120, 180, 240, 360])
def test_equal_images_schedule_shows_the_same_images_at_the_same_fractions(batch):
    steps, every, decays = equal_images_schedule(1000, 100, (800,), batch, 180_000)
    assert steps * batch == 180_000 and steps % every == 0 and steps // every == 10
    assert decays == (round(0.8 * steps),)


def test_equal_images_schedule_keeps_the_nearest_checkpoint_count_and_refuses_partial_batches():
    assert equal_images_schedule(40, 20, (), 240, 7200) == (30, 15, ())
    assert equal_images_schedule(100, 10, (50,), 7, 7 * 13) == (13, 1, (6,))  # 13 is prime: 13 checkpoints
    with pytest.raises(ValueError, match="not a whole number of batches of 240"):
        equal_images_schedule(1000, 100, (), 240, 100_000)
