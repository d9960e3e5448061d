"""The curl and Python examples of docs/serving.md (those the README shows) run against a real server and print
what they should."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from facenet_tf.paths import REPO_ROOT
from tests.serving.conftest import TOKEN

DOC = REPO_ROOT / "docs" / "serving.md"
DEFAULT_URL = "http://127.0.0.1:8000"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


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
    [script] = [block for block in blocks("bash") if "curl" in block]
    lines = [line for line in script.replace(DEFAULT_URL, server.url).splitlines() if line.strip()]
    assert [line.split()[-1].rsplit("/", 1)[1] for line in lines] == ["verify", "enrol", "identify"]
    answers = []
    for line in lines:
        done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, cwd=folder, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        answers.append(json.loads(done.stdout))
    verify, enrol, identify = answers
    assert set(verify) >= {"same", "distance", "threshold"} and verify["faces"][0]["image"] == "a.jpg"
    assert enrol["name"] == "Bob" and enrol["enrolled"][0]["image"] == "b.jpg"
    assert identify["images"][0]["faces"][0]["nearest"] is not None


def test_python_example(server, examples_dir):
    folder, env = examples_dir
    [script] = [block for block in blocks("python") if "urllib" in block]
    done = subprocess.run([sys.executable, "-c", script.replace(DEFAULT_URL, server.url)], capture_output=True,
                          text=True, cwd=folder, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    first, *faces = done.stdout.splitlines()
    same, distance, threshold = first.split()
    assert same in ("True", "False") and float(distance) >= 0 and float(threshold) == 1.0
    assert faces and faces[0].endswith(" Bob 0.0"), done.stdout  # b.jpg itself was enrolled as Bob
