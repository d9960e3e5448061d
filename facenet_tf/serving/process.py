"""``facenet-tf serve`` as a child process on a free 127.0.0.1 port: started, waited for (``GET /health``), stopped
(SIGTERM: graceful) or killed. What the tests and ``benchmarks/serve.py`` run; also a way to start a private server
from a Python program."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from facenet_tf.paths import REPO_ROOT


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``python -m facenet_tf.cli serve OPTIONS --port PORT`` with its output in ``log_dir`` (a file: a pipe nobody
    reads can block it), ready when this returns. RuntimeError, with the end of the log, when it exits or does not
    answer within ``start_timeout`` seconds."""

    def __init__(self, options: Sequence[str], log_dir: str | os.PathLike, port: int | None = None,
                 env: dict[str, str] | None = None, start_timeout: float = 120.0) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(log_dir) / f"server_{self.port}_{time.monotonic_ns()}.log"
        environment = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
                       "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
                       **(env or {})}
        command = [sys.executable, "-m", "facenet_tf.cli", "serve", *options, "--port", str(self.port)]
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environment,
                                            cwd=log_dir)
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
        self._wait_ready(start_timeout)

    def health(self, timeout: float = 10.0) -> dict:
        """``GET /health``."""
        with self._opener.open(f"{self.url}/health", timeout=timeout) as response:
            return json.load(response)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited ({self.process.returncode}):\n{self.tail()}")
            try:
                self.health(timeout=2)
                return
            except (urllib.error.URLError, OSError, ValueError):
                time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"the server did not answer within {timeout:g} s:\n{self.tail()}")

    def tail(self, characters: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-characters:]

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` (default: SIGKILL) and wait; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        return self.process.returncode

    def stop(self) -> int:
        """SIGTERM (a graceful stop); the exit status (0 when it stopped cleanly)."""
        return self.kill(signal.SIGTERM)
