"""``serve``: a :class:`facenet_tf.serving.service.FaceService` on uvicorn (one process, one event loop; model
calls in the batchers' threads, decoding and detection in the worker threads)."""

from __future__ import annotations

import ipaddress
import signal
import sys
import threading

from facenet_tf.serving.app import create_app
from facenet_tf.serving.service import FaceService
from facenet_tf.serving.settings import Access, Batching, Limits
from facenet_tf.serving.store import open_store

SERVE_HELP = "serving needs FastAPI and uvicorn: pip install 'facenet-tf[serve]'"


def check_installed() -> None:
    """ImportError with the install line when the ``serve`` extra is missing."""
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        raise ImportError(f"{SERVE_HELP} ({error})") from None


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Stopped(Exception):
    """SIGINT or SIGTERM, raised once uvicorn has finished its graceful shutdown."""


def _raise_stopped(signum, frame) -> None:
    raise _Stopped(signum)


def serve(net, gallery: str, host: str = "127.0.0.1", port: int = 8000, access: Access = Access(),
          limits: Limits = Limits(), batching: Batching = Batching(), verify_threshold: float | None = None,
          identify_threshold: float | None = None, log_level: str = "warning") -> None:
    """Serve ``net`` with the gallery at URI ``gallery`` until interrupted (SIGINT/SIGTERM: graceful stop)."""
    import uvicorn

    store = open_store(gallery)
    service = FaceService(net, store, verify_threshold, identify_threshold, limits, batching)
    try:
        app = create_app(service, access)
        # connections beyond the service's own queue get uvicorn's 503 (a bound on sockets, not only requests)
        config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                                limit_concurrency=2 * batching.max_queue + 16, timeout_graceful_shutdown=5,
                                server_header=False)
        server = uvicorn.Server(config)
        writes = "need the token" if access.token else "are off (no --token)"
        reads = "need the token" if access.read_token else "are open"
        print(f"facenet-tf serve: model {net.model_name}, gallery {store.display_uri}; gallery changes {writes}, "
              f"reads {reads}; http://{host}:{port}/ (API docs: /docs)", file=sys.stderr, flush=True)
        if not is_loopback(host) and not access.read_token:
            print(f"warning: reads are open to anyone who can reach {host}; pass --read-token to require the token",
                  file=sys.stderr, flush=True)
        # uvicorn stops gracefully on SIGINT/SIGTERM, then raises the signal again: here that ends run() with
        # _Stopped instead of ending the process, so the batchers and the database are closed and the exit is clean
        main = threading.current_thread() is threading.main_thread()
        previous = {sig: signal.signal(sig, _raise_stopped) for sig in (signal.SIGINT, signal.SIGTERM)} if main else {}
        try:
            server.run()
        except _Stopped:
            pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        print("facenet-tf serve: stopped", file=sys.stderr, flush=True)
    finally:
        service.close()
        store.close()
