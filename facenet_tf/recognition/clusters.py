"""The folder that ``facenet-tf cluster`` writes: the user's photos sorted by person.

    people/
      person_001/            the photos in which person 1 appears (links to them, or copies with photos="copy")
      person_001.png         contact sheet: every face of person 1, in rows of 12
      singles/, singles.png  photos whose faces belong to groups smaller than min_size
      crops/person_001/      the face crops (crops=True)
      clusters.csv           one row per face: group, photo, face number, box, its file here, its crop
      facenet-tf-manifest.json   every file written (facenet_tf.recognition.outputs)

A photo with several people appears under each of them. :func:`write_cluster_folder` writes into a folder that
the caller has made (the hidden sibling of ``facenet_tf.atomic.write_directory_atomically``), so a run that fails
or is killed leaves the previous output as it was; replacing an earlier output removes links, never the photos
they point to.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from facenet_tf.atomic import write_text_atomically
from facenet_tf.recognition.contact_sheet import write_contact_sheet
from facenet_tf.recognition.outputs import write_manifest
from facenet_tf.recognition.photos import PhotoFaces

#: Cluster folders and sheets are named person_001, person_002, ... (largest first); small groups go to "singles".
CLUSTER_PREFIX = "person_"
SINGLES = "singles"
CSV_FILE = "clusters.csv"
CROPS = "crops"
CSV_HEADER = ["group", "photo", "face", "x1", "y1", "x2", "y2", "file", "crop"]
#: How the photos of a group are placed in its folder.
PHOTO_MODES = ("link", "copy")
#: Faces per row of a contact sheet.
SHEET_COLUMNS = 12


def group_folders(labels: np.ndarray, min_size: int) -> tuple[dict[int, str], list[int], list[int]]:
    """``(folder of each label, labels of the groups, labels sent to singles)``; ``labels`` number clusters
    largest first, so person_001 is the largest group."""
    sizes = np.bincount(labels) if len(labels) else np.zeros(0, np.int64)
    groups = [c for c in range(len(sizes)) if sizes[c] >= min_size]
    singles = [c for c in range(len(sizes)) if 0 < sizes[c] < min_size]
    folder_of = {c: f"{CLUSTER_PREFIX}{n + 1:03d}" for n, c in enumerate(groups)}
    folder_of.update({c: SINGLES for c in singles})
    return folder_of, groups, singles


def _unique_name(name: str, used: set[str]) -> str:
    """``name``, or ``stem_2.ext``, ``stem_3.ext`` ... when a photo of that name is already in the folder."""
    stem, suffix = os.path.splitext(name)
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}_{n}{suffix}"
    used.add(candidate)
    return candidate


def _place_photo(source: str, target: Path, mode: str) -> None:
    if mode == "copy":
        shutil.copyfile(source, target)  # an OSError (full disk) names the file
        return
    try:
        os.symlink(os.path.abspath(source), target)
    except OSError as error:
        raise OSError(error.errno, f"cannot make a link here ({error.strerror}); pass --copy to copy the photos "
                                   "instead", str(target)) from None


def write_cluster_folder(folder: str | os.PathLike, found: PhotoFaces, labels: Sequence[int], min_size: int,
                         photos: str = "link", crops: bool = False) -> list[str]:
    """Sorts the photos of a clustering into ``folder`` (which must exist; layout in the module docstring):
    ``photos="link"`` makes symbolic links to the photos (absolute paths), ``"copy"`` copies them; ``crops`` also
    writes the face crops. Returns the files written, relative to ``folder`` (the manifest lists them)."""
    if photos not in PHOTO_MODES:
        raise ValueError(f"photos must be one of {PHOTO_MODES}; got {photos!r}")
    folder = Path(folder)
    labels = np.asarray(labels, np.int64)
    folder_of, _, _ = group_folders(labels, min_size)
    written: list[str] = []
    rows = []
    placed: dict[tuple[str, str], str] = {}  # (group, photo) -> its file in the group folder
    names: dict[str, set[str]] = {}
    crop_names: set[tuple[str, str]] = set()
    for row, (record, label) in enumerate(zip(found.records, labels)):
        group = folder_of[int(label)]
        if (group, record.source) not in placed:
            (folder / group).mkdir(exist_ok=True)
            relative = f"{group}/{_unique_name(Path(record.source).name, names.setdefault(group, set()))}"
            _place_photo(record.source, folder / relative, photos)
            placed[group, record.source] = relative
            written.append(relative)
        crop = ""
        if crops:
            name = f"{Path(record.source).stem}_face{record.face}"
            while (group, name) in crop_names:  # two photos with one file name in different folders
                name += "_"
            crop_names.add((group, name))
            (folder / CROPS / group).mkdir(parents=True, exist_ok=True)
            crop = f"{CROPS}/{group}/{name}.jpg"
            encoded, data = cv2.imencode(".jpg", cv2.cvtColor(found.crops[row], cv2.COLOR_RGB2BGR))
            if not encoded:
                raise ValueError(f"could not encode the face crop '{crop}'")
            (folder / crop).write_bytes(data.tobytes())  # an OSError (full disk) names the file
            written.append(crop)
        rows.append([group, record.source, record.face, *(f"{v:.1f}" for v in record.box),
                     placed[group, record.source], crop])
    for group in sorted(set(folder_of.values())):
        members = [row for row in range(len(labels)) if folder_of[int(labels[row])] == group]
        sheet_rows = [found.crops[members[i:i + SHEET_COLUMNS]] for i in range(0, len(members), SHEET_COLUMNS)]
        sheet_labels = [f"{group}: {len(members)} faces"] + [""] * (len(sheet_rows) - 1)
        write_contact_sheet(folder / f"{group}.png", sheet_rows, sheet_labels, max_per_row=SHEET_COLUMNS)
        written.append(f"{group}.png")
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(CSV_HEADER)
    writer.writerows(sorted(rows, key=lambda r: (r[0], r[1], r[2])))
    write_text_atomically(folder / CSV_FILE, text.getvalue())
    written.append(CSV_FILE)
    write_manifest(folder, "cluster", written)
    return written
