"""``benchmarks/tfrecord_scale.py --quick`` (20,000 generated images): the report is written with every column of
both tables, a row per set and the load averages; its values are not checked (they depend on the machine)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _header(columns):
    return "| " + " | ".join(columns) + " |"


#: The report's columns (the script is run, never imported: its absl flags would clash with other benchmarks').
COLUMNS = ["set", "images", "identities", "written images/s", "size on disk", "bytes/image", "writer peak RSS",
           "time to first batch", "reader images/s", "reader RSS after import", "reader peak RSS"]
RSS_COLUMNS = ["set", "batch", "images delivered", "identities seen", "reader RSS"]


def test_quick_benchmark_writes_the_table_with_every_column(tmp_path):
    output, work = tmp_path / "results" / "scale.md", tmp_path / "work"
    proc = subprocess.run([sys.executable, "benchmarks/tfrecord_scale.py", "--quick", f"--output={output}",
                           f"--work_dir={work}"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = output.read_text()
    assert text.startswith("# TFRecord training set at scale") and "--quick" in text.splitlines()[2]
    assert "(lscpu)" in text and "Load average (1, 5, 15 min) at the start" in text
    assert _header(COLUMNS) in text and _header(RSS_COLUMNS) in text and "Reader RSS from batch" in text
    rows = [line for line in text.splitlines() if line.startswith("| 2")]
    assert any(line.startswith("| 20,000 | 20,000 | 2,000 |") for line in rows)
    assert any(line.startswith("| 2,000 | 2,000 | 200 |") for line in rows)
    assert all(line.count("|") == len(COLUMNS) + 1 for line in rows if line.count("MB") > 2)
    assert not work.exists()  # the sets are removed (the folder was made by the run)
