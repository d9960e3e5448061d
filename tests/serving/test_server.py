"""``facenet-tf serve`` as a real process on 127.0.0.1: concurrent clients share model calls, kill -9 during a burst
of enrolments loses no acknowledged face and leaves no half one, SIGTERM stops it cleanly, and the command's
usage errors are one line."""

from __future__ import annotations

import threading
import time

import pytest

from tests.serving.conftest import TOKEN, serve_process

httpx = pytest.importorskip("httpx")
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_concurrent_requests_share_model_calls(server, photos):
    before = httpx.get(f"{server.url}/health").json()["batching"]["embedding"]
    images = [p.read_bytes() for person in photos.values() for p in person]
    results, failures = [], []

    def client(number: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as session:
            for i in range(3):
                response = session.post("/embed", files={"image": ("p.jpg", images[(number + i) % len(images)])})
                (results if response.status_code == 200 else failures).append(response)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, [f.text for f in failures[:3]]
    assert len(results) == 24 and all(len(r.json()["images"][0]["faces"]) >= 1 for r in results)
    after = httpx.get(f"{server.url}/health").json()["batching"]["embedding"]
    calls, items = after["calls"] - before["calls"], after["items"] - before["items"]
    assert items >= 24 and calls < items, f"{items} faces in {calls} model calls: no batch was formed"


def test_two_processes_share_one_gallery_file(server, net, photos):
    """What the server process enrols, a service in this process (its own connection to the same SQLite file)
    finds at once, and the reverse."""
    from facenet_tf.serving.service import FaceService
    from facenet_tf.serving.store import open_store

    colin, amelie = photos["Colin_Powell"], photos["Amelie_Mauresmo"]
    enrolled = httpx.post(f"{server.url}/enrol", data={"name": "Colin shared"}, headers=AUTH,
                          files={"image": colin[0].read_bytes()})
    assert enrolled.status_code == 200, enrolled.text
    here = FaceService(net, open_store(server.gallery))
    try:
        answer = here.identify([("probe.jpg", colin[0].read_bytes())])
        assert answer["images"][0]["faces"][0]["name"] == "Colin shared"
        here.enrol("Amelie shared", [("amelie.jpg", amelie[0].read_bytes())])
    finally:
        here.close()
        here.store.close()
    found = httpx.post(f"{server.url}/identify", files={"image": amelie[0].read_bytes()}).json()
    assert found["images"][0]["faces"][0]["name"] == "Amelie shared"


def test_kill_9_during_enrolments_then_restart(tiny_model, tmp_path, photos):
    """Clients enrol names (two photos each) while the server is killed with SIGKILL; after a restart on the same
    gallery every acknowledged name has both faces, and every other name has both or none."""
    gallery = f"sqlite:///{tmp_path / 'gallery.db'}"
    first = serve_process(tiny_model, gallery, tmp_path)
    pair = [(p.name, p.read_bytes()) for p in photos["Colin_Powell"][:2]]
    acknowledged, sent, stop = [], [], threading.Event()

    def client(number: int) -> None:
        with httpx.Client(base_url=first.url, timeout=30, headers=AUTH) as session:
            for i in range(1000):
                if stop.is_set():
                    return
                name = f"c{number}_{i}"
                sent.append(name)
                try:
                    response = session.post("/enrol", data={"name": name},
                                            files=[("image", image) for image in pair])
                except httpx.HTTPError:
                    return  # the server is gone
                if response.status_code == 200:
                    acknowledged.append(name)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    first.kill()
    stop.set()
    for thread in threads:
        thread.join(60)
    assert len(acknowledged) >= 10, first.tail()
    second = serve_process(tiny_model, gallery, tmp_path)
    try:
        listing = httpx.get(f"{second.url}/list").json()
        people = listing["people"]
        missing = [name for name in acknowledged if people.get(name) != 2]
        assert not missing, f"acknowledged but not (fully) there: {missing[:5]}"
        assert set(people) <= set(sent) and all(count == 2 for count in people.values()), people
        assert all(entry["has_thumbnail"] for entry in listing["entries"])
        # the gallery takes new enrolments after the crash
        again = httpx.post(f"{second.url}/enrol", data={"name": "after"}, files=[("image", pair[0])], headers=AUTH)
        assert again.status_code == 200, again.text
    finally:
        status = second.stop()
    assert status == 0, second.tail()


def test_serve_errors_are_one_line(capsys, tmp_path, tiny_model):
    from facenet_tf import cli
    from facenet_tf.serving.store import open_store

    with open_store(f"sqlite:///{tmp_path / 'other.db'}") as store:
        store.enrol("someone", [1.0] + [0.0] * 15, model="another_model")
    model = ["--model", str(tiny_model)]
    cases = [(["serve", "--read-token", "--token", ""], 2, "--read-token needs a token"),
             (["serve", "--identify-threshold", "5"], 2, "--identify-threshold is a squared distance"),
             (["serve", "--max-side", "0"], 2, "--max-side must be >= 1"),
             (["serve", "--port", "0"], 2, "--port must be in [1, 65535]"),
             (["serve", *model, "--identify-threshold", "0.5"], 2,
              f"no threshold is known for model {tiny_model}: pass --threshold"),
             (["serve", *model, "--threshold", "1", "--identify-threshold", "0.5", "--gallery",
               f"sqlite:///{tmp_path / 'other.db'}"], 1, "holds embeddings of model another_model, not"),
             (["serve", *model, "--threshold", "1", "--identify-threshold", "0.5", "--gallery", "mysql://x"], 1,
              "--gallery: gallery 'mysql://x' is not a gallery URI")]
    for argv, status, message in cases:
        assert cli.main(argv) == status, argv
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and message in error, error
