"""The gallery store battery, run against both backends (``store_uri``: SQLite file and PostgreSQL database):
enrol / list / search / remove, all-or-nothing writes, one model per store, readers in other connections and
processes, kill -9 during enrolments, and the .npz import."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from facenet_tf.paths import REPO_ROOT
from facenet_tf.recognition import Gallery
from facenet_tf.serving.store import StoreError, StoreUnavailable, import_npz, open_store


def unit(rows: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_enrol_list_search_remove(store_uri):
    vectors = unit(6)
    with open_store(store_uri) as store:
        assert store.info()["faces"] == 0 and store.info()["model"] is None
        ids = store.enrol(["ann", "ann", "bob", "bob", "cy", "cy"], vectors, [f"p{i}.jpg" for i in range(6)],
                          [b"jpeg-bytes", None, None, None, None, None], model="tiny")
        assert ids == sorted(ids) and len(set(ids)) == 6
        assert store.people() == {"ann": 2, "bob": 2, "cy": 2}
        assert [entry.source for entry in store.faces("bob")] == ["p2.jpg", "p3.jpg"]
        assert [entry.id for entry in store.faces(limit=2, offset=3)] == ids[3:5]
        assert [entry.source for entry in store.faces("cy", limit=5, offset=1)] == ["p5.jpg"]
        assert store.thumbnail(ids[0]) == b"jpeg-bytes" and store.thumbnail(ids[1]) is None
        info = store.info()
        assert (info["faces"], info["people"], info["model"], info["dimension"]) == (6, 3, "tiny", 8)
        # search equals the in-memory gallery's exact search
        reference = Gallery()
        reference.add(["ann", "ann", "bob", "bob", "cy", "cy"], vectors)
        probes = unit(4, seed=1)
        got, want = store.search(probes, k=3), reference.search(probes, k=3)
        assert (got.names == want.names).all() and np.allclose(got.distances, want.distances)
        assert store.search(vectors[2], k=1).names[0, 0] == "bob"
        assert store.remove(name="bob") == 2
        assert store.remove(face_id=ids[0]) == 1
        assert store.people() == {"ann": 1, "cy": 2}
        assert store.search(vectors[2], k=1).names[0, 0] != "bob"
        with pytest.raises(StoreError, match="'bob' is not in the gallery"):
            store.remove(name="bob")
        with pytest.raises(StoreError, match="is not in the gallery"):
            store.thumbnail(ids[0])


def test_writes_are_all_or_nothing_and_checked(store_uri):
    with open_store(store_uri) as store:
        store.enrol("ann", unit(2), model="tiny")
        bad = unit(3)
        bad[2, 0] = np.nan
        with pytest.raises(ValueError, match="non-finite"):
            store.enrol("bob", bad, model="tiny")
        with pytest.raises(StoreError, match="holds 8-D embeddings; got 4-D"):
            store.enrol("bob", unit(3, dim=4), model="tiny")
        with pytest.raises(StoreError, match="of model tiny, not other"):
            store.enrol("bob", unit(3), model="other")
        for name in ("", " ann", "x" * 201, "tab\there"):
            with pytest.raises(StoreError, match="name"):
                store.enrol(name, unit(1), model="tiny")
        with pytest.raises(StoreError, match="thumbnails: got 1 for 2"):
            store.enrol("bob", unit(2), thumbnails=[None], model="tiny")
        assert store.people() == {"ann": 2}
        with pytest.raises(StoreError, match="4-D|dimension 4"):
            store.search(unit(1, dim=4))


def test_another_connection_sees_changes_and_reads_during_a_write(store_uri):
    """A second store object (another connection, as another process has) sees every committed change at its next
    search, and reads while a write transaction is open (not yet committed) without waiting for it."""
    with open_store(store_uri) as writer, open_store(store_uri) as reader:
        writer.enrol("ann", unit(1), model="tiny")
        assert reader.search(unit(1), k=1).names[0, 0] == "ann"
        writer.enrol("bob", unit(1, seed=5), model="tiny")
        assert reader.search(unit(1, seed=5), k=1).names[0, 0] == "bob"  # the cached gallery was refreshed
        with writer._transaction() as cursor:  # a write in progress
            cursor.execute(writer._sql("INSERT INTO faces (name, source, embedding, thumbnail, created) "
                                       "VALUES (?, '', ?, NULL, 0)"), ("cy", unit(1)[0].tobytes()))
            started = time.monotonic()
            assert reader.people() == {"ann": 1, "bob": 1}  # the committed state, at once
            assert time.monotonic() - started < 2
        assert reader.people() == {"ann": 1, "bob": 1, "cy": 1}


# A process that enrols batches of BATCH faces under names b0, b1, ... and prints "ack <i>" after each returns.
ENROLLER = """
import sys, numpy as np
from facenet_tf.serving.store import open_store
store = open_store(sys.argv[1])
rng = np.random.default_rng(0)
print("ready", flush=True)
for i in range(100000):
    vectors = rng.normal(size=({batch}, 32)).astype(np.float32)
    store.enrol(f"b{{i}}", vectors / np.linalg.norm(vectors, axis=1, keepdims=True), thumbnails=[b"t" * 4000] * {batch},
                model="tiny")
    print(f"ack {{i}}", flush=True)
"""
BATCH = 5


def test_kill_9_during_enrolments_leaves_whole_faces_only(store_uri, tmp_path):
    """kill -9 at random moments of a stream of enrolments: every acknowledged batch is there, complete, and any
    other batch is complete or absent; the store opens and takes writes again."""
    rng = random.Random(20261206)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    for attempt in range(3):
        log = tmp_path / f"enroller_{attempt}.log"
        with open(log, "w") as out:
            process = subprocess.Popen([sys.executable, "-c", ENROLLER.format(batch=BATCH), store_uri], stdout=out,
                                       stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while "ready" not in log.read_text() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
        assert process.poll() is None, log.read_text()
        time.sleep(rng.uniform(0.1, 0.6))
        process.kill()
        process.wait(timeout=30)
        acknowledged = {f"b{line.split()[1]}" for line in log.read_text().splitlines() if line.startswith("ack ")}
        with open_store(store_uri) as store:
            people = store.people()
            assert acknowledged <= set(people), f"attempt {attempt}: acknowledged but missing: " \
                                                f"{sorted(acknowledged - set(people))[:5]}"
            half = {name: count for name, count in people.items() if count % BATCH}  # names repeat per attempt
            assert not half, f"attempt {attempt}: partly enrolled: {half}"
            gallery, ids = store.gallery()
            assert len(gallery) == len(ids) == sum(people.values())
            assert np.allclose(np.linalg.norm(gallery.embeddings, axis=1), 1, atol=1e-5)
        assert acknowledged, f"attempt {attempt}: nothing was enrolled before the kill:\n{log.read_text()}"


def test_open_store_refuses_what_is_not_a_gallery(tmp_path):
    (tmp_path / "notes.db").write_text("hello, not a database")
    cases = {"mysql://x/y": "not a gallery URI", "sqlite:///": "names no file",
             f"sqlite:///{tmp_path}": "is a folder", f"sqlite:///{tmp_path}/nowhere/g.db": "does not exist",
             f"sqlite:///{tmp_path}/notes.db": "is not an SQLite database"}
    for uri, message in cases.items():
        with pytest.raises(StoreError, match=message):
            open_store(uri)


def test_an_unreachable_server_is_unavailable_not_a_crash():
    from facenet_tf.serving.process import free_port

    pytest.importorskip("psycopg")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match=r"postgresql://nobody@127\.0\.0\.1"):
        open_store(f"postgresql://nobody:secret@127.0.0.1:{free_port()}/gallery")
    assert time.monotonic() - started < 10


def test_postgres_restarted_under_load_gives_clear_errors_then_recovers(postgres):
    """Readers and a writer run while the server restarts: each call succeeds or raises StoreUnavailable (nothing
    else), and once the server is back every thread's calls succeed again, without reopening the store."""
    uri = postgres.new_database()
    store = open_store(uri)
    store.enrol("ann", unit(2, dim=32), model="tiny")
    errors, others, successes_after = [], [], {"n": 0}
    stop, restarted = threading.Event(), threading.Event()

    def work(kind: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                if kind == 0:
                    store.enrol(f"w{i}", unit(1, dim=32, seed=i), model="tiny")
                else:
                    store.search(unit(1, dim=32, seed=i), k=1)
                if restarted.is_set():
                    successes_after["n"] += 1
            except StoreUnavailable as error:
                errors.append(str(error))
            except Exception as error:  # noqa: BLE001 - what the test looks for
                others.append(repr(error))
            time.sleep(0.005)

    threads = [threading.Thread(target=work, args=(kind,)) for kind in (0, 1, 1)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.3)
        postgres.stop("fast")
        time.sleep(0.5)
        postgres.start()
        restarted.set()
        deadline = time.monotonic() + 20
        while successes_after["n"] < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        store.close()
    assert not others, others[:3]
    assert errors, "no call saw the server down"
    assert all(e.startswith(f"gallery postgresql://postgres@127.0.0.1:{postgres.port}/") for e in errors), errors[:3]
    assert successes_after["n"] >= 20, f"only {successes_after['n']} calls succeeded after the restart"
    with open_store(uri) as check:
        assert "ann" in check.people()


def test_import_npz_command(store_uri, tmp_path, capsys):
    from facenet_tf import cli

    gallery = Gallery(metadata={"model": "inception_resnet_v1/msceleb"})
    gallery.add(["ann", "ann", "bob"], unit(3), ["a1.jpg", "a2.jpg", "b.jpg"])
    npz = gallery.save(tmp_path / "old.npz")
    assert cli.main(["gallery", "import", str(npz), "--to", store_uri, "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert (done["faces"], done["people"], done["model"]) == (3, 2, "inception_resnet_v1@msceleb")
    with open_store(store_uri) as store:
        assert store.people() == {"ann": 2, "bob": 1}
        assert [e.source for e in store.faces()] == ["a1.jpg", "a2.jpg", "b.jpg"]
        assert np.allclose(store.gallery()[0].embeddings, gallery.embeddings)
    # a store with faces is not replaced without --overwrite; with it, replaced in one go
    assert cli.main(["gallery", "import", str(npz), "--to", store_uri]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "already holds 3 face(s); pass --overwrite" in error
    other = Gallery(metadata={"model": "nns2"})
    other.add(["cy"], unit(1, dim=4))
    assert cli.main(["gallery", "import", str(other.save(tmp_path / "other.npz")), "--to", store_uri,
                     "--overwrite"]) == 0
    with open_store(store_uri) as store:
        assert store.people() == {"cy": 1} and store.info()["model"] == "nns2"
    capsys.readouterr()
    # bad inputs: one line naming the file
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    for source, message in ((tmp_path / "missing.npz", "missing.npz' does not exist"),
                            (tmp_path / "broken.npz", "broken.npz' is not a readable gallery file")):
        assert cli.main(["gallery", "import", str(source), "--to", store_uri]) == 1
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and message in error, error
    assert cli.main(["gallery", "import", str(npz), "--to", "nosuch://x"]) == 1
    assert "--to: gallery 'nosuch://x' is not a gallery URI" in capsys.readouterr().err
