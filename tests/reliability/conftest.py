"""Tools of the reliability suite: byte-for-byte snapshots, subprocesses killed with SIGKILL or capped in file
size (a full disk), and read-only folders.

Every case: snapshot what exists, do the hostile thing, then assert that the snapshot is intact and that what the
run reported is true. Subprocesses write their output to files (pipes can deadlock them) and are bounded in time.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def snapshot(root: str | os.PathLike) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (relative path -> digest; folders as 'dir', links as 'link:<target>')."""
    root = Path(root)
    result: dict[str, str] = {}
    if root.is_file():
        return {".": hashlib.sha256(root.read_bytes()).hexdigest()}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                result[key] = f"link:{os.readlink(path)}"
            elif path.is_dir():
                result[key] = "dir"
            else:
                result[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return result


def assert_intact(before: dict[str, str], root: str | os.PathLike) -> None:
    """Every file of ``before`` is still under ``root`` with the same bytes (new files are allowed)."""
    after = snapshot(root)
    lost = sorted(k for k in before if k not in after)
    changed = sorted(k for k in before if k in after and after[k] != before[k])
    assert not lost and not changed, f"lost: {lost[:10]}, changed: {changed[:10]}"


def _limits(fsize: int | None) -> Callable[[], None] | None:
    if fsize is None:
        return None

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead of killing

    return apply


def python_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(TF_ENABLE_ONEDNN_OPTS="1", TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def run(args: list[str], log: Path, *, fsize: int | None = None, timeout: float = 120, env: dict | None = None,
        cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """Runs ``[sys.executable, *args]`` to completion (output in ``log``); ``fsize`` caps every file it writes
    (RLIMIT_FSIZE: a full disk)."""
    with open(log, "wb") as out:
        proc = subprocess.run([sys.executable, *args], stdout=out, stderr=subprocess.STDOUT, timeout=timeout,
                              env=env or python_env(), cwd=cwd or REPO, preexec_fn=_limits(fsize))
    proc.output = log.read_text(errors="replace")
    return proc


def kill_when(args: list[str], log: Path, ready: Callable[[], bool], *, delay: float = 0.0, timeout: float = 120,
              env: dict | None = None) -> bool:
    """Starts ``[sys.executable, *args]``, waits until ``ready()`` (polled), then ``delay`` seconds more, and sends
    SIGKILL. Returns False when the process ended by itself before that (the caller decides what that means)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, *args], stdout=out, stderr=subprocess.STDOUT, env=env or python_env(),
                                cwd=REPO)
        deadline = time.monotonic() + timeout
        try:
            while not ready():
                if proc.poll() is not None:
                    return False
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{args}: not ready within {timeout} s; log:\n{log.read_text()[-2000:]}")
                time.sleep(0.02)
            end = time.monotonic() + delay
            while time.monotonic() < end:
                if proc.poll() is not None:
                    return False
                time.sleep(0.01)
            if proc.poll() is not None:
                return False
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            return True
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)


@contextlib.contextmanager
def read_only(folder: str | os.PathLike) -> Iterator[Path]:
    """``folder`` made read-only for the block: ``chmod a-w`` for an ordinary user; for root (whom modes do not
    stop) a read-only bind mount, or the test is skipped where mounting is not allowed."""
    folder = Path(folder)
    if os.geteuid() != 0:
        mode = folder.stat().st_mode
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(mode)
        return
    mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode == 0
    if mounted:
        mounted = subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True).returncode == 0
        if not mounted:
            subprocess.run(["umount", str(folder)], capture_output=True)
    if not mounted:
        pytest.skip("running as root where bind mounts are not allowed: cannot make a read-only folder")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True, check=True)
