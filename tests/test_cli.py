"""The facenet-tf command on real LFW photos: two people with three photos each, one other person, an unreadable
file and a photo without a face. Commands run in-process through ``main([...])`` (the model loads once for the
module, kept by the CLI); one subprocess checks ``python -m facenet_tf.cli --help``."""

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from facenet_tf import cli
from facenet_tf.recognition import Gallery, load_faces

A, B, OTHER = "Aaron_Peirsol", "Amelie_Mauresmo", "Bill_Gates"


@pytest.fixture(scope="module")
def lfw_images(lfw_root):
    from facenet_tf import paths

    return paths.lfw_images_dir(lfw_root)


@pytest.fixture(scope="module")
def photos(tmp_path_factory, lfw_images, pretrained_weights_file):
    """photos/: A 1-3, B 1-3, OTHER 1, broken.jpg (not an image), blank.png (no face)."""
    import cv2

    root = tmp_path_factory.mktemp("photos")
    for person, numbers in ((A, (1, 2, 3)), (B, (1, 2, 3)), (OTHER, (1,))):
        for number in numbers:
            name = f"{person}_{number:04d}.jpg"
            shutil.copy(lfw_images / person / name, root / name)
    (root / "broken.jpg").write_bytes(b"this is not a jpeg")
    cv2.imwrite(str(root / "blank.png"), np.full((200, 200, 3), 127, np.uint8))
    return root


def run(capsys, *argv):
    status = cli.main([*argv, "--quiet"] if argv and argv[0] != "--help" else list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_help_in_a_subprocess():
    result = subprocess.run([sys.executable, "-m", "facenet_tf.cli", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    for command in ("embed", "verify", "cluster", "identify"):
        assert command in result.stdout


@pytest.mark.parametrize("argv, message", [
    ([], "required"),
    (["embed", "photos"], "--out"),
    (["frobnicate"], "invalid choice"),
])
def test_usage_errors_exit_2(capsys, argv, message):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_bad_arguments_exit_2(capsys, photos, tmp_path):
    status, _, err = run(capsys, "verify", str(tmp_path / "nope.jpg"), str(photos / f"{A}_0001.jpg"))
    assert status == 2 and "nope.jpg' does not exist" in err
    status, _, err = run(capsys, "cluster", str(photos), "--out", str(tmp_path / "o"), "--threshold", "7")
    assert status == 2 and "--threshold" in err
    status, _, err = run(capsys, "embed", str(photos), "--out", str(tmp_path / "f.npz"), "--model", "nn99")
    assert status == 2 and "nn99" in err


def test_missing_weights_say_where_to_get_them(capsys, photos, tmp_path):
    from facenet_tf import paths

    status, _, err = run(capsys, "verify", str(photos / f"{A}_0001.jpg"), str(photos / f"{A}_0002.jpg"),
                         "--weights", str(tmp_path / "facenet_keras.h5"))
    assert status == 1
    assert "weights are missing" in err and paths.WEIGHTS_HELP.split(".")[0] in err


def test_embed(capsys, photos, tmp_path):
    status, out, err = run(capsys, "embed", str(photos), "--out", str(tmp_path / "faces.npz"))
    assert status == 0, err
    embeddings, records, model = load_faces(tmp_path / "faces.npz")
    assert model == "inception_resnet_v1@msceleb+centred"
    sources = {r.source for r in records}
    assert sources == {str(photos / f"{p}_{n:04d}.jpg") for p, ns in ((A, (1, 2, 3)), (B, (1, 2, 3)), (OTHER, (1,)))
                       for n in ns}
    assert len(records) == len(embeddings) >= 7
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-4)
    assert all(r.box[2] > r.box[0] and r.box[3] > r.box[1] for r in records)
    assert f"-> {tmp_path / 'faces.npz'}" in out
    # the unreadable photo and the photo without a face are listed at the end
    assert "unreadable" in err and "broken.jpg" in err
    assert "no face found in 1 photo" in err and "blank.png" in err


def test_verify(capsys, photos):
    status, out, _ = run(capsys, "verify", str(photos / f"{A}_0001.jpg"), str(photos / f"{A}_0002.jpg"))
    assert status == 0 and out.startswith("same person: distance")
    status, out, _ = run(capsys, "verify", str(photos / f"{A}_0001.jpg"), str(photos / f"{B}_0001.jpg"))
    assert status == 0 and out.startswith("different people: distance") and f"threshold {cli.VERIFY_THRESHOLD}" in out
    distance = float(out.split("distance ")[1].split()[0])
    assert distance > cli.VERIFY_THRESHOLD


def test_verify_failures_exit_1(capsys, photos):
    status, _, err = run(capsys, "verify", str(photos / "broken.jpg"), str(photos / f"{A}_0001.jpg"))
    assert status == 1 and "cannot read photo" in err and "broken.jpg" in err
    status, _, err = run(capsys, "verify", str(photos / "blank.png"), str(photos / f"{A}_0001.jpg"))
    assert status == 1 and "no face found in" in err and "blank.png" in err


def main_face_groups(out_dir):
    """{photo file name: group} for the largest face of each photo, from clusters.csv."""
    best = {}
    with open(out_dir / "clusters.csv") as handle:
        for row in csv.DictReader(handle):
            area = (float(row["x2"]) - float(row["x1"])) * (float(row["y2"]) - float(row["y1"]))
            name = row["photo"].rsplit("/", 1)[-1]
            if area > best.get(name, (0, ""))[0]:
                best[name] = (area, row["group"])
    return {name: group for name, (_, group) in best.items()}


@pytest.mark.parametrize("algorithm", ["agglomerative", "chinese-whispers"])
def test_cluster(capsys, photos, tmp_path, algorithm):
    out_dir = tmp_path / "people"
    status, out, err = run(capsys, "cluster", str(photos), "--out", str(out_dir), "--algorithm", algorithm)
    assert status == 0, err
    groups = main_face_groups(out_dir)
    group_a = {groups[f"{A}_{n:04d}.jpg"] for n in (1, 2, 3)}
    group_b = {groups[f"{B}_{n:04d}.jpg"] for n in (1, 2, 3)}
    assert len(group_a) == 1 and len(group_b) == 1 and group_a != group_b
    assert next(iter(group_a)).startswith("person_") and next(iter(group_b)).startswith("person_")
    assert groups[f"{OTHER}_0001.jpg"] not in group_a | group_b
    for group in set(groups.values()):
        assert (out_dir / f"{group}.png").is_file()  # one contact sheet per group
        assert any((out_dir / group).glob("*.jpg"))   # and its photos: links to them
    for link in (out_dir / groups[f"{A}_0001.jpg"]).iterdir():
        assert link.is_symlink() and link.resolve().parent == photos.resolve()
    assert "2 group(s)" in out or "group(s) of >= 2" in out


def test_cluster_refuses_an_output_that_holds_the_input(capsys, photos, tmp_path):
    """Regression: --force with --out equal to the input folder deleted the user's person_alice.jpg and
    singles/friend.jpg."""
    from tests.reliability.conftest import assert_intact, snapshot

    mine = tmp_path / "mine"
    (mine / "singles").mkdir(parents=True)
    shutil.copy(photos / f"{A}_0001.jpg", mine / "person_alice.jpg")
    shutil.copy(photos / f"{A}_0002.jpg", mine / "singles" / "friend.jpg")
    (mine / "clusters.csv").write_text("my own spreadsheet")
    before = snapshot(mine)
    for out in (mine, tmp_path):  # the input folder itself, and a folder holding it
        for flag in ("--force", "--overwrite"):
            status, _, err = run(capsys, "cluster", str(mine), "--out", str(out), flag)
            assert status == 2 and "holds the input" in err, err
    assert_intact(before, mine)
    assert snapshot(mine) == before


def test_cluster_overwrite_replaces_only_an_earlier_output(capsys, photos, tmp_path):
    from facenet_tf.recognition.outputs import OUTPUT_MANIFEST, read_manifest
    from tests.reliability.conftest import assert_intact, snapshot

    out_dir = tmp_path / "people"
    two = [str(photos / f"{A}_0001.jpg"), str(photos / f"{A}_0002.jpg")]
    out_dir.mkdir()
    (out_dir / "mine.txt").write_text("keep me")
    status, _, err = run(capsys, "cluster", *two, "--out", str(out_dir))
    assert status == 1 and "is not empty" in err
    status, _, err = run(capsys, "cluster", *two, "--out", str(out_dir), "--overwrite")
    assert status == 1 and "did not write (mine.txt)" in err  # not ours: refused, nothing removed
    assert sorted(p.name for p in out_dir.iterdir()) == ["mine.txt"]
    (out_dir / "mine.txt").unlink()

    status, _, err = run(capsys, "cluster", *two, "--out", str(out_dir))  # an empty folder is fine
    assert status == 0, err
    manifest = read_manifest(out_dir)
    listed = set(manifest["files"]) | {OUTPUT_MANIFEST}
    assert {p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file()} == listed
    assert f"person_001/{A}_0001.jpg" in listed and "clusters.csv" in listed
    status, _, err = run(capsys, "cluster", *two, "--out", str(out_dir))
    assert status == 1 and "--overwrite" in err
    before = snapshot(out_dir)

    # a failing run (a missing input) removes nothing: the inputs are checked before anything is written
    status, _, err = run(capsys, "cluster", *two, str(tmp_path / "gone.jpg"), "--out", str(out_dir), "--overwrite")
    assert status == 2 and "gone.jpg' does not exist" in err
    assert snapshot(out_dir) == before
    status, _, err = run(capsys, "cluster", two[0], "--out", str(out_dir), "--overwrite")
    assert status == 0, err
    assert (out_dir / "singles" / f"{A}_0001.jpg").is_symlink() and not (out_dir / "person_001").exists()
    assert all(os.path.isfile(photo) for photo in two)  # replacing links never touches the photos
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
    assert_intact({}, out_dir)


def test_cluster_output_inside_the_photo_folder_is_passed_over(capsys, photos, tmp_path):
    """Regression: a second run with --out inside the input folder read the first run's crops back as photos."""
    folder = tmp_path / "album"
    folder.mkdir()
    for name in (f"{A}_0001.jpg", f"{A}_0002.jpg", f"{B}_0001.jpg"):
        shutil.copy(photos / name, folder / name)
    out_dir = folder / "people"
    status, out, err = run(capsys, "cluster", str(folder), "--out", str(out_dir))
    assert status == 0, err
    first = out.splitlines()[0].split(" face(s)")[0]
    status, out, err = run(capsys, "cluster", str(folder), "--out", str(out_dir), "--overwrite")
    assert status == 0, err
    assert out.splitlines()[0].split(" face(s)")[0] == first == "3"
    assert "written by an earlier facenet-tf run" in err and str(out_dir) in err


def test_outputs_are_never_overwritten_without_the_flag(capsys, photos, tmp_path):
    one = str(photos / f"{A}_0001.jpg")
    faces = tmp_path / "faces.npz"
    faces.write_bytes(b"precious")
    status, _, err = run(capsys, "embed", one, "--out", str(faces))
    assert status == 1 and "--out" in err and "--overwrite" in err and faces.read_bytes() == b"precious"
    status, _, err = run(capsys, "embed", one, "--out", str(tmp_path / "faces"))  # .npz is added: same file
    assert status == 1 and faces.read_bytes() == b"precious"
    status, _, err = run(capsys, "embed", one, "--out", str(faces), "--overwrite")
    assert status == 0, err
    assert len(load_faces(faces)[1]) == 1

    known = tmp_path / "known" / A
    known.mkdir(parents=True)
    shutil.copy(one, known)
    for flag, name in (("--csv", "names.csv"), ("--save-gallery", "g.npz")):
        target = tmp_path / name
        target.write_bytes(b"precious")
        status, _, err = run(capsys, "identify", "--gallery", str(known.parent), one, flag, str(target))
        assert status == 1 and flag in err and "exists" in err and target.read_bytes() == b"precious"
        assert "gallery:" not in err  # refused before any work
        status, _, err = run(capsys, "identify", "--gallery", str(known.parent), one, flag, str(target), "--overwrite")
        assert status == 0, err
        assert target.read_bytes() != b"precious"


def test_outputs_that_are_folders_are_refused_first(capsys, photos, tmp_path):
    one = str(photos / f"{A}_0001.jpg")
    (tmp_path / "f.npz").mkdir()
    (tmp_path / "c.csv").mkdir()
    status, _, err = run(capsys, "embed", one, "--out", str(tmp_path / "f.npz"), "--overwrite")
    assert status == 1 and "--out" in err and "is a folder" in err
    status, _, err = run(capsys, "identify", "--gallery", str(tmp_path), one, "--csv", str(tmp_path / "c.csv"))
    assert status == 1 and "--csv" in err and "is a folder" in err
    (tmp_path / "file").write_text("x")
    status, _, err = run(capsys, "cluster", one, "--out", str(tmp_path / "file"))
    assert status == 1 and "--out" in err and "not a folder" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("content, reason", [
    (b"", "not a readable gallery"),
    (None, "not a readable gallery"),   # truncated
    (b"PK\x03\x04garbage", "not a readable gallery"),
    ("wrong_dim", "not a valid gallery"),
    ("pickle", "pickled"),
])
def test_broken_gallery_files_are_one_line_errors(capsys, photos, tmp_path, content, reason):
    path = tmp_path / "g.npz"
    if content is None:
        Gallery(metadata={"model": "inception_resnet_v1/msceleb"}).save(path)
        good = Gallery(metadata={"model": "inception_resnet_v1/msceleb"})
        good.add(["x"] * 3, np.eye(3, 512, dtype=np.float32))
        good.save(path, overwrite=True)
        path.write_bytes(path.read_bytes()[:200])
    elif content == "wrong_dim":
        np.savez(path, embeddings=np.ones(5, np.float32), names=np.array(["a"]), sources=np.array([""]),
                 metadata=np.array("{}"), format=np.int64(1))
    elif content == "pickle":
        np.savez(path, embeddings=np.array([{"x": 1}], dtype=object), names=np.array(["a"]),
                 sources=np.array([""]), metadata=np.array("{}"), format=np.int64(1))
    else:
        path.write_bytes(content)
    status, _, err = run(capsys, "identify", "--gallery", str(path), str(photos / f"{A}_0001.jpg"))
    assert status == 1 and str(path) in err and reason in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_gallery_of_another_embedding_size_is_refused(capsys, photos, tmp_path):
    gallery = Gallery(metadata={"model": "inception_resnet_v1@msceleb+centred"})
    gallery.add(["Someone"], np.eye(1, 64, dtype=np.float32))
    gallery.save(tmp_path / "g.npz")
    status, _, err = run(capsys, "identify", "--gallery", str(tmp_path / "g.npz"), str(photos / f"{A}_0001.jpg"))
    assert status == 1 and "does not fit" in err and "dimension" in err


def test_a_gallery_of_plain_embeddings_needs_no_centre(capsys, photos, tmp_path):
    """A gallery of embeddings made without the reference mean (as before it was the default) is never compared
    with centred ones: refused, with the flag that reads it; --no-centre does."""
    gallery = Gallery(metadata={"model": "inception_resnet_v1/msceleb"})
    gallery.add(["Someone"], np.eye(1, 128, dtype=np.float32))
    gallery.save(tmp_path / "g.npz")
    probe = str(photos / f"{A}_0001.jpg")
    status, _, err = run(capsys, "identify", "--gallery", str(tmp_path / "g.npz"), probe)
    assert status == 1 and "not inception_resnet_v1@msceleb+centred" in err and "--no-centre" in err
    status, out, err = run(capsys, "identify", "--gallery", str(tmp_path / "g.npz"), probe, "--no-centre", "--json")
    assert status == 0, err
    assert json.loads(out)["model"] == "inception_resnet_v1@msceleb"


def test_a_person_named_unknown_is_refused(capsys, photos, tmp_path):
    known = tmp_path / "known"
    for person in ("unknown", A):
        (known / person).mkdir(parents=True)
        shutil.copy(photos / f"{A}_0001.jpg", known / person)
    status, _, err = run(capsys, "identify", "--gallery", str(known), str(photos / f"{B}_0001.jpg"))
    assert status == 1 and str(known / "unknown") in err and "rename it" in err
    gallery = Gallery(metadata={"model": "inception_resnet_v1/msceleb"})
    gallery.add(["unknown"], np.eye(1, 512, dtype=np.float32))
    gallery.save(tmp_path / "g.npz")
    status, _, err = run(capsys, "identify", "--gallery", str(tmp_path / "g.npz"), str(photos / f"{B}_0001.jpg"))
    assert status == 1 and "named 'unknown'" in err


def test_model_help_says_to_load_only_trusted_models():
    assert "Load only models you trust" in " ".join(cli.build_parser()._subparsers._group_actions[0]
                                                    .choices["verify"].format_help().split())


def test_identify(capsys, photos, lfw_images, tmp_path):
    known = tmp_path / "known"
    for person in (A, B):
        (known / person).mkdir(parents=True)
        for number in (1, 2):
            shutil.copy(photos / f"{person}_{number:04d}.jpg", known / person)
    probes = tmp_path / "probes"
    probes.mkdir()
    shutil.copy(lfw_images / A / f"{A}_0004.jpg", probes)
    shutil.copy(lfw_images / B / f"{B}_0004.jpg", probes)
    shutil.copy(photos / f"{OTHER}_0001.jpg", probes)

    def answers(out):
        result = {}
        for line in out.splitlines():
            if ".jpg  face" in line:
                name = line.split("/")[-1].split("  ")[0]
                result.setdefault(name, line.split(": ", 1)[1].split()[0])
        return result

    status, out, err = run(capsys, "identify", "--gallery", str(known), str(probes),
                           "--save-gallery", str(tmp_path / "known.npz"), "--csv", str(tmp_path / "names.csv"))
    assert status == 0, err
    expected = {f"{A}_0004.jpg": A, f"{B}_0004.jpg": B, f"{OTHER}_0001.jpg": "unknown"}
    assert {k: v for k, v in answers(out).items() if k in expected} == expected
    assert "gallery: 2 people, 4 face(s)" in err
    with open(tmp_path / "names.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["name"] for row in rows} >= {A, B, "unknown"}

    # the saved gallery gives the same answers without the known photos
    status, out, _ = run(capsys, "identify", "--gallery", str(tmp_path / "known.npz"), str(probes))
    assert status == 0 and {k: v for k, v in answers(out).items() if k in expected} == expected

    # a gallery built with another model is refused
    gallery = Gallery.load(tmp_path / "known.npz")
    gallery.metadata["model"] = "nn2/some_weights.keras"
    gallery.save(tmp_path / "other.npz")
    status, _, err = run(capsys, "identify", "--gallery", str(tmp_path / "other.npz"), str(probes))
    assert status == 1 and "built with model nn2/some_weights.keras" in err


def test_no_face_anywhere_exits_1(capsys, photos, tmp_path):
    status, _, err = run(capsys, "embed", str(photos / "blank.png"), "--out", str(tmp_path / "f.npz"))
    assert status == 1 and "no face found in any" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    status, _, err = run(capsys, "embed", str(empty), "--out", str(tmp_path / "f.npz"))
    assert status == 1 and "no photos" in err


def test_verify_exit_code_and_json(capsys, photos):
    same = (str(photos / f"{A}_0001.jpg"), str(photos / f"{A}_0002.jpg"))
    different = (str(photos / f"{A}_0001.jpg"), str(photos / f"{B}_0001.jpg"))
    assert run(capsys, "verify", *same, "--exit-code")[0] == 0
    assert run(capsys, "verify", *different, "--exit-code")[0] == 1
    assert run(capsys, "verify", *different)[0] == 0  # without --exit-code a clear answer is a success
    status, _, err = run(capsys, "verify", str(photos / "blank.png"), same[0], "--exit-code")
    assert status == 2 and "no face found" in err
    status, out, _ = run(capsys, "verify", *different, "--json")
    result = json.loads(out)
    assert status == 0 and result["same"] is False and result["threshold"] == cli.VERIFY_THRESHOLD
    assert result["distance"] > result["threshold"] and [f["photo"] for f in result["faces"]] == list(different)
    status, out, err = run(capsys, "verify", str(photos / "broken.jpg"), same[0], "--json")
    assert status == 1 and json.loads(out) == {"error": err.split("error: ", 1)[1].strip(), "status": 1}


def test_verify_pairs_embeds_each_photo_once(capsys, photos, tmp_path, monkeypatch):
    from facenet_tf.api import FaceNet

    (tmp_path / "pairs.csv").write_text("\n".join([
        "photo_a,photo_b",
        "# relative paths are relative to this file",
        f"photos/{A}_0001.jpg,photos/{A}_0002.jpg",
        f"photos/{A}_0001.jpg,{tmp_path / 'photos' / B}_0001.jpg",  # an absolute path
        "",
        f"photos/{A}_0002.jpg,photos/missing.jpg",
        f"photos/blank.png,photos/{B}_0002.jpg",
        f"photos/{B}_0001.jpg,photos/{B}_0002.jpg",
    ]) + "\n")
    (tmp_path / "photos").symlink_to(photos)
    seen = []
    original = FaceNet.find
    monkeypatch.setattr(FaceNet, "find", lambda self, p, *a, **k: (seen.append(list(p)), original(self, p, *a, **k))[1])
    status, out, err = run(capsys, "verify", "--pairs", str(tmp_path / "pairs.csv"), "--csv", str(tmp_path / "a.csv"))
    assert status == 0, err
    assert len(seen) == 1 and len(seen[0]) == len(set(seen[0])) == 5  # five files on disk, each embedded once
    lines = out.splitlines()
    assert lines[0].startswith("same ") and lines[1].startswith("different ") and lines[4].startswith("same ")
    assert "missing.jpg' does not exist" in lines[2] and "no face found" in lines[3]
    assert lines[5].startswith("5 pair(s): 2 same person, 1 different people, 2 could not be answered")
    with open(tmp_path / "a.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["line"] for r in rows] == ["3", "4", "6", "7", "8"] and [r["same"] for r in rows] == ["1", "0", "", "",
                                                                                                    "1"]
    status, out, _ = run(capsys, "verify", "--pairs", str(tmp_path / "pairs.csv"), "--json", "--exit-code")
    result = json.loads(out)
    assert status == 2 and (result["same"], result["different"], result["errors"]) == (2, 1, 2)
    assert [p["line"] for p in result["pairs"]] == [3, 4, 6, 7, 8] and "error" in result["pairs"][2]


@pytest.mark.parametrize("content, message", [
    (b"a.jpg,b.jpg,c.jpg\n", "pairs.csv:1: expected two photo paths"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "is not UTF-8 text"),
    (b"# nothing\n", "lists no pairs"),
])
def test_bad_pairs_files_are_one_line_usage_errors(capsys, tmp_path, content, message):
    (tmp_path / "pairs.csv").write_bytes(content)
    status, _, err = run(capsys, "verify", "--pairs", str(tmp_path / "pairs.csv"))
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_verify_arguments(capsys, photos, tmp_path):
    one = str(photos / f"{A}_0001.jpg")
    for argv, message in ((["verify", one], "two photos"), (["verify", one, one, "--pairs", "p.csv"], "not both"),
                          (["verify", one, one, "--csv", str(tmp_path / "x.csv")], "--csv goes with --pairs")):
        status, _, err = run(capsys, *argv)
        assert status == 2 and message in err


def test_every_command_speaks_json(capsys, photos, tmp_path):
    status, out, _ = run(capsys, "embed", str(photos), "--out", str(tmp_path / "f.npz"), "--json")
    result = json.loads(out)
    assert status == 0 and len(result["faces"]) >= 7 and result["out"] == str(tmp_path / "f.npz")
    assert [u["photo"] for u in result["unreadable"]] == [str(photos / "broken.jpg")]
    assert result["without_faces"] == [str(photos / "blank.png")]
    status, out, _ = run(capsys, "cluster", str(photos), "--out", str(tmp_path / "people"), "--json")
    result = json.loads(out)
    assert status == 0 and result["photos_placed"] == "link"
    assert sum(g["faces"] for g in result["groups"]) + result["singles"]["faces"] == len(result["faces"])
    assert {f"{A}_0001.jpg", f"{A}_0002.jpg", f"{A}_0003.jpg"} <= {
        os.path.basename(p) for g in result["groups"] for p in g["photos"]}
    known = tmp_path / "known"
    (known / A).mkdir(parents=True)
    shutil.copy(photos / f"{A}_0001.jpg", known / A)
    status, out, _ = run(capsys, "identify", "--gallery", str(known), str(photos / f"{A}_0002.jpg"), "--json")
    result = json.loads(out)
    assert status == 0 and result["faces"][0]["name"] == A and result["gallery"] == {"people": 1, "faces": 1}
    status, out, _ = run(capsys, "weights", "list", "--json")
    assert status == 0 and "msceleb" in {row["name"] for row in json.loads(out)["weights"]}
    status, out, _ = run(capsys, "embed", str(tmp_path / "nothing"), "--out", str(tmp_path / "g.npz"), "--json")
    assert status == 2 and "does not exist" in json.loads(out)["error"]


def test_cluster_copies_and_crops(capsys, photos, tmp_path):
    out_dir = tmp_path / "people"
    status, _, err = run(capsys, "cluster", str(photos), "--out", str(out_dir), "--copy", "--crops")
    assert status == 0, err
    group = main_face_groups(out_dir)[f"{A}_0001.jpg"]
    copy = out_dir / group / f"{A}_0001.jpg"
    assert not copy.is_symlink() and copy.read_bytes() == (photos / f"{A}_0001.jpg").read_bytes()
    assert any((out_dir / "crops" / group).glob(f"{A}_0001_face*.jpg"))


def test_calibrate_then_use_the_calibration(capsys, lfw_images, photos, tmp_path):
    known = tmp_path / "known"
    for person in (A, B, OTHER, "Ariel_Sharon"):
        (known / person).mkdir(parents=True)
        for number in (1, 2, 3):
            shutil.copy(lfw_images / person / f"{person}_{number:04d}.jpg", known / person)
    out = tmp_path / "cal.json"
    status, text, err = run(capsys, "calibrate", str(known), "--out", str(out), "--plot", str(tmp_path / "d.png"))
    assert status == 0, err
    result = json.loads(out.read_text())
    assert (result["faces"], result["people"], result["same_pairs"], result["different_pairs"]) == (12, 4, 12, 54)
    assert not result["resolved"] and "cannot resolve" in text  # 54 pairs cannot measure a rate of 1e-3
    assert result["model"] == "inception_resnet_v1@msceleb+centred" and (tmp_path / "d.png").is_file()
    status, _, err = run(capsys, "calibrate", str(known), "--out", str(out))
    assert status == 1 and "--overwrite" in err
    status, text, _ = run(capsys, "verify", str(photos / f"{A}_0001.jpg"), str(photos / f"{B}_0001.jpg"),
                          "--calibration", str(out), "--json")
    assert status == 0 and json.loads(text)["threshold"] == result["verify"]["threshold"]
    status, text, _ = run(capsys, "verify", str(photos / f"{A}_0001.jpg"), str(photos / f"{B}_0001.jpg"),
                          "--calibration", str(out), "--threshold", "0.5", "--json")
    assert json.loads(text)["threshold"] == 0.5
    (tmp_path / "bad.json").write_text("{}")
    status, _, err = run(capsys, "cluster", str(photos), "--out", str(tmp_path / "o"), "--calibration",
                         str(tmp_path / "bad.json"))
    assert status == 2 and "bad.json' is not a facenet-tf calibration" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_a_command_prints_no_start_up_lines(photos):
    """TensorFlow's native start-up lines (absl, oneDNN) and empty-stage oneDNN warnings stay off the terminal."""
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}  # as a user has it
    result = subprocess.run([sys.executable, "-m", "facenet_tf.cli", "verify", str(photos / f"{A}_0001.jpg"),
                             str(photos / f"{A}_0002.jpg")], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("same person") and result.stderr == ""
    # a photo without a face: MTCNN's later stages run on no candidate (TensorFlow warns about that, unasked)
    result = subprocess.run([sys.executable, "-m", "facenet_tf.cli", "verify", str(photos / "blank.png"),
                             str(photos / f"{A}_0002.jpg")], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 1 and result.stderr == f"facenet-tf: error: no face found in '{photos / 'blank.png'}'\n"
