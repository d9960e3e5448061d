"""The facenet-tf command under kill -9, a full disk and a read-only folder: what existed before is intact byte for
byte, a rerun finishes, and no temporary is left behind.

The command runs as a subprocess (a real process to kill) with a tiny random model (``--model tiny.keras``), so a
run costs MTCNN and start-up, not Inception-ResNet-v1. Kill points are random (seeded, the seed is in every
message) plus one aimed at the moment the new output is being written.
"""

from __future__ import annotations

import random
import shutil

import numpy as np
import pytest

from facenet_tf.recognition import Gallery
from facenet_tf.recognition.outputs import OUTPUT_MANIFEST, read_manifest
from tests.reliability.conftest import assert_intact, kill_when, read_only, run, snapshot

PEOPLE = ("Aaron_Peirsol", "Amelie_Mauresmo")
SEED = 20261203


@pytest.fixture(scope="module")
def setup(tmp_path_factory, lfw_root):
    """album/ (4 LFW photos), known/<person>/ (2 photos each), probe.jpg and tiny.keras (a random nns2)."""
    import keras

    from facenet_tf import paths
    from facenet_tf.models import create_model

    images = paths.lfw_images_dir(lfw_root)
    root = tmp_path_factory.mktemp("cli_reliability")
    for person in PEOPLE:
        (root / "known" / person).mkdir(parents=True)
        for number in (1, 2):
            shutil.copy(images / person / f"{person}_{number:04d}.jpg", root / "known" / person)
    (root / "album").mkdir()
    for person in PEOPLE:
        for number in (1, 2):
            shutil.copy(images / person / f"{person}_{number:04d}.jpg", root / "album")
    shutil.copy(images / PEOPLE[0] / f"{PEOPLE[0]}_0003.jpg", root / "probe.jpg")
    keras.utils.set_random_seed(0)
    create_model("nns2", embedding_dim=16, input_shape=(64, 64, 3)).save(root / "tiny.keras")
    return root


def cli(setup, *args: str) -> list[str]:
    return ["-m", "facenet_tf.cli", *args, "--model", str(setup / "tiny.keras"), "--threshold", "1.0", "--quiet"]


@pytest.fixture(scope="module")
def earlier(setup, tmp_path_factory):
    """The outputs of earlier runs, made in this process (no start-up cost): people/ (cluster) and g.npz
    (identify --save-gallery)."""
    from facenet_tf import cli as command

    root = tmp_path_factory.mktemp("earlier")
    assert command.main(cli(setup, "cluster", str(setup / "album"), "--out", str(root / "people"))[2:]) == 0
    assert command.main(cli(setup, "identify", "--gallery", str(setup / "known"), str(setup / "probe.jpg"),
                            "--save-gallery", str(root / "g.npz"))[2:]) == 0
    return root


def hidden_siblings(folder):
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


def complete_output(out) -> bool:
    manifest = read_manifest(out)
    return manifest is not None and all((out / f).is_file() for f in manifest["files"])


def test_cluster_survives_kill_9_at_random_points(setup, earlier, tmp_path):
    out = tmp_path / "people"
    shutil.copytree(earlier / "people", out)
    before = snapshot(out)
    rng = random.Random(SEED)
    args = cli(setup, "cluster", str(setup / "album"), "--out", str(out), "--overwrite", "--min-size", "1")
    points = [("random", lambda: True, rng.uniform(0, 10)),
              ("while writing", lambda: bool(hidden_siblings(out)), 0.0)]
    for name, ready, delay in points:
        killed = kill_when(args, tmp_path / "kill.log", ready, delay=delay)
        message = f"kill {name} (delay {delay:.2f} s, seed {SEED})"
        if snapshot(out) != before:  # the swap happened: the new output is whole
            assert complete_output(out), message
            assert not (out / "singles").exists(), message  # --min-size 1: no singles folder
        else:
            assert_intact(before, out)
        assert killed or (out / OUTPUT_MANIFEST).is_file(), message
    rerun = run(args, tmp_path / "rerun.log")
    assert rerun.returncode == 0, rerun.output
    assert complete_output(out) and hidden_siblings(out) == []


def test_gallery_enrolment_survives_kill_9(setup, earlier, tmp_path):
    gallery = tmp_path / "g.npz"
    shutil.copy(earlier / "g.npz", gallery)
    before = gallery.read_bytes()
    args = cli(setup, "identify", "--gallery", str(setup / "known"), str(setup / "probe.jpg"), "--save-gallery",
               str(gallery), "--overwrite")
    delay = random.Random(SEED + 1).uniform(0.5, 6.0)
    kill_when(args, tmp_path / "kill.log", lambda: True, delay=delay)
    if gallery.read_bytes() != before:  # replaced: then whole
        assert len(Gallery.load(gallery)) == 4, f"delay {delay:.2f} s, seed {SEED + 1}"
    rerun = run(args, tmp_path / "rerun.log")
    assert rerun.returncode == 0, rerun.output
    assert len(Gallery.load(gallery)) == 4 and hidden_siblings(gallery) == []


def test_a_full_disk_fails_in_one_line_and_keeps_the_previous_output(setup, earlier, tmp_path):
    out = tmp_path / "people"
    shutil.copytree(earlier / "people", out)
    before = snapshot(out)
    full = run(cli(setup, "cluster", str(setup / "album"), "--out", str(out), "--overwrite"), tmp_path / "b.log",
               fsize=2000)  # every file written is capped at 2 kB: the contact sheets do not fit
    assert full.returncode == 1, full.output
    errors = [line for line in full.output.splitlines() if line.startswith("facenet-tf: error:")]
    assert len(errors) == 1 and "File too large" in errors[0] and "Traceback" not in full.output, full.output
    assert_intact(before, out)
    assert snapshot(out) == before and hidden_siblings(out) == []


def test_a_read_only_folder_is_refused_before_any_work(setup, tmp_path):
    target = tmp_path / "ro"
    target.mkdir()
    with read_only(target):
        for args, flag in ((["cluster", str(setup / "album"), "--out", str(target / "people")], "--out"),
                           (["embed", str(setup / "album"), "--out", str(target / "f.npz")], "--out"),
                           (["identify", "--gallery", str(setup / "known"), str(setup / "probe.jpg"), "--csv",
                             str(target / "n.csv")], "--csv")):
            result = run(cli(setup, *args), tmp_path / "ro.log")
            assert result.returncode == 1, result.output
            assert f"{flag} '{target}" in result.output and "read-only" in result.output
            assert "gallery:" not in result.output and "Traceback" not in result.output
    assert list(target.iterdir()) == []


def test_a_model_with_non_finite_embeddings_is_refused(setup, tmp_path, capsys):
    """NaN injected into the weights: the command refuses the model in one line and writes nothing."""
    import keras

    from facenet_tf import cli as command

    model = keras.saving.load_model(setup / "tiny.keras")
    weights = model.get_weights()
    weights[0] = np.full_like(weights[0], np.nan)
    model.set_weights(weights)
    model.save(tmp_path / "nan.keras")
    out = tmp_path / "f.npz"
    status = command.main(["embed", str(setup / "album"), "--out", str(out), "--model", str(tmp_path / "nan.keras"),
                           "--threshold", "1", "--quiet"])
    err = capsys.readouterr().err
    assert status == 1 and "NaN or infinite weight" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_a_keras_file_with_code_is_not_run(setup, tmp_path, capsys):
    """Security: a .keras file whose Lambda layer would run Python code is refused (Keras safe_mode), and the
    code does not run."""
    import keras

    from facenet_tf import cli as command

    marker = tmp_path / "pwned"
    target = str(marker)
    inputs = keras.Input((64, 64, 3))
    outputs = keras.layers.Lambda(lambda x: (open(target, "w").close(), x)[1])(inputs)
    keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(outputs)).save(tmp_path / "evil.keras")
    marker.unlink()  # building the model ran the code once, here
    status = command.main(["verify", str(setup / "probe.jpg"), str(setup / "known" / PEOPLE[0] / f"{PEOPLE[0]}_0001.jpg"),
                           "--model", str(tmp_path / "evil.keras"), "--threshold", "1", "--quiet"])
    err = capsys.readouterr().err
    assert status == 2 and "Lambda" in err and "Traceback" not in err, err
    assert not marker.exists()
