"""Fixtures of the serving tests: a throwaway PostgreSQL server (its own cluster in a temporary folder, on a free
loopback port, stopped at the end), gallery URIs of both backends, a tiny random model and LFW photos, and a
``facenet-tf serve`` process on a free loopback port."""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from facenet_tf.serving.process import ServerProcess, free_port

PEOPLE = ("Aaron_Peirsol", "Amelie_Mauresmo", "Colin_Powell")
TOKEN = "test-token-123"
#: Seconds a server process may take to answer /health after it starts (TensorFlow import, model, MTCNN).
START_TIMEOUT = 120


def _postgres_binaries() -> tuple[str, str] | None:
    """``(initdb, pg_ctl)`` or None."""
    initdb = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                                                        reverse=True)), None)
    pg_ctl = shutil.which("pg_ctl") or (str(Path(initdb).with_name("pg_ctl")) if initdb else None)
    if not initdb or not pg_ctl or not os.path.exists(pg_ctl):
        return None
    return initdb, pg_ctl


class PostgresServer:
    """A PostgreSQL cluster in a temporary folder, listening on 127.0.0.1 only (and a private socket folder). As
    root (PostgreSQL refuses to run as root) it runs as the unprivileged user ``nobody``."""

    def __init__(self) -> None:
        binaries = _postgres_binaries()
        if binaries is None:
            raise RuntimeError("PostgreSQL binaries (initdb, pg_ctl) not found: install postgresql")
        self.initdb, self.pg_ctl = binaries
        self.root = Path(tempfile.mkdtemp(prefix="facenet_tf_pg_"))
        self.data, self.sockets, self.log = self.root / "data", self.root / "sockets", self.root / "server.log"
        self.sockets.mkdir()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                raise RuntimeError("running as root without runuser: cannot start PostgreSQL as another user")
            self.as_user = ["runuser", "-u", "nobody", "--"]
            os.chmod(self.root, 0o755)
            for path in (self.root, self.sockets):
                os.chown(path, 65534, 65534)
        self.port = free_port()
        self._run([self.initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
        self.start()
        self._names = itertools.count()

    def _run(self, command: list[str], check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(self.as_user + command, capture_output=True, text=True, timeout=120, cwd=self.root)
        if check and done.returncode:
            raise RuntimeError(f"{' '.join(command[:2])} failed ({done.returncode}): {done.stderr or done.stdout}")
        return done

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sockets} -c max_connections=60"
        self._run([self.pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "60",
                   "start"])

    def stop(self, mode: str = "fast") -> None:
        self._run([self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"], check=False)

    def uri(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database: its URI."""
        import psycopg

        name = f"gallery_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.uri(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.uri(name)

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    """The throwaway PostgreSQL server (skipped, with the reason, where PostgreSQL or psycopg is missing)."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'facenet-tf[serve]')")
    if _postgres_binaries() is None:
        pytest.skip("PostgreSQL is not installed (initdb, pg_ctl); .ci/run installs it")
    server = PostgresServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_uri(request, tmp_path):
    """A new, empty gallery of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gallery.db'}"
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A random nns2 with 16-D embeddings and 64x64 inputs, saved as .keras: a real model at test cost."""
    import keras

    from facenet_tf.models import create_model

    path = tmp_path_factory.mktemp("serving_model") / "tiny.keras"
    keras.utils.set_random_seed(0)
    create_model("nns2", embedding_dim=16, input_shape=(64, 64, 3)).save(path)
    return path


@pytest.fixture(scope="session")
def net(tiny_model):
    """The tiny model as a ``facenet_tf.api.FaceNet`` (verify threshold 1.0, identify 0.5, as the servers)."""
    from facenet_tf.api import FaceNet

    return FaceNet(str(tiny_model), threshold=1.0, identify_threshold=0.5)


@pytest.fixture(scope="session")
def photos(lfw_root, tmp_path_factory):
    """{person: [photo path, ...]} of a few LFW people (3 photos each), copied to a temporary folder."""
    from facenet_tf import paths

    images = paths.lfw_images_dir(lfw_root)
    root = tmp_path_factory.mktemp("serving_photos")
    found = {}
    for person in PEOPLE:
        found[person] = []
        for number in (1, 2, 3):
            source = images / person / f"{person}_{number:04d}.jpg"
            target = root / source.name
            shutil.copy(source, target)
            found[person].append(target)
    return found


def serve_process(model: Path, gallery: str, workdir: Path, *extra: str, port: int | None = None) -> ServerProcess:
    """``facenet-tf serve`` of the tiny model (thresholds given), with the token ``TOKEN``, ready."""
    return ServerProcess(["--model", str(model), "--threshold", "1.0", "--identify-threshold", "0.5", "--gallery",
                          gallery, "--token", TOKEN, *extra], workdir, port=port, env={"FACENET_TF_OFFLINE": "1"},
                         start_timeout=START_TIMEOUT)


@pytest.fixture(scope="session")
def server(tiny_model, tmp_path_factory):
    """One ``facenet-tf serve`` process for the tests that only talk to it (SQLite gallery, token ``TOKEN``)."""
    pytest.importorskip("uvicorn", reason="the serve extra is not installed (pip install 'facenet-tf[serve]')")
    workdir = tmp_path_factory.mktemp("server")
    process = serve_process(tiny_model, f"sqlite:///{workdir / 'gallery.db'}", workdir)
    process.gallery = f"sqlite:///{workdir / 'gallery.db'}"
    try:
        yield process
    finally:
        process.stop()
