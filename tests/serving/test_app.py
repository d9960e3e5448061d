"""The HTTP API in process (FastAPI's TestClient) with a tiny random model and real LFW photos: every endpoint,
both upload forms, the token, malformed and oversized uploads, the busy answer, and the gallery database going
away and coming back."""

from __future__ import annotations

import base64
import threading
import warnings

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'facenet-tf[serve]')")

from facenet_tf.serving.app import create_app  # noqa: E402
from facenet_tf.serving.batching import MicroBatcher, Overloaded  # noqa: E402
from facenet_tf.serving.service import FaceService  # noqa: E402
from facenet_tf.serving.settings import Access, Batching, Limits  # noqa: E402
from facenet_tf.serving.store import open_store  # noqa: E402
from tests.serving.conftest import TOKEN  # noqa: E402

with warnings.catch_warnings():  # starlette's notice that it will prefer httpx2 one day
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def client_for(net, uri, access=Access(TOKEN), limits=Limits(), batching=Batching()):
    service = FaceService(net, open_store(uri), limits=limits, batching=batching)
    return TestClient(create_app(service, access)), service


@pytest.fixture
def api(net, tmp_path):
    client, service = client_for(net, f"sqlite:///{tmp_path / 'g.db'}")
    yield client
    service.close()
    service.store.close()


def files(*paths, field="image"):
    return [(field, (path.name, path.read_bytes(), "image/jpeg")) for path in paths]


def b64(path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def png(width: int, height: int, flat: bool = False) -> bytes:
    gradient = np.tile(np.linspace(0, 0 if flat else 255, width, dtype=np.uint8), (height, 1))
    return cv2.imencode(".png", np.dstack([gradient] * 3))[1].tobytes()


def test_embed_is_the_library_embedding_in_both_upload_forms(api, net, photos):
    photo = photos["Aaron_Peirsol"][0]
    multipart = api.post("/embed", files=files(photo))
    assert multipart.status_code == 200, multipart.text
    encoded = api.post("/embed", json={"images": [b64(photo)], "faces": "largest"})
    assert encoded.status_code == 200, encoded.text
    [face] = multipart.json()["images"][0]["faces"]
    assert multipart.json()["images"][0]["image"] == photo.name
    assert encoded.json()["images"][0]["faces"][0]["embedding"] == face["embedding"]
    [library] = net.embed(photo)
    assert np.allclose(face["embedding"], library["embedding"], atol=1e-5)
    assert np.allclose(face["box"], library["box"], atol=0.1)
    # embeddings only on request, a data: URL is accepted
    brief = api.post("/embed", json={"image": "data:image/jpeg;base64," + b64(photo), "embeddings": False})
    assert brief.status_code == 200 and "embedding" not in brief.json()["images"][0]["faces"][0]


def test_verify(api, photos):
    aaron, amelie = photos["Aaron_Peirsol"], photos["Amelie_Mauresmo"]
    same = api.post("/verify", files=files(aaron[0], field="a") + files(aaron[1], field="b"))
    assert same.status_code == 200, same.text
    answer = same.json()
    assert set(answer) == {"same", "distance", "threshold", "model", "faces"} and answer["threshold"] == 1.0
    assert answer["same"] == (answer["distance"] <= 1.0) and len(answer["faces"][0]["box"]) == 4
    other = api.post("/verify", json={"a": b64(aaron[0]), "b": b64(amelie[0]), "threshold": 0.001,
                                      "embeddings": True}).json()
    assert other["same"] is False and other["threshold"] == 0.001 and len(other["faces"][1]["embedding"]) == 16
    no_face = api.post("/verify", files=[("a", ("blank.png", png(120, 120))), *files(aaron[0], field="b")])
    assert no_face.status_code == 422 and no_face.json()["error"] == "no face found in 'blank.png'"
    missing = api.post("/verify", files=files(aaron[0], field="a"))
    assert missing.status_code == 400 and "field 'b': one image expected; got 0" in missing.json()["error"]


def test_enrol_identify_list_remove_need_the_token_for_changes(api, photos):
    aaron, amelie = photos["Aaron_Peirsol"], photos["Amelie_Mauresmo"]
    assert api.post("/enrol", data={"name": "Aaron"}, files=files(*aaron[:2])).status_code == 401
    wrong = api.post("/enrol", data={"name": "Aaron"}, files=files(*aaron[:2]),
                     headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and wrong.json() == {"error": "wrong token", "status": 403}
    assert api.get("/list").json()["faces"] == 0
    empty = api.post("/identify", files=files(aaron[2])).json()  # an empty gallery: everyone unknown
    assert empty["images"][0]["faces"][0]["name"] is None
    enrolled = api.post("/enrol", data={"name": "Aaron"}, files=files(*aaron[:2]), headers=AUTH)
    assert enrolled.status_code == 200, enrolled.text
    assert [e["image"] for e in enrolled.json()["enrolled"]] == [aaron[0].name, aaron[1].name]
    assert api.post("/enrol", json={"name": "Amelie", "images": [b64(amelie[0])]}, headers=AUTH).status_code == 200
    # an image without a face: nothing of the request is enrolled
    refused = api.post("/enrol", data={"name": "Amelie"}, headers=AUTH,
                       files=[*files(amelie[1]), ("image", ("blank.png", png(100, 100)))])
    assert refused.status_code == 422 and "nothing enrolled" in refused.json()["error"]
    assert api.post("/enrol", data={"name": "unknown"}, files=files(amelie[1]), headers=AUTH).status_code == 400
    listing = api.get("/list").json()
    assert listing["people"] == {"Aaron": 2, "Amelie": 1} and listing["faces"] == 3
    thumbnail = api.get(f"/faces/{listing['entries'][0]['id']}/thumbnail")
    assert thumbnail.status_code == 200 and thumbnail.content[:3] == b"\xff\xd8\xff"
    assert api.get("/faces/999/thumbnail").status_code == 404
    found = api.post("/identify", data={"k": "2"}, files=files(aaron[2])).json()
    face = found["images"][0]["faces"][0]
    assert [c["name"] for c in face["candidates"]][:2] == sorted(["Aaron", "Amelie"], key=lambda n: [
        c["distance"] for c in face["candidates"] if c["name"] == n][0])
    assert face["nearest"] == face["candidates"][0]["name"] and face["threshold"] == 0.5
    assert face["name"] == (face["nearest"] if face["distance"] <= 0.5 else None)
    assert api.post("/remove", json={"name": "Aaron"}).status_code == 401
    removed = api.post("/remove", json={"name": "Aaron"}, headers=AUTH)
    assert removed.json() == {"removed": 2, "name": "Aaron"}
    assert api.post("/remove", data={"name": "Aaron"}, headers=AUTH).status_code == 404
    assert api.get("/list").json()["people"] == {"Amelie": 1}


def test_malformed_requests_get_one_clear_4xx(api, photos):
    photo = photos["Colin_Powell"][0]
    cases = [
        (dict(files=[("image", ("junk.jpg", b"\xff\xd8\xff not really a jpeg"))]), 400, "cannot use image 'junk.jpg'"),
        (dict(json={"images": ["@@not base64@@"]}), 400, "field 'images[0]' is not valid base64"),
        (dict(content=b"{not json", headers={"Content-Type": "application/json"}), 400, "not valid JSON"),
        (dict(json=["a", "list"]), 400, "must be an object"),
        (dict(content=b"x=1", headers={"Content-Type": "text/plain"}), 415, "multipart/form-data or application/json"),
        (dict(content=b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\nxx",
              headers={"Content-Type": "multipart/form-data; boundary=b"}), 400, "no image in the request"),
        (dict(files=[("photo", ("a.jpg", photo.read_bytes()))]), 400, "unexpected file field 'photo'"),
        (dict(json={"images": [b64(photo)], "faces": "some"}), 400, "faces: one of all, largest, center"),
        (dict(json={}), 400, "no image in the request"),
        (dict(json={"images": [b64(photo)] * 17}), 400, "17 images in one request; this server takes at most 16"),
        (dict(files=[("image", ("tiny.png", png(10, 10)))]), 400, "at least 20×20 is needed"),
    ]
    for request, status, message in cases:
        response = api.post("/embed", **request)
        assert response.status_code == status and message in response.json()["error"], (request, response.text)
        assert response.json()["status"] == status
    bad_k = api.post("/identify", data={"k": "two"}, files=files(photo))
    assert bad_k.status_code == 400 and bad_k.json()["error"] == "field 'k': an integer expected; got 'two'"
    assert api.post("/enrol", files=files(photo), headers=AUTH).json()["error"].startswith("field 'name'")
    assert api.get("/faces/abc/thumbnail").status_code == 422
    assert api.get("/nowhere").json() == {"error": "Not Found", "status": 404}


def test_oversized_uploads_and_images_are_refused(net, tmp_path, photos):
    client, service = client_for(net, f"sqlite:///{tmp_path / 'g.db'}",
                                 limits=Limits(max_upload_bytes=60_000, max_side=1000, max_pixels=300_000))
    try:
        photo = photos["Aaron_Peirsol"][0]
        big = client.post("/embed", files=[("image", ("big.jpg", b"\xff" * 70_000))])
        assert big.status_code == 413 and "at most 60000 bytes" in big.json()["error"]

        def chunks():  # no Content-Length: refused while streaming
            for _ in range(20):
                yield b"\xff" * 5000

        streamed = client.post("/embed", content=chunks(), headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413 and "larger than 60000 bytes" in streamed.json()["error"]
        wide = client.post("/embed", files=[("image", ("wide.png", png(1200, 30)))])
        assert wide.status_code == 413 and "'wide.png' is 1200×30 pixels" in wide.json()["error"]
        square = client.post("/embed", files=[("image", ("square.png", png(600, 600, flat=True)))])
        assert square.status_code == 413 and "300000 in all" in square.json()["error"]
        assert client.post("/embed", files=files(photo)).status_code == 200
    finally:
        service.close()
        service.store.close()


def test_a_full_queue_answers_503_at_once(net, tmp_path, photos):
    client, service = client_for(net, f"sqlite:///{tmp_path / 'g.db'}", batching=Batching(max_queue=2))
    try:
        with service.admitted(), service.admitted():  # two requests in progress: the queue is full
            busy = client.post("/embed", files=files(photos["Aaron_Peirsol"][0]))
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
        assert "the server is busy" in busy.json()["error"]
        assert client.post("/embed", files=files(photos["Aaron_Peirsol"][0])).status_code == 200
        assert client.get("/health").json()["batching"]["refused"] == 1
    finally:
        service.close()
        service.store.close()


def test_micro_batcher_joins_concurrent_requests_and_bounds_its_queue():
    release, entered = threading.Event(), threading.Event()
    calls = []

    def slow(items):
        entered.set()
        release.wait(10)
        calls.append(len(items))
        return [item * 2 for item in items]

    batcher = MicroBatcher(slow, max_batch=8, max_wait=0, max_queue=3)
    try:
        first = batcher.submit([1])
        assert entered.wait(10)  # the worker is busy with the first request
        waiting = [batcher.submit([i, i]) for i in range(3)]  # fill the queue
        with pytest.raises(Overloaded, match="3 requests are already waiting"):
            batcher.submit([9])
        release.set()
        assert first.result(10) == [2]
        assert [f.result(10) for f in waiting] == [[0, 0], [2, 2], [4, 4]]
        assert calls == [1, 6]  # the three waiting requests went through in one call
        assert batcher([1] * 20) == [2] * 20  # a request larger than max_batch is split
        assert calls[-3:] == [8, 8, 4]
        stats = batcher.stats()
        assert stats["refused"] == 1 and stats["batch_sizes"] == {1: 1, 4: 1, 6: 1, 8: 2}
    finally:
        release.set()
        batcher.close()
    # max_wait: requests that arrive within it share the call; a batch never passes max_batch
    sizes = []
    waiter = MicroBatcher(lambda items: sizes.append(len(items)) or items, max_batch=5, max_wait=0.5, max_queue=16)
    try:
        threads = [threading.Thread(target=waiter, args=([i, i],)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert sorted(sizes) == [4, 4]  # 2 + 2 fit in 5, a third request would not
    finally:
        waiter.close()


def test_reads_can_require_the_token(net, tmp_path, photos):
    client, service = client_for(net, f"sqlite:///{tmp_path / 'g.db'}", access=Access(TOKEN, read_token=True))
    open_client, open_service = client_for(net, f"sqlite:///{tmp_path / 'h.db'}", access=Access(None))
    try:
        assert client.get("/list").status_code == 401
        assert client.post("/embed", files=files(photos["Aaron_Peirsol"][0])).status_code == 401
        assert client.get("/list", headers=AUTH).status_code == 200
        health = client.get("/health").json()  # open, without the gallery's counts
        assert health["access"] == {"writes": "token", "reads": "token"} and "faces" not in health["gallery"]
        # no token given at start-up: the gallery cannot be changed at all
        off = open_client.post("/enrol", data={"name": "x"}, files=files(photos["Aaron_Peirsol"][0]), headers=AUTH)
        assert off.status_code == 403 and "started without a token" in off.json()["error"]
    finally:
        for svc in (service, open_service):
            svc.close()
            svc.store.close()


def test_a_requests_images_are_detected_together_and_list_pages(net, tmp_path, photos):
    client, service = client_for(net, f"sqlite:///{tmp_path / 'g.db'}", batching=Batching(max_wait=0.2))
    try:
        colin = photos["Colin_Powell"]
        enrolled = client.post("/enrol", data={"name": "Colin"}, files=files(*colin), headers=AUTH)
        assert enrolled.status_code == 200, enrolled.text
        assert [e["image"] for e in enrolled.json()["enrolled"]] == [p.name for p in colin]  # in upload order
        assert service.detect_batcher.stats()["batch_sizes"] == {3: 1}  # one MTCNN call for the three photos
        assert service.embed_batcher.stats()["batch_sizes"] == {3: 1}
        page = client.get("/list", params={"limit": 2, "offset": 1}).json()
        assert (page["faces"], page["limit"], page["offset"]) == (3, 2, 1)
        assert [e["source"] for e in page["entries"]] == [p.name for p in colin[1:]]
        assert client.get("/list", params={"limit": 0}).status_code == 400
    finally:
        service.close()
        service.store.close()


def test_same_api_on_both_backends(net, store_uri, photos):
    client, service = client_for(net, store_uri)
    try:
        aaron = photos["Aaron_Peirsol"]
        assert client.post("/enrol", data={"name": "Aaron"}, files=files(*aaron[:2]), headers=AUTH).status_code == 200
        face = client.post("/identify", files=files(aaron[2])).json()["images"][0]["faces"][0]
        assert face["nearest"] == "Aaron"
        assert client.get("/list").json()["people"] == {"Aaron": 2}
    finally:
        service.close()
        service.store.close()


def test_database_restart_gives_503_then_recovers(net, postgres, photos):
    client, service = client_for(net, postgres.new_database())
    try:
        photo = photos["Aaron_Peirsol"][0]
        assert client.post("/enrol", data={"name": "Aaron"}, files=files(photo), headers=AUTH).status_code == 200
        postgres.stop("fast")
        try:
            down = client.get("/list")
            assert down.status_code == 503 and down.headers["Retry-After"] == "2"
            assert down.json()["error"].startswith("the gallery database is unavailable: gallery postgresql://")
            assert client.post("/enrol", data={"name": "B"}, files=files(photo), headers=AUTH).status_code == 503
            health = client.get("/health")
            assert health.status_code == 503 and health.json()["gallery"]["reachable"] is False
            assert client.post("/embed", files=files(photo)).status_code == 200  # no database needed
        finally:
            postgres.start()
        assert client.get("/list").json()["people"] == {"Aaron": 1}
        assert client.get("/health").status_code == 200
    finally:
        service.close()
        service.store.close()


def test_an_exported_saved_model_serves_the_same_embeddings(net, tiny_model, tmp_path, photos):
    """The service runs a SavedModel export (loaded by the one model loader, threshold from its metadata) and
    answers with the embeddings of the Keras model it was exported from."""
    import keras

    from facenet_tf.api import FaceNet
    from facenet_tf.export.saved_model import export_saved_model

    export = tmp_path / "exported"
    export_saved_model(keras.models.load_model(tiny_model), export, threshold=0.75, check=False)
    exported = FaceNet(str(export), identify_threshold=0.5, frozen=True)  # as facenet-tf serve loads it
    assert exported.threshold == 0.75
    client, service = client_for(exported, f"sqlite:///{tmp_path / 'g.db'}")
    try:
        photo = photos["Amelie_Mauresmo"][0]
        served = client.post("/embed", files=files(photo)).json()["images"][0]["faces"][0]
        [library] = net.embed(photo)
        assert np.allclose(served["embedding"], library["embedding"], atol=1e-4)
        assert client.get("/health").json()["thresholds"]["verify"] == 0.75
    finally:
        service.close()
        service.store.close()


def test_openapi_documents_every_endpoint_and_both_upload_forms(api):
    schema = api.get("/openapi.json").json()
    assert set(schema["paths"]) == {"/health", "/embed", "/verify", "/identify", "/enrol", "/remove", "/list",
                                    "/faces/{face_id}/thumbnail"}
    for path in ("/embed", "/verify", "/identify", "/enrol"):
        content = schema["paths"][path]["post"]["requestBody"]["content"]
        assert set(content) == {"multipart/form-data", "application/json"}, path
    verify = schema["paths"]["/verify"]["post"]["requestBody"]["content"]
    assert verify["multipart/form-data"]["schema"]["properties"]["a"]["format"] == "binary"
    assert verify["application/json"]["schema"]["properties"]["b"]["format"] == "byte"
    docs = api.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    page = api.get("/")
    assert page.status_code == 200 and 'id="verify-form"' in page.text
