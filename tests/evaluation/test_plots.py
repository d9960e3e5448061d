"""ROC plots (paper, "Evaluation"): a valid PNG for one and several curves, clear errors for bad input."""

import struct

import numpy as np
import pytest

from facenet_tf.evaluation import plots, verification

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    """(width, height) from the IHDR chunk, which must come first in a PNG."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def roc(seed, separation):
    rng = np.random.default_rng(seed)
    same = np.repeat([True, False], 500)
    distances = rng.normal(np.where(same, 1.0, 1.0 + separation), 0.3)
    return verification.roc_curve(distances, same)


def test_one_curve_as_arrays(tmp_path):
    curve = roc(0, 1.0)
    path = plots.plot_roc({"nn2": (curve.far, curve.val)}, tmp_path / "roc.png", title="LFW")
    assert path == tmp_path / "roc.png"
    assert path.stat().st_size > 1000
    assert png_size(path) == (640, 480)


def test_three_curves_and_roc_objects(tmp_path):
    curves = {"v1": roc(1, 0.5), "v2": roc(2, 1.0), "v2 vs v1": (roc(3, 0.7).far, roc(3, 0.7).val)}
    path = plots.plot_roc(curves, tmp_path / "sub" / "compare.png", title="harmonic", far_target=None)
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert path.stat().st_size > 1000


def test_bad_curves(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        plots.plot_roc({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="'a'"):
        plots.plot_roc({"a": (np.zeros(3), np.zeros(4))}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="'b'"):
        plots.plot_roc({"b": 3.0}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_does_not_switch_the_pyplot_backend(tmp_path):
    import matplotlib

    before = matplotlib.get_backend()
    plots.plot_roc({"a": roc(4, 1.0)}, tmp_path / "a.png")
    assert matplotlib.get_backend() == before


def test_training_curves_label_images_seen_in_thousands(tmp_path):
    assert [plots._thousands(v) for v in (0, 500, 20000, 180000, 2500000)] == ["0", "500", "20k", "180k", "2.5M"]
    runs = {"semi_hard (seed 0)": {"loss": [(18000, 0.19), (36000, 0.18)], "mean_d_ap": [(18000, 1.2), (36000, 1.1)]},
            "semi_hard (seed 1)": {"loss": [(18000, 0.2), (36000, 0.17)]}}
    path = plots.plot_training_curves(runs, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="at least one run"):
        plots.plot_training_curves({}, tmp_path / "none.png")
