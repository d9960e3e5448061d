"""The curl and Python examples of docs/serving.md and of the README's serving section run against a real server
and print what they should."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from facenet_tf.paths import REPO_ROOT
from tests.serving.conftest import TOKEN

DOCS = (REPO_ROOT / "docs" / "serving.md", REPO_ROOT / "README.md")
DEFAULT_URL = "http://127.0.0.1:8000"


def examples(language: str, marker: str) -> list[str]:
    """The distinct ``language`` blocks of the docs that call the server (they name its default URL) and hold
    ``marker``."""
    found = []
    for doc in DOCS:
        for block in re.findall(rf"```{language}\n(.*?)```", doc.read_text(), flags=re.S):
            if DEFAULT_URL in block and marker in block and block not in found:
                found.append(block)
    return found


@pytest.fixture
def examples_dir(server, photos, tmp_path):
    """A folder holding a.jpg and b.jpg (two photos of one person), and the environment the examples expect."""
    shutil.copy(photos["Amelie_Mauresmo"][0], tmp_path / "a.jpg")
    shutil.copy(photos["Amelie_Mauresmo"][1], tmp_path / "b.jpg")
    env = {**os.environ, "FACENET_TF_SERVE_TOKEN": TOKEN, "NO_PROXY": "127.0.0.1,localhost",
           "no_proxy": "127.0.0.1,localhost"}
    for key in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(key, None)
    return tmp_path, env


def test_curl_examples(server, examples_dir):
    import json

    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    folder, env = examples_dir
    lines = [line for block in examples("bash", "curl") for line in block.splitlines() if line.startswith("curl ")]
    endpoints = [line.split()[-1].rsplit("/", 1)[1] for line in lines]
    assert {"verify", "enrol", "identify"} <= set(endpoints), endpoints
    for line, endpoint in sorted(zip(lines, endpoints), key=lambda pair: pair[1] != "enrol"):  # enrol first
        done = subprocess.run(["bash", "-c", line.replace(DEFAULT_URL, server.url)], capture_output=True, text=True,
                              cwd=folder, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert "error" not in answer, (line, answer)
        if endpoint == "verify":
            assert set(answer) >= {"same", "distance", "threshold"} and answer["faces"][0]["image"] == "a.jpg"
        elif endpoint == "enrol":
            assert answer["name"] == "Bob" and answer["enrolled"][0]["image"] == "b.jpg"
        elif endpoint == "identify":
            assert answer["images"][0]["faces"][0]["nearest"] is not None


def test_python_example(server, examples_dir):
    folder, env = examples_dir
    scripts = examples("python", "urllib")
    assert scripts
    for script in scripts:
        done = subprocess.run([sys.executable, "-c", script.replace(DEFAULT_URL, server.url)], capture_output=True,
                              text=True, cwd=folder, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        first, *faces = done.stdout.splitlines()
        same, distance, threshold = first.split()
        assert same in ("True", "False") and float(distance) >= 0 and float(threshold) == 1.0
        assert faces and faces[0].endswith(" Bob 0.0"), done.stdout  # b.jpg itself was enrolled as Bob
