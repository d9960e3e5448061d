"""The HTTP layer of ``facenet-tf serve``: a FastAPI application over a :class:`FaceService`.

Endpoints (OpenAPI at ``/openapi.json``, interactive docs at ``/docs``):

    GET  /health                      model, thresholds, gallery reachable, batching statistics (always open)
    POST /embed      image(s)         every face: box, confidence, embedding
    POST /verify     a, b             the largest face of each: same person?, distance, threshold
    POST /identify   image(s)         every face: nearest people, name when within the identify threshold
    POST /enrol      name, image(s)   the largest face of each image, one transaction (token)
    POST /remove     name or id       (token)
    GET  /list                        people, faces (ids, sources; ``limit``/``offset`` pages)
    GET  /faces/{id}/thumbnail        the JPEG crop stored at enrolment
    GET  /                            a page: verify two photos, browse the gallery

Images come as multipart uploads (fields ``image`` — repeatable —, or ``a`` and ``b``) or as a JSON object whose
image fields hold base64 strings (``"images": [...]``, ``"a"``, ``"b"``; a ``data:`` URL prefix is accepted). Other
fields (``name``, ``faces``, ``k``, ``threshold``, ``embeddings``, ``id``) are form fields or JSON values.

Errors are JSON ``{"error": "...", "status": N}``: 400 malformed, 401/403 token, 404 unknown face or name, 413 upload
or image too large, 415 not multipart/JSON, 422 no face, 503 busy (with ``Retry-After``) or gallery database
unavailable.
"""

import base64
import binascii
import dataclasses
import hmac
import json
import logging
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from facenet_tf.serving.batching import Overloaded
from facenet_tf.serving.service import LIST_LIMIT, FaceService, ServiceError
from facenet_tf.serving.settings import TOKEN_ENV, Access
from facenet_tf.serving.store import StoreError, StoreUnavailable

LOG = logging.getLogger("facenet_tf.serving")
IMAGE_FIELDS = ("image", "images")
MAX_FORM_FIELDS = 32


def _request_body(image_fields: tuple[str, ...], fields: dict[str, dict]) -> dict:
    """The OpenAPI description of a body that is either multipart or JSON (the endpoints read it themselves)."""
    images = {name: {"type": "string", "format": "binary"} for name in image_fields}
    if image_fields == IMAGE_FIELDS:
        images = {"image": {"type": "array", "items": {"type": "string", "format": "binary"},
                            "description": "one or more photos"}}
    encoded = {name: {**({"type": "array", "items": {"type": "string", "format": "byte"}}
                         if name == "images" else {"type": "string", "format": "byte"}),
                      "description": "base64 (a data: URL prefix is accepted)"}
               for name in (("images",) if image_fields == IMAGE_FIELDS else image_fields)}
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {**images, **fields}}},
        "application/json": {"schema": {"type": "object", "properties": {**encoded, **fields}}}}}}


_EMBEDDINGS = {"embeddings": {"type": "boolean", "description": "also return the embeddings (default false)"}}
_THRESHOLD = {"threshold": {"type": "number", "description": "squared distance; default: the server's"}}


class _Upload:
    """A parsed request body: the uploaded images by field, and the other fields."""

    def __init__(self) -> None:
        self.images: dict[str, list[tuple[str, bytes]]] = {}
        self.fields: dict[str, Any] = {}

    def images_of(self, *names: str) -> list[tuple[str, bytes]]:
        return [image for name in names for image in self.images.get(name, [])]

    def one_image(self, name: str) -> tuple[str, bytes]:
        found = self.images.get(name, [])
        if len(found) != 1:
            raise ServiceError(f"field '{name}': one image expected; got {len(found)}")
        return found[0]

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.fields.get(name, default)
        if value is not None and not isinstance(value, str):
            raise ServiceError(f"field '{name}': a string expected")
        return value

    def number(self, name: str, kind: type, default: Any = None) -> Any:
        value = self.fields.get(name)
        if value is None or value == "":
            return default
        try:
            if isinstance(value, bool) or (kind is int and isinstance(value, float)):
                raise ValueError
            return kind(value)
        except (TypeError, ValueError):
            raise ServiceError(f"field '{name}': {'an integer' if kind is int else 'a number'} expected; "
                               f"got {str(value)[:40]!r}") from None

    def flag(self, name: str) -> bool:
        value = self.fields.get(name, False)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
            return value.lower() in ("1", "true", "yes", "on")
        raise ServiceError(f"field '{name}': true or false expected; got {str(value)[:40]!r}")


def _decode_base64(value: Any, label: str) -> bytes:
    if not isinstance(value, str):
        raise ServiceError(f"field '{label}': a base64 string expected")
    if value.startswith("data:") and "," in value:
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ServiceError(f"field '{label}' is not valid base64") from None


def create_app(service: FaceService, access: Access = Access()):
    """The FastAPI application serving ``service``."""
    app = FastAPI(title="facenet-tf", version="1",
                  description="Face embedding, verification and identification against a gallery "
                              f"(model {service.model_name}). Images as multipart uploads or base64 JSON. "
                              "Enrol and remove need the bearer token given at start-up.")
    app.state.service = service
    limits = service.limits

    def error(status: int, message: str, headers: dict | None = None):
        return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)

    @app.exception_handler(ServiceError)
    async def _service_error(request, exc: ServiceError):
        return error(exc.status, str(exc))

    @app.exception_handler(StoreError)
    async def _store_error(request, exc: StoreError):
        return error(409, str(exc))

    @app.exception_handler(StoreUnavailable)
    async def _store_unavailable(request, exc: StoreUnavailable):
        return error(503, f"the gallery database is unavailable: {exc}; try again shortly", {"Retry-After": "2"})

    @app.exception_handler(Overloaded)
    async def _overloaded(request, exc: Overloaded):
        return error(503, str(exc), {"Retry-After": "1"})

    @app.exception_handler(HTTPException)
    async def _http_error(request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return error(422, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(Exception)
    async def _internal_error(request, exc: Exception):
        LOG.exception("internal error on %s %s", request.method, request.url.path)
        return error(500, f"internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")

    def authorise(request: Request, write: bool) -> None:
        if not write and not access.read_token:
            return
        if access.token is None:
            raise ServiceError("changing the gallery is off: the server was started without a token (--token or "
                               f"{TOKEN_ENV})", 403)
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise ServiceError(f"this request needs the token: header 'Authorization: Bearer <token>'", 401)
        if not hmac.compare_digest(given.strip().encode(), access.token.encode()):
            raise ServiceError("wrong token", 403)

    async def body(request: Request) -> bytes:
        """The body, refused (413) as soon as it passes the upload limit (announced or streamed)."""
        limit = limits.max_upload_bytes
        announced = request.headers.get("content-length")
        if announced is not None and announced.isdigit() and int(announced) > limit:
            raise ServiceError(f"upload of {int(announced)} bytes; this server takes at most {limit} bytes", 413)
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ServiceError(f"upload larger than {limit} bytes, the most this server takes", 413)
                chunks.append(chunk)
        except ClientDisconnect:
            raise ServiceError("the client disconnected before the upload was complete") from None
        return b"".join(chunks)

    async def upload(request: Request, image_fields: tuple[str, ...]) -> _Upload:
        data = await body(request)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        parsed = _Upload()
        if kind == "application/json":
            try:
                document = json.loads(data)
            except (ValueError, UnicodeDecodeError) as problem:
                raise ServiceError(f"the body is not valid JSON: {problem}") from None
            if not isinstance(document, dict):
                raise ServiceError("the JSON body must be an object")
            for key, value in document.items():
                if key in image_fields:
                    values = value if isinstance(value, list) else [value]
                    labels = [f"{key}[{i}]" for i in range(len(values))] if isinstance(value, list) else [key]
                    parsed.images[key] = [(label, _decode_base64(v, label)) for label, v in zip(labels, values)]
                else:
                    parsed.fields[key] = value
            return parsed
        if kind == "multipart/form-data":
            async def stream():
                yield data

            try:
                form = await MultiPartParser(request.headers, stream(), max_files=limits.max_images,
                                             max_fields=MAX_FORM_FIELDS).parse()
            except MultiPartException as problem:
                raise ServiceError(f"malformed multipart upload: {problem.message}") from None
            try:
                for key, value in form.multi_items():
                    if isinstance(value, UploadFile):
                        if key not in image_fields:
                            raise ServiceError(f"unexpected file field '{key}' (images go in "
                                               f"{', '.join(repr(f) for f in image_fields)})")
                        parsed.images.setdefault(key, []).append((value.filename or key, await value.read()))
                    else:
                        parsed.fields[key] = value
            finally:
                await form.close()
            return parsed
        if kind == "application/x-www-form-urlencoded":  # fields only (curl -d name=...)
            try:
                parsed.fields.update(parse_qsl(data.decode(), keep_blank_values=True, strict_parsing=bool(data),
                                               max_num_fields=MAX_FORM_FIELDS))
            except (ValueError, UnicodeDecodeError) as problem:
                raise ServiceError(f"malformed form: {problem}") from None
            return parsed
        raise ServiceError(f"send multipart/form-data or application/json, not {kind or 'no content type'!r}", 415)

    async def call(function, *args, **kwargs):
        with service.admitted():
            return await run_in_threadpool(function, *args, **kwargs)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(resources.files("facenet_tf.serving").joinpath("page.html").read_text())

    @app.get("/health", summary="Is the service up; model, thresholds, gallery, batching")
    async def health():
        status, gallery = 200, None
        try:
            info = await run_in_threadpool(service.store.info)
            gallery = {"uri": info["uri"], "reachable": True}
            if not access.read_token:
                gallery.update(faces=info["faces"], people=info["people"])
        except StoreUnavailable as problem:
            status, gallery = 503, {"uri": service.store.display_uri, "reachable": False, "error": str(problem)}
        return JSONResponse({"status": "ok" if status == 200 else "degraded", "model": service.model_name,
                             "thresholds": {"verify": service.verify_threshold,
                                            "identify": service.identify_threshold},
                             "gallery": gallery, "batching": service.stats(),
                             "limits": dataclasses.asdict(limits),
                             "access": {"writes": "token" if access.token else "off",
                                        "reads": "token" if access.read_token else "open"}}, status_code=status)

    @app.post("/embed", summary="Every face of the images: box, confidence, embedding",
              openapi_extra=_request_body(IMAGE_FIELDS, {
                  "faces": {"type": "string", "enum": ["all", "largest", "center"], "default": "all"},
                  "embeddings": {"type": "boolean", "default": True}}))
    async def embed(request: Request):
        authorise(request, write=False)
        parsed = await upload(request, IMAGE_FIELDS)
        embeddings = parsed.flag("embeddings") if "embeddings" in parsed.fields else True
        return await call(service.embed, parsed.images_of(*IMAGE_FIELDS), parsed.text("faces", "all"), embeddings)

    @app.post("/verify", summary="Are the main faces of two photos the same person?",
              openapi_extra=_request_body(("a", "b"), {**_THRESHOLD, **_EMBEDDINGS}))
    async def verify(request: Request):
        authorise(request, write=False)
        parsed = await upload(request, ("a", "b"))
        return await call(service.verify, parsed.one_image("a"), parsed.one_image("b"),
                          parsed.number("threshold", float), parsed.flag("embeddings"))

    @app.post("/identify", summary="Name every face after the nearest enrolled person",
              openapi_extra=_request_body(IMAGE_FIELDS, {
                  "k": {"type": "integer", "default": 1, "description": "nearest people listed per face"},
                  **_THRESHOLD, **_EMBEDDINGS}))
    async def identify(request: Request):
        authorise(request, write=False)
        parsed = await upload(request, IMAGE_FIELDS)
        return await call(service.identify, parsed.images_of(*IMAGE_FIELDS), parsed.number("k", int, 1),
                          parsed.number("threshold", float), parsed.flag("embeddings"))

    @app.post("/enrol", summary="Enrol the largest face of each image under a name (token)",
              openapi_extra=_request_body(IMAGE_FIELDS, {"name": {"type": "string"}, **_EMBEDDINGS}))
    async def enrol(request: Request):
        authorise(request, write=True)
        parsed = await upload(request, IMAGE_FIELDS)
        name = parsed.text("name")
        if name is None:
            raise ServiceError("field 'name': the identity to enrol the faces under is missing")
        return await call(service.enrol, name, parsed.images_of(*IMAGE_FIELDS), parsed.flag("embeddings"))

    @app.post("/remove", summary="Remove an identity (every face) or one face by id (token)",
              openapi_extra=_request_body((), {"name": {"type": "string"}, "id": {"type": "integer"}}))
    async def remove(request: Request):
        authorise(request, write=True)
        parsed = await upload(request, ())
        return await call(service.remove, parsed.text("name"), parsed.number("id", int))

    @app.get("/list", summary="Enrolled people (face counts) and faces, oldest first, a page at a time")
    async def list_faces(request: Request, name: str | None = None, limit: int = LIST_LIMIT, offset: int = 0):
        authorise(request, write=False)
        return await call(service.list, name, limit, offset)

    @app.get("/faces/{face_id}/thumbnail", summary="The JPEG face crop stored at enrolment",
             response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
    async def face_thumbnail(request: Request, face_id: int):
        authorise(request, write=False)
        return Response(await call(service.thumbnail, face_id), media_type="image/jpeg",
                        headers={"Cache-Control": "no-store"})

    return app
