"""The photo pairs of a batch ``verify`` (``facenet-tf verify --pairs pairs.csv``).

A CSV file with two columns, the two photos of a pair; blank lines and lines starting with ``#`` are passed over.
The first row is taken as a header when neither of its cells names an existing file or has an image suffix
(``photo_a,photo_b``). Relative paths are relative to the CSV file's folder, so a pairs file travels with its
photos. A row that is not two paths is a one-line error naming the file and the line.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path

from facenet_tf.data.images import IMAGE_SUFFIXES


class PairListError(ValueError):
    """A pairs file that cannot be read; the message names the file (and the line)."""


@dataclasses.dataclass(frozen=True)
class PhotoPair:
    line: int
    a: Path
    b: Path


def _looks_like_a_photo(cell: str, folder: Path) -> bool:
    return Path(cell).suffix.lower() in IMAGE_SUFFIXES or (folder / cell).exists()


def read_pair_list(path: str | os.PathLike) -> list[PhotoPair]:
    """The pairs of ``path`` (see the module docstring), in file order."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise PairListError(f"pairs file '{path}' does not exist") from None
    except IsADirectoryError:
        raise PairListError(f"pairs file '{path}' is a folder; expected a CSV file of photo pairs") from None
    except UnicodeDecodeError:
        raise PairListError(f"pairs file '{path}' is not UTF-8 text; expected a CSV file of photo pairs") from None
    except OSError as error:
        raise PairListError(f"cannot read pairs file '{path}': {error.strerror}") from None
    if "\x00" in text:
        raise PairListError(f"pairs file '{path}' is binary; expected a CSV file of photo pairs")
    folder = path.parent
    pairs: list[PhotoPair] = []
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if len(cells) != 2 or not all(cells):
            raise PairListError(f"{path}:{number}: expected two photo paths separated by a comma; got "
                                f"{len([c for c in cells if c])} field(s)")
        if not pairs and not any(_looks_like_a_photo(cell, folder) for cell in cells):
            if number == _first_row(text):
                continue  # the header
        a, b = (Path(cell) if Path(cell).is_absolute() else folder / cell for cell in cells)
        pairs.append(PhotoPair(number, a, b))
    if not pairs:
        raise PairListError(f"pairs file '{path}' lists no pairs (expected lines 'photo_a,photo_b')")
    return pairs


def _first_row(text: str) -> int:
    """The line number of the first row that is neither blank nor a comment."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.strip().startswith("#"):
            return number
    return 0
