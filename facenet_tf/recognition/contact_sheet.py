"""Contact sheets: face thumbnails in a grid, one row per group (a cluster, an identity), written as a PNG.

Pure numpy + OpenCV (no matplotlib), so a sheet of hundreds of faces is written in milliseconds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

_BACKGROUND = 255
_TEXT = (40, 40, 40)


def contact_sheet(rows: Sequence[Sequence[np.ndarray]], labels: Sequence[str] | None = None, thumb_size: int = 80,
                  max_per_row: int = 12, gap: int = 4, label_width: int = 150) -> np.ndarray:
    """A uint8 RGB image: row ``i`` shows up to ``max_per_row`` faces of ``rows[i]`` (uint8 RGB ``H×W×3`` arrays,
    any size, resized to ``thumb_size`` squares), after ``labels[i]`` in a left column of ``label_width`` pixels
    (no column without labels). A row with more faces than fit ends with "+N" in its label."""
    if not rows:
        raise ValueError("a contact sheet needs at least one row")
    if labels is not None and len(labels) != len(rows):
        raise ValueError(f"{len(labels)} labels for {len(rows)} rows")
    if thumb_size < 8 or max_per_row < 1 or gap < 0:
        raise ValueError(f"thumb_size >= 8, max_per_row >= 1 and gap >= 0 needed; got {thumb_size}, "
                         f"{max_per_row}, {gap}")
    left = label_width if labels is not None else 0
    columns = min(max_per_row, max(len(row) for row in rows))
    width = left + gap + max(columns, 1) * (thumb_size + gap)
    height = gap + len(rows) * (thumb_size + gap)
    sheet = np.full((height, width, 3), _BACKGROUND, np.uint8)
    for r, faces in enumerate(rows):
        top = gap + r * (thumb_size + gap)
        for c, face in enumerate(list(faces)[:columns]):
            face = np.asarray(face)
            if face.ndim != 3 or face.shape[2] != 3:
                raise ValueError(f"row {r}, face {c}: expected an H×W×3 image, got shape {face.shape}")
            x = left + gap + c * (thumb_size + gap)
            sheet[top:top + thumb_size, x:x + thumb_size] = cv2.resize(
                face.astype(np.uint8), (thumb_size, thumb_size), interpolation=cv2.INTER_AREA)
        if labels is not None:
            text = str(labels[r])
            if len(faces) > columns:
                text += f" (+{len(faces) - columns})"
            _put_text(sheet, text, (gap, top), label_width - gap, thumb_size)
    return sheet


def _put_text(sheet: np.ndarray, text: str, origin: tuple[int, int], width: int, height: int) -> None:
    """Write ``text`` in the ``width × height`` box at ``origin``, wrapped on spaces/underscores, shrunk to fit."""
    font, scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1
    words = text.replace("_", " ").split(" ")
    lines: list[str] = []
    for word in words:
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and cv2.getTextSize(candidate, font, scale, thickness)[0][0] <= width:
            lines[-1] = candidate
        else:
            lines.append(word)
    line_height = cv2.getTextSize("Ag", font, scale, thickness)[0][1] + 6
    x, y = origin
    for number, line in enumerate(lines[: max(1, height // line_height)]):
        cv2.putText(sheet, line, (x, y + (number + 1) * line_height), font, scale, _TEXT, thickness, cv2.LINE_AA)


def write_contact_sheet(path: str | os.PathLike, rows: Sequence[Sequence[np.ndarray]],
                        labels: Sequence[str] | None = None, **options) -> Path:
    """:func:`contact_sheet` written as a PNG (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = contact_sheet(rows, labels, **options)
    encoded, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not encoded:
        raise ValueError(f"could not encode the contact sheet '{path}'")
    path.write_bytes(data.tobytes())  # an OSError (full disk) names the file
    return path
