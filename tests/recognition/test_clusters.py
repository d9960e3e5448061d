"""The folder that ``cluster`` writes, from given faces and labels (no model): the photos sorted by person."""

import csv
import os

import cv2
import numpy as np
import pytest

from facenet_tf.recognition import FaceRecord, PhotoFaces
from facenet_tf.recognition.clusters import SHEET_COLUMNS, write_cluster_folder
from facenet_tf.recognition.outputs import read_manifest


def album(tmp_path, faces_per_photo):
    """Photos (one per entry, in two folders so that names collide) with the given numbers of faces."""
    records, crops = [], []
    for n, count in enumerate(faces_per_photo):
        folder = tmp_path / "photos" / ("a" if n % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"img{n // 2}.jpg"
        cv2.imwrite(str(path), np.full((40, 60, 3), (10 * n) % 256, np.uint8))
        for face in range(count):
            records.append(FaceRecord(str(path), face, (1.0 + face, 2.0, 30.0, 35.0), 0.99))
            crops.append(np.full((16, 16, 3), (5 * len(crops)) % 256, np.uint8))
    return PhotoFaces(np.stack(crops), records, sorted({r.source for r in records}), [], [])


def rows(folder):
    with open(folder / "clusters.csv") as handle:
        return list(csv.DictReader(handle))


def test_photos_are_linked_under_each_person_they_show(tmp_path):
    found = album(tmp_path, [1, 1, 2, 1])  # photo 2 shows two people
    labels = [0, 0, 0, 1, 2]               # its faces: group 0 and group 1; group 2 is a single
    out = tmp_path / "people"
    out.mkdir()
    written = write_cluster_folder(out, found, labels, min_size=1)
    first, second, third = (r.source for r in (found.records[0], found.records[1], found.records[4]))
    two_people = found.records[2].source
    assert os.path.samefile(out / "person_001" / os.path.basename(first), first)
    # img0.jpg of folder b and img0.jpg of folder a: one name, two photos
    assert os.path.basename(first) == os.path.basename(second)
    stem = os.path.splitext(os.path.basename(second))[0]
    assert os.path.samefile(out / "person_001" / f"{stem}_2.jpg", second)
    for group in ("person_001", "person_002"):  # a photo with two people is under both
        assert any(os.path.samefile(p, two_people) for p in (out / group).iterdir())
    assert all((out / group / name).is_symlink() for group in ("person_001", "person_002")
               for name in os.listdir(out / group))
    assert os.path.samefile(out / "person_003" / os.path.basename(third), third)
    assert not (out / "crops").exists()
    listed = rows(out)
    assert [r["group"] for r in listed] == ["person_001"] * 3 + ["person_002", "person_003"]
    assert all((out / r["file"]).exists() and r["crop"] == "" for r in listed)
    assert set(read_manifest(out)["files"]) == set(written)


def test_copies_and_crops(tmp_path):
    found = album(tmp_path, [1, 1, 1])
    out = tmp_path / "people"
    out.mkdir()
    write_cluster_folder(out, found, [0, 0, 1], min_size=2, photos="copy", crops=True)
    copied = sorted((out / "person_001").iterdir())
    assert len(copied) == 2 and not any(p.is_symlink() for p in copied)
    assert sorted(p.read_bytes() for p in copied) == sorted(open(r.source, "rb").read() for r in found.records[:2])
    assert (out / "singles").is_dir() and len(list((out / "singles").iterdir())) == 1
    listed = rows(out)
    assert all(r["crop"].startswith(f"crops/{r['group']}/") and (out / r["crop"]).is_file() for r in listed)
    with pytest.raises(ValueError, match="photos must be one of"):
        write_cluster_folder(out, found, [0, 0, 1], min_size=2, photos="move")


def test_contact_sheets_show_every_face_in_rows(tmp_path):
    count = 2 * SHEET_COLUMNS + 3
    found = album(tmp_path, [1] * count)
    out = tmp_path / "people"
    out.mkdir()
    write_cluster_folder(out, found, [0] * count, min_size=2)
    one_row = tmp_path / "one"
    one_row.mkdir()
    write_cluster_folder(one_row, album(tmp_path / "x", [1, 1]), [0, 0], min_size=2)
    sheet, small = cv2.imread(str(out / "person_001.png")), cv2.imread(str(one_row / "person_001.png"))
    assert sheet.shape[0] > 2.5 * small.shape[0]  # three rows of faces, not the first 12 only
