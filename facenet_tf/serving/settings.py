"""The settings of ``facenet-tf serve`` and their defaults (no imports beyond the standard library: the command
line reads them to build its help)."""

from __future__ import annotations

import dataclasses

#: Environment variable read for the token when ``--token`` is not given.
TOKEN_ENV = "FACENET_TF_SERVE_TOKEN"
URI_FORMS = "sqlite:///relative/path.db, sqlite:////absolute/path.db or postgresql://user@host:port/dbname"
URI_HELP = f"a gallery is a URI: {URI_FORMS}"


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may hold. Uploads larger than ``max_upload_bytes`` are refused before they are read
    whole (413); images over ``max_side`` pixels on a side or ``max_pixels`` in all are refused from their header,
    before decoding (413); more than ``max_images`` images in one request: 400."""

    max_upload_bytes: int = 10 * 2 ** 20
    max_side: int = 8192
    max_pixels: int = 40_000_000
    max_images: int = 16

    def check(self) -> "Limits":
        for field in dataclasses.fields(self):
            if getattr(self, field.name) < 1:
                raise ValueError(f"{field.name} must be >= 1; got {getattr(self, field.name)}")
        return self


@dataclasses.dataclass(frozen=True)
class Batching:
    """Micro-batching of the embedding model (``max_batch`` faces per call, ``max_wait`` seconds of waiting for
    more) and of MTCNN (``detect_batch`` images per call); ``max_queue`` requests in the service at once (more:
    503)."""

    max_batch: int = 32
    max_wait: float = 0.005
    detect_batch: int = 16  # as find_faces; see docs/serving.md, results/serve_cpu*.md
    max_queue: int = 64


@dataclasses.dataclass(frozen=True)
class Access:
    """``token``: the bearer token that enrol and remove need (None: the gallery cannot be changed over HTTP).
    ``read_token``: reads (everything but ``/health`` and the page) need it too."""

    token: str | None = None
    read_token: bool = False
