"""--harmonic_views: the old model embeds K fixed augmented views of each aligned training crop (``view_boxes``,
``crop_views``) and every training step shows the new model one view per image with that view's old embedding.
(That training with views runs and resumes is in tests/harmonic/test_aligned.py.)"""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from facenet_tf.align import align_images  # noqa: E402
from facenet_tf.data.sampling import BatchComposition, IdentityBalancedSampler  # noqa: E402
from facenet_tf.harmonic.crops import VIEW_SCHEME, AlignedCropLoader, crop_views, padded_size, view_boxes  # noqa: E402
from facenet_tf.harmonic.models import load_old_model  # noqa: E402
from facenet_tf.harmonic.old_embeddings import (old_embeddings_cache_key, precompute_old_embeddings,  # noqa: E402
                                                precompute_old_view_embeddings)
from facenet_tf.harmonic.training import harmonic_training_dataset  # noqa: E402
from facenet_tf.train import TrainConfig  # noqa: E402
from facenet_tf.train.loop import split_identities  # noqa: E402

TINY = dict(model="nns2", input_size=(40, 32), embedding_dim=8, identities_per_batch=3, faces_per_identity=3,
            extra_negatives=2, exclude_pairs=())


def _config(tmp_path, data_dir, old, **kw):
    return TrainConfig.from_flags(workdir=str(tmp_path / "run"), data_dir=str(data_dir), harmonic_with=old,
                       harmonic_fit_alignment="center", harmonic_views=4, jitter=0.2, **{**TINY, **kw})


def test_view_boxes_are_fixed_per_image_and_stay_inside_the_padding():
    paths = [f"/data/lfw/Person_{i}/Person_{i}_0001.jpg" for i in range(50)]
    boxes, mirror = view_boxes(paths, 6, 0.2, True)
    assert boxes.shape == (50, 6, 4) and mirror.shape == (50, 6)
    np.testing.assert_array_equal(boxes[:, 0], np.tile([0, 0, 1, 1], (50, 1)))  # view 0: the crop
    np.testing.assert_array_equal(boxes[:, 1], boxes[:, 0])                       # view 1: its mirror
    assert not mirror[:, 0].any() and mirror[:, 1].all()
    rest = boxes[:, 2:]
    side = rest[..., 2] - rest[..., 0]
    np.testing.assert_allclose(side, rest[..., 3] - rest[..., 1], atol=1e-6)  # the crop's aspect ratio
    assert side.min() >= 0.8 - 1e-6 and side.max() <= 1.0 + 1e-6 and side.std() > 0.03
    assert rest.min() >= -0.1 - 1e-6 and rest.max() <= 1.1 + 1e-6
    assert 0.3 < mirror[:, 2:].mean() < 0.7
    assert len({tuple(np.round(b, 5)) for b in rest[:, 0]}) == 50  # each image its own views
    # the same views for the same file name wherever the dataset lives; none mirrored without flip
    moved, _ = view_boxes([p.replace("/data/lfw", "/elsewhere") for p in paths], 6, 0.2, True)
    np.testing.assert_array_equal(moved, boxes)
    plain, no_mirror = view_boxes(paths, 3, 0.2, False)
    assert not no_mirror.any() and not np.allclose(plain[:, 1], plain[:, 0])
    assert view_boxes(paths, 1, 0.2, True)[0].shape == (50, 1, 4)


def test_crop_views_give_back_the_crop_its_mirror_and_zooms():
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, size=(2, 40, 32, 3)).astype(np.uint8)
    padded = np.stack([np.pad(c, ((4, 4), (3, 3), (0, 0)), mode="reflect") for c in crop])  # as the loader pads
    whole = np.tile(np.array([[0, 0, 1, 1]], np.float32), (2, 1))
    out = crop_views(padded, whole, np.array([False, True]), (40, 32)).numpy()
    np.testing.assert_allclose(out[0], crop[0], atol=1e-3)
    np.testing.assert_allclose(out[1], crop[1][:, ::-1], atol=1e-3)
    # the top-left quarter (pixel centres 0..19.5 -> rows 0..19.5 of 40) is the quarter upsampled
    quarter = np.array([[0, 0, 19.5 / 39, 15.5 / 31]] * 2, np.float32)
    zoom = crop_views(padded, quarter, np.array([False, False]), (40, 32)).numpy()
    np.testing.assert_allclose(zoom[0, ::2, ::2][:20, :16], crop[0, :20, :16], atol=1e-3)
    # a box reaching into the padding reads the reflected pixels
    shifted = crop_views(padded, np.array([[-4 / 39, 0, 1 - 4 / 39, 1]] * 2, np.float32), np.zeros(2, bool),
                         (40, 32)).numpy()
    np.testing.assert_allclose(shifted[0, 4:], crop[0, :36], atol=1e-3)
    np.testing.assert_allclose(shifted[0, 3], crop[0, 1], atol=1e-3)
    with pytest.raises(ValueError, match="smaller"):
        crop_views(padded, whole, np.zeros(2, bool), (60, 32))


def test_view_embeddings_are_the_old_model_on_each_view(env, tmp_path, old_keras):
    config = _config(tmp_path, env, old_keras)
    index, _, _ = split_identities(config)
    old_model = load_old_model(old_keras)
    size = (36, 36)
    loader = AlignedCropLoader(index, padded_size(size, 0.2), "center", size)
    padded, _ = loader.load(np.arange(len(index)))
    boxes, mirror = view_boxes(index.paths, 4, 0.2, True)
    views = precompute_old_view_embeddings(config, index)
    assert views.shape == (len(index), 4, 8)
    for k in range(4):
        expected = old_model(crop_views(padded, boxes[:, k], mirror[:, k], size)).numpy()
        np.testing.assert_allclose(views[:, k], expected, atol=1e-5)
    # view 0 is the plain aligned crop: the embeddings (and cache file) of runs without views
    without = config.with_flags(harmonic_views=1)
    np.testing.assert_allclose(precompute_old_embeddings(without, index), views[:, 0], atol=1e-6)
    keys = {old_embeddings_cache_key(config, size, k) for k in range(4)}
    assert len(keys) == 4 and old_embeddings_cache_key(without, size) in keys
    assert old_embeddings_cache_key(config.with_flags(jitter=0.1), size, 2) not in keys
    assert VIEW_SCHEME >= 1
    with pytest.raises(ValueError, match="harmonic_fit_alignment"):
        precompute_old_embeddings(config.with_flags(harmonic_fit_alignment=None, harmonic_views=1), index,
                                  view=2)


def test_training_batches_pair_each_view_with_its_old_embedding(env, tmp_path, old_keras):
    config = _config(tmp_path, env, old_keras)
    index, _, _ = split_identities(config)
    views = precompute_old_view_embeddings(config, index)
    composition = BatchComposition(3, 3, 2)
    new_crops = align_images(index.paths, mode="center", output_size=(40, 32), progress=False).images
    boxes, mirror = view_boxes(index.paths, 4, 0.2, True)
    sampler = IdentityBalancedSampler(index.labels, composition, config.seed)
    dataset, _ = harmonic_training_dataset(config, index, composition, start_step=3)
    seen = set()
    for step, ((images, old), labels) in zip((3, 4, 5), dataset):
        ids = sampler.batch(step)
        pick = np.random.default_rng([config.seed, step, VIEW_SCHEME]).integers(4, size=len(ids))
        seen.update(pick.tolist())
        padded = np.stack([np.pad(c, ((4, 4), (3, 3), (0, 0)), mode="reflect") for c in new_crops[ids]])
        expected = crop_views(padded, boxes[ids, pick], mirror[ids, pick], (40, 32)).numpy()
        np.testing.assert_allclose(images.numpy(), expected, atol=1e-3)
        np.testing.assert_allclose(old.numpy(), views[ids, pick], atol=1e-6)
        np.testing.assert_array_equal(labels.numpy(), index.labels[ids])
    assert len(seen) == 4
    with pytest.raises(ValueError, match="harmonic_views=4"):
        harmonic_training_dataset(config, index, composition, old_embeddings=views[:, 0])


@pytest.mark.parametrize("kw", [
    dict(harmonic_views=0, harmonic_with="x", harmonic_fit_alignment="detect"),
    dict(harmonic_views=2, harmonic_with="x"),                                 # no alignment
    dict(harmonic_views=2, harmonic_with="x", harmonic_fit_alignment="detect", harmonic_phase="embedding_layer",
         harmonic_solver="least_squares"),
])
def test_bad_view_settings_name_the_flag(tmp_path, kw):
    with pytest.raises(ValueError, match="--harmonic_views"):
        TrainConfig.from_flags(workdir=str(tmp_path), **kw)
