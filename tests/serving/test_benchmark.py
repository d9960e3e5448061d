"""benchmarks/serve.py's bookkeeping (its run is checked by hand with --quick: it starts a server): batch sizes
formed in a round from two /health snapshots, and the table."""

from __future__ import annotations

import importlib
import sys

import pytest

from facenet_tf.paths import REPO_ROOT


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    try:
        yield importlib.import_module("serve")
    finally:
        sys.path.remove(str(REPO_ROOT / "benchmarks"))


def test_batch_delta_counts_only_the_round(bench):
    before = {"batch_sizes": {"1": 4, "3": 1}}
    after = {"batch_sizes": {"1": 5, "3": 1, "8": 2}}
    assert bench.batch_delta(before, after) == ((1 + 16) / 3, {1: 1, 8: 2})
    assert bench.batch_delta(after, after) == (0.0, {})


def test_table_compares_with_the_in_process_rate(bench):
    args = bench.parse_args(["--quick"])
    assert args.client_counts == [1, 4] and args.requests == 3
    library = {"model": "m", "batched_faces_s": 20.0, "loop_faces_s": 10.0}
    rounds = [{"clients": 32, "requests": 512, "refused": 0, "p50": 900.0, "p99": 2100.0, "rps": 18.0,
               "faces_s": 19.0, "embed_mean": 12.5, "embed_sizes": {8: 1, 17: 1}, "detect_mean": 6.0}]
    text = bench.table(args, library, rounds, 64)
    assert "**20.0 faces/s**" in text
    assert "| 32 | 512 | 900 | 2100 | 18.0 | 19.0 | 95% | 0 | 12.5 (8: 1, 17: 1) | 6.0 |" in text
