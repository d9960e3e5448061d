"""--harmonic_fit_alignment for harmonic training steps (not only the least-squares solve): the new model trains on
its crops aligned as evaluation aligns them (``AlignedCropLoader``), the old embeddings are of the old model's
aligned crops (cached under their own key), unreadable images are replaced, bad settings name the flag."""

import dataclasses
import os

import numpy as np
import pytest

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from facenet_tf.align import align_images  # noqa: E402
from facenet_tf.data.sampling import BatchComposition, IdentityBalancedSampler  # noqa: E402
from facenet_tf.harmonic.crops import AlignedCropLoader  # noqa: E402
from facenet_tf.harmonic.models import load_old_model  # noqa: E402
from facenet_tf.harmonic.old_embeddings import old_embeddings_cache_key, precompute_old_embeddings  # noqa: E402
from facenet_tf.harmonic.training import harmonic_training_dataset, train  # noqa: E402
from facenet_tf.train import TrainConfig  # noqa: E402
from facenet_tf.train.loop import split_identities  # noqa: E402

TINY = dict(model="nns2", input_size=(40, 32), embedding_dim=8, identities_per_batch=3, faces_per_identity=3,
            extra_negatives=2, exclude_pairs=())


def _config(tmp_path, data_dir, old, **kw):
    return TrainConfig.from_flags(workdir=str(tmp_path / "run"), data_dir=str(data_dir), harmonic_with=old,
                       harmonic_fit_alignment="center", **{**TINY, **kw})


def test_loader_holds_the_aligned_crops_and_pads_by_reflection(env, tmp_path, old_keras):
    index, _, _ = split_identities(_config(tmp_path, env, old_keras))
    aligned = align_images(index.paths, mode="center", output_size=(40, 32), progress=False).images
    same = AlignedCropLoader(index, (40, 32), "center")
    images, labels, used = same.load_indexed(np.array([5, 0, 9]))
    np.testing.assert_array_equal(images, aligned[[5, 0, 9]])
    np.testing.assert_array_equal(labels, index.labels[[5, 0, 9]])
    padded = AlignedCropLoader(index, (44, 35), "center", align_size=(40, 32)).load(np.array([3]))[0][0]
    np.testing.assert_array_equal(padded[2:42, 1:33], aligned[3])       # the crop itself, centred, same scale
    np.testing.assert_array_equal(padded[1, 1:33], aligned[3][1])        # reflected about the edge row
    np.testing.assert_array_equal(padded[:, 0][2:42], aligned[3][:, 1])  # and column
    with pytest.raises(ValueError, match="smaller"):
        AlignedCropLoader(index, (30, 32), "center", align_size=(40, 32))


def test_unreadable_image_is_replaced_by_the_same_identity(env, tmp_path, old_keras):
    broken = env / "id_03" / "id_03_0001.png"
    broken.write_bytes(b"not an image")
    index, _, _ = split_identities(_config(tmp_path, env, old_keras))
    i = index.paths.index(str(broken))
    loader = AlignedCropLoader(index, (40, 32), "center")
    assert loader.skipped == 1 and loader.bad == {i}
    images, labels, used = loader.load_indexed(np.array([i, 0]))
    assert used[0] != i and index.labels[used[0]] == index.labels[i] and used[1] == 0
    np.testing.assert_array_equal(images[0], loader.crops[used[0]])


def test_training_batches_are_aligned_crops_with_old_embeddings_of_aligned_crops(env, tmp_path, old_keras):
    config = _config(tmp_path, env, old_keras, jitter=0.0, flip=False, crop_fraction=0.6)  # (centre crops only)
    index, _, _ = split_identities(config)
    old_model = load_old_model(old_keras)
    old_crops = align_images(index.paths, mode="center", output_size=(36, 36), progress=False).images
    expected_old = old_model(old_crops.astype(np.float32)).numpy()
    np.testing.assert_allclose(precompute_old_embeddings(config, index), expected_old, atol=1e-5)
    # cached under a key of its own: the centre-crop embeddings of the same old model are another file
    plain = config.with_flags(harmonic_fit_alignment=None)
    assert old_embeddings_cache_key(plain, (36, 36)) != old_embeddings_cache_key(config, (36, 36))
    np.testing.assert_allclose(precompute_old_embeddings(config, index), expected_old, atol=1e-5)  # from the cache
    assert not np.allclose(precompute_old_embeddings(plain, index), expected_old, atol=1e-3)

    composition = BatchComposition(3, 3, 2)
    dataset, _ = harmonic_training_dataset(config, index, composition, start_step=4)
    (images, old), labels = next(iter(dataset))
    ids = IdentityBalancedSampler(index.labels, composition, config.seed).batch(4)
    new_crops = align_images(index.paths, mode="center", output_size=(40, 32), progress=False).images
    np.testing.assert_array_equal(images.numpy(), new_crops[ids].astype(np.float32))
    np.testing.assert_allclose(old.numpy(), expected_old[ids], atol=1e-5)
    np.testing.assert_array_equal(labels.numpy(), index.labels[ids])


@pytest.mark.parametrize("views", [1, 3])  # 3: --harmonic_views (tests/harmonic/test_views.py)
@pytest.mark.usefixtures("harmonic_eager")
def test_whole_network_training_on_aligned_crops_runs_and_resumes(env, tmp_path, old_keras, views):
    config = _config(tmp_path, env, old_keras, steps=2, checkpoint_every=1, harmonic_candidates="old",
                     harmonic_same_image_weight=1.0, optimizer="adam", learning_rate=1e-3, harmonic_views=views,
                     jitter=0.2)
    summary = train(config, verbose=0)
    assert summary["end_step"] == 2 and all(np.isfinite(summary["history"]["loss"]))
    resumed = train(dataclasses.replace(config, steps=3), verbose=0)
    assert resumed["start_step"] == 2 and resumed["end_step"] == 3


@pytest.mark.parametrize("kw", [
    dict(harmonic_fit_alignment="detect"),                                   # no old model
    dict(harmonic_with="x", harmonic_fit_alignment="detect", harmonic_old_embeddings="in_step"),
    dict(harmonic_with="x", harmonic_fit_alignment="mtcnn"),
])
def test_bad_alignment_settings_name_the_flag(tmp_path, kw):
    with pytest.raises(ValueError, match="--harmonic_fit_alignment"):
        TrainConfig.from_flags(workdir=str(tmp_path), **kw)


def test_alignment_with_the_harmonic_loss_alone_is_accepted(tmp_path):
    config = TrainConfig.from_flags(workdir=str(tmp_path), harmonic_with="x", harmonic_fit_alignment="detect")
    assert config.harmonic.solver == "triplet" and config.harmonic.fit_alignment == "detect"
