"""Labeled Faces in the Wild: the image tree, the protocol (pairs) files, and an honest training split.

The paper (section "Evaluation", LFW) follows the protocol "unrestricted, labeled outside data": thresholds are
chosen on nine of the ten View 2 folds and the tenth is classified; View 1 (pairsDevTrain / pairsDevTest) is for
development. This module only reads the files; the metrics are in ``facenet_tf.evaluation.verification``.

File formats (see ``shared/data/README.md``):

* ``pairs.txt`` (View 2): header ``10<TAB>300``, then for each of the 10 folds 300 same-person lines
  ``name<TAB>n1<TAB>n2`` followed by 300 different-person lines ``name1<TAB>n1<TAB>name2<TAB>n2``.
* ``pairsDevTrain.txt`` / ``pairsDevTest.txt`` (View 1): header ``1100`` / ``500``, i.e. a single "fold" of N
  same-person lines followed by N different-person lines.

Image ``n`` of person ``Name`` is ``<images_dir>/<Name>/<Name>_<NNNN>.jpg`` (4-digit, zero-padded, from 0001).

Pure Python + numpy: no TensorFlow import here.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facenet_tf import paths
from facenet_tf.data import images

#: Protocol file of each named LFW split, relative to the LFW root.
PAIRS_FILES: dict[str, str] = {
    "view1_train": "pairsDevTrain.txt",
    "view1_test": "pairsDevTest.txt",
    "view2": "pairs.txt",
}

#: File suffixes that ``list_identities`` treats as images (compared case-insensitively): those of the reader.
IMAGE_SUFFIXES = images.IMAGE_SUFFIXES

_SAME_FORM = "a same-person line 'name<TAB>n1<TAB>n2' (3 fields)"
_DIFFERENT_FORM = "a different-person line 'name1<TAB>n1<TAB>name2<TAB>n2' (4 fields)"


class PairsError(ValueError):
    """LFW pairs that cannot be used: an unknown name, a missing pairs file, a fold selection the file lacks."""


class PairsFileError(PairsError):
    """A malformed LFW pairs file (bad fields, or not UTF-8 text at all); the message names the file, the 1-based
    line number and what was expected."""

    def __init__(self, path: str | os.PathLike, line_number: int, message: str) -> None:
        self.path = Path(path)
        self.line_number = line_number
        super().__init__(f"{self.path}, line {line_number}: {message}")


def image_path(images_dir: str | os.PathLike, name: str, number: int) -> Path:
    """Path of image ``number`` (1-based) of person ``name``: ``<images_dir>/<name>/<name>_<NNNN>.jpg``."""
    if number < 1:
        raise ValueError(f"LFW image numbers start at 1; got {number} for {name!r}")
    return Path(images_dir) / name / f"{name}_{number:04d}.jpg"


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class PairsFile:
    """One parsed LFW protocol file.

    Attributes are aligned per pair (index ``i`` is the i-th pair line of the file, in file order):

    * ``names_a``/``names_b``, ``numbers_a``/``numbers_b``: the identities and 1-based image numbers;
    * ``paths_a``/``paths_b``: the resolved image paths;
    * ``is_same``: bool array, True for a same-person pair;
    * ``folds``: int array, the 0-based fold of each pair (all 0 for the single-fold View 1 files);
    * ``line_numbers``: the 1-based line of each pair in the file (the header is line 1).

    ``identities`` is the set of every person named in any pair (same or different); ``sha256`` is the hex digest
    of the bytes that were parsed, so a report can say exactly which protocol it ran.
    """

    path: Path
    images_dir: Path
    n_folds: int
    pairs_per_fold: int
    names_a: tuple[str, ...]
    numbers_a: np.ndarray
    names_b: tuple[str, ...]
    numbers_b: np.ndarray
    paths_a: tuple[Path, ...]
    paths_b: tuple[Path, ...]
    is_same: np.ndarray
    folds: np.ndarray
    line_numbers: np.ndarray
    identities: frozenset[str] = field(repr=False)
    sha256: str = ""

    def __len__(self) -> int:
        return len(self.paths_a)

    @property
    def n_same(self) -> int:
        """Number of same-person pairs."""
        return int(np.count_nonzero(self.is_same))

    @property
    def n_different(self) -> int:
        """Number of different-person pairs."""
        return len(self) - self.n_same

    def fold_identities(self, fold: int) -> frozenset[str]:
        """Every person named in the pairs of ``fold`` (0-based)."""
        if not 0 <= fold < self.n_folds:
            raise ValueError(f"fold must be in [0, {self.n_folds}), got {fold}")
        selected = np.flatnonzero(self.folds == fold)
        return frozenset(self.names_a[i] for i in selected) | frozenset(self.names_b[i] for i in selected)

    def select_folds(self, folds: Iterable[int]) -> "PairsFile":
        """The pairs of the given 0-based ``folds`` only (fold numbers kept), e.g. to exclude half of View 2."""
        folds = sorted(set(int(f) for f in folds))
        bad = [f for f in folds if not 0 <= f < self.n_folds]
        if bad or not folds:
            raise PairsError(f"'{self.path}' has folds 1..{self.n_folds}; cannot select {[f + 1 for f in bad]}")
        keep = np.flatnonzero(np.isin(self.folds, folds))
        names_a = tuple(self.names_a[i] for i in keep)
        names_b = tuple(self.names_b[i] for i in keep)
        return PairsFile(
            path=self.path, images_dir=self.images_dir, n_folds=self.n_folds, pairs_per_fold=self.pairs_per_fold,
            names_a=names_a, numbers_a=self.numbers_a[keep], names_b=names_b, numbers_b=self.numbers_b[keep],
            paths_a=tuple(self.paths_a[i] for i in keep), paths_b=tuple(self.paths_b[i] for i in keep),
            is_same=self.is_same[keep], folds=self.folds[keep], line_numbers=self.line_numbers[keep],
            identities=frozenset(names_a) | frozenset(names_b), sha256=self.sha256)


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class UniqueImages:
    """The distinct images of a pairs file, so each is embedded once.

    ``paths`` is sorted (deterministic, independent of pair order); ``index_a[i]`` / ``index_b[i]`` are the
    positions in ``paths`` of the two images of pair ``i``, so ``embeddings[index_a]`` lines up with the pairs.
    """

    paths: tuple[Path, ...]
    index_a: np.ndarray
    index_b: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)


def _parse_int(text: str, path: Path, line_number: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise PairsFileError(path, line_number, f"expected an integer {what}, got {text!r}") from None
    return value


def _parse_header(line: str, path: Path) -> tuple[int, int]:
    fields = line.split()
    expected = (
        "a header 'n_folds<TAB>pairs_per_fold' (View 2, e.g. '10\\t300') or 'pairs_per_fold' (View 1, e.g. '1100')"
    )
    if len(fields) not in (1, 2):
        raise PairsFileError(path, 1, f"expected {expected}, got {len(fields)} fields: {line.rstrip()!r}")
    numbers = [_parse_int(text, path, 1, "in the header") for text in fields]
    if any(number < 1 for number in numbers):
        raise PairsFileError(path, 1, f"expected positive integers in the header, got {line.rstrip()!r}")
    return (1, numbers[0]) if len(numbers) == 1 else (numbers[0], numbers[1])


def _decode(data: bytes, path: Path) -> str:
    """The text of a pairs file; a file that is not UTF-8 (an image, an archive, Latin-1) is a PairsFileError
    naming the line of the first offending byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line_number = data.count(b"\n", 0, error.start) + 1
        raise PairsFileError(
            path, line_number, f"not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}); "
            "expected a tab-separated text pairs file such as LFW's pairs.txt"
        ) from None


def parse_pairs(
    path: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    check_exists: bool = True,
) -> PairsFile:
    """Parse an LFW pairs file (``pairs.txt``, ``pairsDevTrain.txt`` or ``pairsDevTest.txt``).

    Args:
        path: the pairs file.
        images_dir: the ``<Name>/<Name>_NNNN.jpg`` tree the paths resolve into; by default the image tree inside
            the file's directory (``paths.lfw_images_dir(path.parent)``: ``lfw-deepfunneled/`` when present).
        check_exists: raise ``FileNotFoundError`` naming the first missing image (and the line that refers to it).

    Raises:
        PairsFileError (a ValueError): a file that is not UTF-8 text, a malformed header or pair line — wrong
            number of fields for its position (same-person lines come first in every fold), a non-integer image
            number, a number < 1, or fewer or more pair lines than the header announces. The message names the
            file and the 1-based line.
        FileNotFoundError: the file, or (with ``check_exists``) an image, does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LFW pairs file '{path}' does not exist. {paths.LFW_HELP}")
    images_dir = Path(images_dir) if images_dir is not None else paths.lfw_images_dir(path.parent)
    data = path.read_bytes()
    lines = _decode(data, path).splitlines()
    while lines and not lines[-1].strip():  # a trailing blank line is not a pair
        lines.pop()
    if not lines:
        raise PairsFileError(path, 1, "the file is empty; expected a header line")
    n_folds, per_fold = _parse_header(lines[0], path)
    n_expected = n_folds * 2 * per_fold
    n_found = len(lines) - 1
    if n_found < n_expected:
        raise PairsFileError(
            path,
            len(lines),
            f"the header announces {n_folds} fold(s) x (2 x {per_fold}) = {n_expected} pair lines, "
            f"but the file ends after {n_found}",
        )
    if n_found > n_expected:
        raise PairsFileError(
            path,
            n_expected + 2,
            f"the header announces {n_folds} fold(s) x (2 x {per_fold}) = {n_expected} pair lines; "
            f"this line is one too many (the file has {n_found})",
        )

    names_a: list[str] = []
    names_b: list[str] = []
    numbers_a = np.empty(n_expected, dtype=np.int64)
    numbers_b = np.empty(n_expected, dtype=np.int64)
    is_same = np.empty(n_expected, dtype=bool)
    for i, line in enumerate(lines[1:]):
        line_number = i + 2
        fold, position = divmod(i, 2 * per_fold)
        same = position < per_fold
        fields = line.split()
        if len(fields) != (3 if same else 4):
            kind = "same-person" if same else "different-person"
            index_in_block = position + 1 if same else position - per_fold + 1
            raise PairsFileError(
                path,
                line_number,
                f"expected {_SAME_FORM if same else _DIFFERENT_FORM} ({kind} pair {index_in_block} of "
                f"{per_fold} in fold {fold + 1}), got {len(fields)} fields: {line!r}",
            )
        if same:
            name_a, text_a, text_b = fields
            name_b = name_a
        else:
            name_a, text_a, name_b, text_b = fields
        number_a = _parse_int(text_a, path, line_number, "image number")
        number_b = _parse_int(text_b, path, line_number, "image number")
        if number_a < 1 or number_b < 1:
            raise PairsFileError(
                path, line_number, f"expected image numbers >= 1 (LFW numbers from 0001), got {line!r}"
            )
        names_a.append(name_a)
        names_b.append(name_b)
        numbers_a[i], numbers_b[i] = number_a, number_b
        is_same[i] = same

    paths_a = tuple(image_path(images_dir, n, k) for n, k in zip(names_a, numbers_a.tolist()))
    paths_b = tuple(image_path(images_dir, n, k) for n, k in zip(names_b, numbers_b.tolist()))
    pairs = PairsFile(
        path=path,
        images_dir=images_dir,
        n_folds=n_folds,
        pairs_per_fold=per_fold,
        names_a=tuple(names_a),
        numbers_a=numbers_a,
        names_b=tuple(names_b),
        numbers_b=numbers_b,
        paths_a=paths_a,
        paths_b=paths_b,
        is_same=is_same,
        folds=np.repeat(np.arange(n_folds, dtype=np.int64), 2 * per_fold),
        line_numbers=np.arange(2, n_expected + 2, dtype=np.int64),
        identities=frozenset(names_a) | frozenset(names_b),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    if check_exists:
        _require_images(pairs)
    return pairs


def _require_images(pairs: PairsFile) -> None:
    """Raises ``FileNotFoundError`` naming the first image of ``pairs`` that does not exist, and its line."""
    checked: set[Path] = set()
    for line_number, image_a, image_b in zip(pairs.line_numbers.tolist(), pairs.paths_a, pairs.paths_b):
        for image in (image_a, image_b):
            if image not in checked:
                if not image.is_file():
                    raise FileNotFoundError(
                        f"{pairs.path}, line {line_number}: image '{image}' does not exist "
                        f"(images_dir='{pairs.images_dir}'). Pass the right images_dir, or check_exists=False to "
                        "skip this check."
                    )
                checked.add(image)


def load_pairs(
    name_or_path: str | os.PathLike,
    root: str | os.PathLike | None = None,
    check_exists: bool = True,
) -> PairsFile:
    """Load a named LFW split — ``"view1_train"``, ``"view1_test"`` or ``"view2"`` — or any pairs file by path.

    ``root`` is the resolved LFW root (a command's ``paths.command_lfw_root``; nothing is looked up here). A name
    resolves to ``PAIRS_FILES[name]`` under ``root`` with images from ``paths.lfw_images_dir(root)``.
    A path reads its images from ``paths.lfw_images_dir(root)`` when ``root`` is given, else from the tree beside
    it (``paths.lfw_images_dir(path.parent)``: the pairs file's folder or its ``lfw-deepfunneled`` /
    ``lfw_funneled`` / ``lfw`` subfolder), never from the default LFW root: a user's pairs file scored on
    other images would be a silent lie. A ``:folds=A-B`` (or ``:folds=A``) suffix keeps only those 1-based folds,
    e.g. ``"view2:folds=1-5"``.

    Raises:
        PairsError: an unknown name, a path that is not a file, or a fold selection the file does not have.
        PairsFileError: a malformed pairs file (see :func:`parse_pairs`).
        FileNotFoundError: a name without ``root`` (one line: the LFW root is needed), a pairs file missing from
            ``root``, or (with ``check_exists``) a path without ``root`` whose folder holds none of its images (the
            message says to pass the image root, ``--data_dir``), or a missing image.
    """
    key = os.fspath(name_or_path)
    match = re.fullmatch(r"(.+):folds=(\d+)(?:-(\d+))?", key)
    if match:
        first, last = int(match[2]), int(match[3] or match[2])
        if first < 1 or last < first:
            raise PairsError(f"{key!r}: expected ':folds=A-B' with 1 <= A <= B")
        return load_pairs(match[1], root, check_exists).select_folds(range(first - 1, last))
    if key in PAIRS_FILES:
        if root is None:
            raise FileNotFoundError(f"the LFW pairs {key!r} need the LFW root (its pairs files and images), and none "
                                    f"was found. {paths.LFW_HELP}")
        return parse_pairs(Path(root).expanduser() / PAIRS_FILES[key], paths.lfw_images_dir(root), check_exists)
    path = Path(key)
    if not path.is_file():
        raise PairsError(
            f"unknown LFW pairs {key!r}: expected one of {sorted(PAIRS_FILES)} or the path of an existing pairs file"
        )
    if root is not None:
        return parse_pairs(path, paths.lfw_images_dir(root), check_exists)
    pairs = parse_pairs(path, check_exists=False)
    if check_exists:
        if not any(image.is_file() for image in pairs.paths_a + pairs.paths_b):
            raise FileNotFoundError(
                f"{path}: no image of this pairs file is in '{pairs.images_dir}' (the tree beside it, "
                f"<Name>/<Name>_NNNN.jpg); pass the image root with --data_dir"
            )
        _require_images(pairs)
    return pairs


def unique_images(pairs: PairsFile) -> UniqueImages:
    """The sorted distinct images of ``pairs`` and, per pair, the index of each side into that list."""
    all_paths = pairs.paths_a + pairs.paths_b
    ordered = tuple(sorted(set(all_paths)))
    position = {image: k for k, image in enumerate(ordered)}
    indices = np.fromiter((position[image] for image in all_paths), dtype=np.int64, count=len(all_paths))
    n = len(pairs)
    return UniqueImages(paths=ordered, index_a=indices[:n], index_b=indices[n:])


def list_identities(images_dir: str | os.PathLike) -> dict[str, list[Path]]:
    """``{identity: [image paths]}`` from a ``<images_dir>/<identity>/*.jpg`` tree.

    Identities are sorted by name and each one's images by file name, so the result is deterministic.
    Folders without images are left out; files directly in ``images_dir`` are ignored.

    Raises:
        FileNotFoundError: ``images_dir`` does not exist or is not a directory.
        ValueError: no identity folder in ``images_dir`` holds an image.
    """
    root = Path(images_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"image directory '{root}' does not exist. {paths.LFW_HELP}")
    identities: dict[str, list[Path]] = {}
    with os.scandir(root) as entries:
        folders = sorted(entry.name for entry in entries if entry.is_dir())
    for name in folders:
        with os.scandir(root / name) as entries:
            images = sorted(
                entry.name
                for entry in entries
                if entry.is_file() and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES
            )
        if images:
            identities[name] = [root / name / image for image in images]
    if not identities:
        raise ValueError(
            f"image directory '{root}' holds no '<identity>/*.jpg' images "
            f"(expected one folder per person, e.g. '{root}/Aaron_Eckhart/Aaron_Eckhart_0001.jpg')"
        )
    return identities


@dataclass(frozen=True, eq=False)
class TrainingSplit:
    """The identities left for training once every person in some protocol files is held out.

    ``identities`` maps each remaining person to their images (sorted, as ``list_identities``);
    ``excluded`` is every person named in the excluded pairs files; ``excluded_not_found`` those of them with no
    folder in the image tree (normally empty).
    """

    identities: dict[str, list[Path]]
    excluded: frozenset[str]
    excluded_not_found: frozenset[str]
    n_identities_total: int
    n_images_total: int

    @property
    def n_identities(self) -> int:
        """Identities left for training."""
        return len(self.identities)

    @property
    def n_images(self) -> int:
        """Images of the identities left for training."""
        return sum(len(images) for images in self.identities.values())

    def count_with_at_least(self, k: int) -> int:
        """Remaining identities with at least ``k`` images (``k=2`` is the minimum for an anchor-positive pair)."""
        return sum(1 for images in self.identities.values() if len(images) >= k)

    def counts(self) -> dict[str, int]:
        """The numbers worth reporting, as a JSON-ready dict."""
        return {
            "identities_total": self.n_identities_total,
            "images_total": self.n_images_total,
            "identities_excluded": len(self.excluded),
            "identities": self.n_identities,
            "images": self.n_images,
            "identities_with_2_or_more_images": self.count_with_at_least(2),
            "identities_with_10_or_more_images": self.count_with_at_least(10),
        }

    def summary(self) -> str:
        """One line: what remains of the image tree after the exclusion."""
        c = self.counts()
        return (
            f"{c['identities']} of {c['identities_total']} identities ({c['images']} of {c['images_total']} images) "
            f"remain after excluding {c['identities_excluded']}; {c['identities_with_2_or_more_images']} have >= 2 "
            f"images, {c['identities_with_10_or_more_images']} have >= 10"
        )


def training_identities(
    images_dir: str | os.PathLike | Mapping[str, list[Path]],
    exclude_pairs_files: Iterable[PairsFile | str | os.PathLike],
) -> TrainingSplit:
    """The identities of the image tree that appear in no pair of ``exclude_pairs_files``.

    LFW rule (shared/data/README.md): a model trained on LFW images must never have seen the identities of
    the pairs it is tested on, so evaluation stays honest. Exclude View 1 test (``pairsDevTest.txt``) when
    developing on View 1, and all of View 2 (``pairs.txt``) before reporting on View 2. Both the same-person and
    the different-person pairs name identities, and all are excluded.

    Args:
        images_dir: the ``<identity>/*.jpg`` tree, or the already-listed ``list_identities`` result.
        exclude_pairs_files: parsed ``PairsFile`` objects, or paths of pairs files (parsed without checking
            that the images exist, since only the names are needed).
    """
    listed = images_dir if isinstance(images_dir, Mapping) else list_identities(images_dir)
    excluded: set[str] = set()
    for pairs in exclude_pairs_files:
        if not isinstance(pairs, PairsFile):
            tree = None if isinstance(images_dir, Mapping) else images_dir
            pairs = parse_pairs(pairs, images_dir=tree, check_exists=False)
        excluded |= pairs.identities
    return TrainingSplit(
        identities={name: list(images) for name, images in listed.items() if name not in excluded},
        excluded=frozenset(excluded),
        excluded_not_found=frozenset(name for name in excluded if name not in listed),
        n_identities_total=len(listed),
        n_images_total=sum(len(images) for images in listed.values()),
    )


#: The random stream of identity subsets, far from any step number: batch ``step`` is drawn from
#: ``default_rng([seed, step])`` (``facenet_tf.data.sampling``), so a subset never repeats a batch's draw.
IDENTITY_SUBSET_STREAM = 2**62 + 1


def identity_subset(names: Iterable[str], fraction: float, seed: int = 0) -> list[str]:
    """``ceil(fraction * n)`` of the ``n`` distinct ``names`` (sorted on return): the first ones of an order drawn
    from ``seed`` alone, so subsets are seeded and nested (for one seed, a smaller fraction's subset lies inside a
    larger one's; ``fraction=1`` keeps every name). For training-set-size ablations (paper, Table 6)."""
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ValueError(f"--identity_fraction: expected a fraction in (0, 1], got {fraction!r}.")
    ordered = sorted(set(names))
    order = np.random.default_rng([int(seed), IDENTITY_SUBSET_STREAM]).permutation(len(ordered))
    keep = -(-round(fraction * len(ordered) * 1e9) // 10**9)  # ceil, without 0.29 * 100 = 28.999... surprises
    return sorted(ordered[i] for i in order[:keep])
