"""The folder that ``facenet-tf cluster`` writes: one folder of face crops and one contact sheet per person,
``clusters.csv`` and the manifest (``facenet_tf.recognition.outputs``) listing every file written.

:func:`write_cluster_folder` writes into a folder that the caller has made (the hidden sibling of
``facenet_tf.atomic.write_directory_atomically``), so a run that fails or is killed leaves the previous output as
it was.
"""

from __future__ import annotations

import csv
import io
import os
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
CSV_HEADER = ["group", "photo", "face", "x1", "y1", "x2", "y2", "crop"]


def group_folders(labels: np.ndarray, min_size: int) -> tuple[dict[int, str], list[int], list[int]]:
    """``(folder of each label, labels of the groups, labels sent to singles)``; ``labels`` number clusters
    largest first, so person_001 is the largest group."""
    sizes = np.bincount(labels) if len(labels) else np.zeros(0, np.int64)
    groups = [c for c in range(len(sizes)) if sizes[c] >= min_size]
    singles = [c for c in range(len(sizes)) if 0 < sizes[c] < min_size]
    folder_of = {c: f"{CLUSTER_PREFIX}{n + 1:03d}" for n, c in enumerate(groups)}
    folder_of.update({c: SINGLES for c in singles})
    return folder_of, groups, singles


def write_cluster_folder(folder: str | os.PathLike, found: PhotoFaces, labels: Sequence[int],
                         min_size: int) -> list[str]:
    """Writes the crops, contact sheets, ``clusters.csv`` and the manifest of a clustering into ``folder`` (which
    must exist); returns the files written, relative to ``folder``."""
    folder = Path(folder)
    labels = np.asarray(labels, np.int64)
    folder_of, _, _ = group_folders(labels, min_size)
    written: list[str] = []
    rows = []
    used_names: set[tuple[str, str]] = set()
    for row, (record, label) in enumerate(zip(found.records, labels)):
        group = folder_of[int(label)]
        name = f"{Path(record.source).stem}_face{record.face}"
        while (group, name) in used_names:  # two photos with one file name in different folders
            name += "_"
        used_names.add((group, name))
        (folder / group).mkdir(exist_ok=True)
        relative = f"{group}/{name}.jpg"
        encoded, data = cv2.imencode(".jpg", cv2.cvtColor(found.crops[row], cv2.COLOR_RGB2BGR))
        if not encoded:
            raise ValueError(f"could not encode the face crop '{relative}'")
        (folder / relative).write_bytes(data.tobytes())  # an OSError (full disk) names the file
        written.append(relative)
        rows.append([group, record.source, record.face, *(f"{v:.1f}" for v in record.box), relative])
    for group in sorted(set(folder_of.values())):
        members = [row for row in range(len(labels)) if folder_of[int(labels[row])] == group]
        write_contact_sheet(folder / f"{group}.png", [found.crops[members]], [f"{group}: {len(members)} faces"],
                            max_per_row=12)
        written.append(f"{group}.png")
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(CSV_HEADER)
    writer.writerows(sorted(rows, key=lambda r: (r[0], r[1], r[2])))
    write_text_atomically(folder / CSV_FILE, text.getvalue())
    written.append(CSV_FILE)
    write_manifest(folder, "cluster", written)
    return written
