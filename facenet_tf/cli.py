"""facenet-tf: face recognition on your own photos, from the command line.

    facenet-tf embed PHOTOS... --out faces.npz        every face of every photo -> embeddings (+ photo and box)
    facenet-tf verify A.jpg B.jpg                     same person or not (the largest face of each photo)
    facenet-tf cluster PHOTOS... --out DIR            group the faces by person: a folder and a contact sheet each
    facenet-tf identify --gallery KNOWN PHOTOS...     name the faces, from KNOWN/<name>/*.jpg; others are "unknown"
    facenet-tf weights list | fetch NAME | verify     the pretrained weights: where they are, fetch and check them

PHOTOS are image files or folders (searched recursively for .jpg .jpeg .png .bmp .webp; hidden files, folders
written by an earlier facenet-tf run and symbolic-link loops are passed over, the last two listed). Faces are found with
MTCNN, cropped as in the LFW evaluation and embedded with the pretrained FaceNet (Inception-ResNet-v1, MS-Celeb-1M)
unless --model/--weights say otherwise (fetched and checked by SHA-256 on first use; see 'weights'). Two faces are the same person when the squared distance of their
embeddings is at most --threshold. Unreadable photos and photos without a face are skipped and listed at the end.

Nothing is overwritten without --overwrite, and every output is written atomically: a killed run leaves the
previous output as it was. Load only models you trust: a SavedModel runs its own graph.

Exit status: 0 success, 1 failure (missing weights, nothing usable in the input, ...), 2 usage error.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import csv  # noqa: E402
import io  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

PROG = "facenet-tf"
DEFAULT_MODEL = "inception_resnet_v1"
DEFAULT_WEIGHTS = "msceleb"
#: The thresholds of the default model (owned by facenet_tf.api, the Python API: see there how they were measured).
from facenet_tf.api import SEARCH_THRESHOLD, VERIFY_THRESHOLD  # noqa: E402
#: The label of faces that match no one in the gallery (a person folder may not have this name).
UNKNOWN = "unknown"

_NETS: dict[tuple, object] = {}


class CommandError(Exception):
    """A failure to report as ``facenet-tf: error: ...`` with exit status 1 (``usage=True``: status 2)."""

    def __init__(self, message: str, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


# ------------------------------------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    model = common.add_argument_group("model and matching")
    model.add_argument("--model", default=DEFAULT_MODEL,
                       help="zoo model name, training folder, .keras file or SavedModel folder (default: %(default)s). "
                            "Load only models you trust: a SavedModel runs its own graph, with the rights of this "
                            "command")
    model.add_argument("--weights", default=None,
                       help=f"weights for a zoo model ('{DEFAULT_WEIGHTS}' or a file; default: '{DEFAULT_WEIGHTS}' "
                            f"for {DEFAULT_MODEL}, none otherwise)")
    model.add_argument("--threshold", type=float, default=None,
                       help=f"same person iff squared distance <= this (default for the pretrained model: "
                            f"{VERIFY_THRESHOLD} for verify, {SEARCH_THRESHOLD} for cluster and identify, where each "
                            "face meets many; measure your own for another model)")
    faces = common.add_argument_group("face detection")
    faces.add_argument("--min-confidence", type=float, default=0.9,
                       help="drop detections below this MTCNN probability (default: %(default)s)")
    faces.add_argument("--min-face-size", type=int, default=20,
                       help="drop faces smaller than this many pixels (default: %(default)s)")
    faces.add_argument("--margin", type=float, default=0.3,
                       help="crop margin, fraction of the face size (default: %(default)s, as in the LFW evaluation)")
    run = common.add_argument_group("running")
    run.add_argument("--batch-size", type=int, default=32, help="faces per model call (default: %(default)s)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    run.add_argument("--overwrite", action="store_true",
                     help="replace existing output files (each is replaced atomically, only once the run succeeds; "
                          "cluster replaces only a folder that an earlier run wrote)")

    overview = "\n\n".join(__doc__.split("\n\n")[:4])
    parser = argparse.ArgumentParser(prog=PROG, description=overview,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Run '%(prog)s COMMAND --help' for the options of a command.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    embed = commands.add_parser("embed", parents=[common], help="store the embedding of every face of the photos",
                                description="Find every face in every photo and store its embedding, photo and box.")
    embed.add_argument("photos", nargs="+", metavar="PHOTOS", help="image files or folders")
    embed.add_argument("--out", required=True, help="the .npz file to write")
    embed.add_argument("--faces", choices=["all", "largest", "center"], default="all",
                       help="which faces of each photo (default: %(default)s)")
    embed.set_defaults(run=run_embed)

    verify = commands.add_parser("verify", parents=[common], help="are two photos of the same person?",
                                 description="Compare the main face of two photos: same person or not.")
    verify.add_argument("photo_a", metavar="A", help="first photo")
    verify.add_argument("photo_b", metavar="B", help="second photo")
    verify.add_argument("--select", choices=["largest", "center"], default="largest",
                        help="which face when a photo has several (default: %(default)s)")
    verify.set_defaults(run=run_verify)

    cluster = commands.add_parser("cluster", parents=[common], help="group the faces of the photos by person",
                                  description="Group faces by person: one folder of face crops and one contact "
                                              "sheet per person, plus clusters.csv.")
    cluster.add_argument("photos", nargs="+", metavar="PHOTOS", help="image files or folders")
    cluster.add_argument("--out", required=True,
                         help="output folder: new, empty, or (with --overwrite) the output of an earlier cluster run "
                              "holding nothing else; built beside it and swapped in when complete. It may lie "
                              "inside a photo folder (later runs pass over it), not the reverse")
    cluster.add_argument("--algorithm", choices=["agglomerative", "chinese-whispers"], default="agglomerative",
                         help="agglomerative (average linkage, the paper's choice) or chinese-whispers "
                              "(default: %(default)s)")
    cluster.add_argument("--min-size", type=int, default=2,
                         help="smaller groups go to 'singles/' (default: %(default)s)")
    cluster.add_argument("--force", dest="overwrite", action="store_true", help=argparse.SUPPRESS)  # old spelling
    cluster.set_defaults(run=run_cluster)

    identify = commands.add_parser("identify", parents=[common], help="name the faces from a folder of known people",
                                   description="Name every face in PHOTOS after the people in the gallery; faces "
                                               "too far from everyone are 'unknown'.")
    identify.add_argument("photos", nargs="+", metavar="PHOTOS", help="image files or folders")
    identify.add_argument("--gallery", required=True,
                          help="KNOWN_DIR with one folder of photos per person (KNOWN_DIR/<name>/*.jpg), or a "
                               "gallery .npz written by --save-gallery")
    identify.add_argument("--save-gallery", default=None, help="also write the gallery to this .npz for reuse")
    identify.add_argument("--csv", default=None, help="also write the results to this CSV file")
    identify.set_defaults(run=run_identify)

    weights = commands.add_parser("weights", help="list, fetch or verify the pretrained weights",
                                  description="The registered pretrained weights: where a verified copy is "
                                              "(../shared/weights, then the cache $FACENET_TF_WEIGHTS_DIR or "
                                              "~/.cache/facenet_tf/weights), fetching them into the cache, and "
                                              "checking their SHA-256.")
    weights.add_argument("action", choices=["list", "fetch", "verify"])
    weights.add_argument("names", nargs="*", metavar="NAME", help="weights names (default for verify: every "
                                                                   "copy present; fetch needs one or more)")
    weights.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    weights.set_defaults(run=run_weights)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2): argparse has printed the message
        return int(exit_.code or 0)
    try:
        _check_options(args)
        return args.run(args)
    except CommandError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2 if error.usage else 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 1
    except OSError as error:  # a full disk, a folder that vanished ...: nothing was replaced (atomic writes)
        where = f" '{error.filename}'" if error.filename else ""
        print(f"{PROG}: error: cannot write{where}: {error.strerror or error}; earlier outputs are unchanged",
              file=sys.stderr)
        return 1


def _check_options(args: argparse.Namespace) -> None:
    if args.command == "weights":
        return
    if args.threshold is not None and not 0 < args.threshold < 4:
        raise CommandError(f"--threshold is a squared distance of unit vectors, in (0, 4); got {args.threshold}",
                           usage=True)
    if not 0 <= args.min_confidence <= 1:
        raise CommandError(f"--min-confidence must be in [0, 1]; got {args.min_confidence}", usage=True)
    if args.margin < 0 or args.batch_size < 1 or args.min_face_size < 1:
        raise CommandError("--margin must be >= 0, --batch-size and --min-face-size >= 1", usage=True)
    if getattr(args, "min_size", 1) < 1:
        raise CommandError(f"--min-size must be >= 1; got {args.min_size}", usage=True)
    if args.command == "embed":
        _check_output_file(npz_path(args.out), args.overwrite, "--out")
    if args.command == "identify":
        if args.save_gallery:
            _check_output_file(npz_path(args.save_gallery), args.overwrite, "--save-gallery")
        if args.csv:
            _check_output_file(args.csv, args.overwrite, "--csv")


def npz_path(path: str) -> Path:
    from facenet_tf.recognition.outputs import npz_path as with_suffix

    return with_suffix(path)


def _check_output_file(path, overwrite: bool, flag: str) -> None:
    """Before any work: ``path`` can be written (a new file, or an existing one with --overwrite)."""
    from facenet_tf.atomic import OutputError, check_output

    try:
        check_output(path, overwrite=overwrite, flag=flag)
    except OutputError as error:
        raise CommandError(str(error)) from None


# --------------------------------------------------------------------------------------------- shared steps


def _say(message: str) -> None:
    """Notes and warnings go to stderr; results to stdout."""
    print(message, file=sys.stderr)


def _net(args: argparse.Namespace):
    """The ``facenet_tf.api.FaceNet`` (model and detector) for the options (kept for the life of the process, so
    repeated calls of :func:`main` load it once)."""
    weights = args.weights if args.weights is not None else (DEFAULT_WEIGHTS if args.model == DEFAULT_MODEL else None)
    key = (args.model, weights, args.margin, args.min_confidence, args.min_face_size, args.batch_size)
    if key not in _NETS:
        from facenet_tf import paths
        from facenet_tf.api import FaceNet
        from facenet_tf.evaluation.embed import NonFiniteEmbeddingError

        try:
            _NETS[key] = FaceNet(args.model, weights, margin=args.margin, min_confidence=args.min_confidence,
                                 min_face_size=args.min_face_size, batch_size=args.batch_size)
        except NonFiniteEmbeddingError as error:
            raise CommandError(f"--model {args.model}: {error}") from None
        except FileNotFoundError as error:
            message = str(error)
            if paths.WEIGHTS_HELP not in message:
                message += f"\n{paths.WEIGHTS_HELP}"
            raise CommandError(f"the model weights are missing: {message}") from None
        except ValueError as error:
            raise CommandError(str(error), usage=True) from None
    return _NETS[key]


def _threshold(args: argparse.Namespace) -> float:
    if args.threshold is not None:
        return args.threshold
    default = VERIFY_THRESHOLD if args.command == "verify" else SEARCH_THRESHOLD
    if args.model != DEFAULT_MODEL or (args.weights not in (None, DEFAULT_WEIGHTS)):
        _say(f"warning: threshold {default} was measured for the pretrained {DEFAULT_MODEL}; pass --threshold for "
             "this model")
    return default


def _photos(inputs: Sequence[str], what: str = "") -> list[Path]:
    """The photos of ``inputs``; what was passed over (link loops, earlier outputs) is listed on stderr."""
    from facenet_tf.recognition import scan_photos

    try:
        scanned = scan_photos(inputs)
    except FileNotFoundError as error:
        raise CommandError(str(error), usage=True) from None
    if scanned.skipped:
        _say(f"passed over {len(scanned.skipped)} entr{'y' if len(scanned.skipped) == 1 else 'ies'}{what}:")
        for path, reason in scanned.skipped:
            _say(f"  {path}: {reason}")
    return scanned.photos


def _require_photos(photos: Sequence[Path], inputs: Sequence[str]) -> None:
    if not photos:
        raise CommandError(f"no photos (.jpg .jpeg .png .bmp .webp) in {', '.join(map(str, inputs))}")


def _faces(args: argparse.Namespace, photos: Sequence[Path], which: str = "all"):
    """Find the faces of ``photos`` and embed them: ``(PhotoFaces, embeddings)``."""
    net = _net(args)
    try:
        return net.find(photos, which, progress=not args.quiet)
    except ValueError as error:  # e.g. a model whose embeddings are not finite
        raise CommandError(f"--model {args.model}: {error}") from None


def _report_skipped(found) -> None:
    """List the unreadable photos and those without a face (on stderr)."""
    if found.unreadable:
        _say(f"skipped {len(found.unreadable)} unreadable photo(s):")
        for path, reason in found.unreadable:
            _say(f"  {path}: {reason}")
    if found.without_faces:
        _say(f"no face found in {len(found.without_faces)} photo(s):")
        for path in found.without_faces:
            _say(f"  {path}")


def _require_faces(found, photos: Sequence[Path]) -> None:
    if len(found) == 0:
        _report_skipped(found)
        raise CommandError(f"no face found in any of the {len(photos)} photo(s)")


def _model_name(args: argparse.Namespace) -> str:
    weights = args.weights or (DEFAULT_WEIGHTS if args.model == DEFAULT_MODEL else "")
    return f"{args.model}/{weights}" if weights else args.model


def _box(box: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in box) + ")"


# ------------------------------------------------------------------------------------------------ commands


def run_embed(args: argparse.Namespace) -> int:
    from facenet_tf.recognition import save_faces

    photos = _photos(args.photos)
    _require_photos(photos, args.photos)
    found, embeddings = _faces(args, photos, args.faces)
    _require_faces(found, photos)
    path = save_faces(args.out, found, embeddings, _model_name(args), overwrite=args.overwrite)
    print(f"{len(found)} face(s) from {len(found.photos) - len(found.without_faces)} of {len(photos)} photo(s) "
          f"-> {path}")
    _report_skipped(found)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from facenet_tf.recognition import pairwise_squared_l2

    threshold = _threshold(args)
    photos = _photos([args.photo_a, args.photo_b])
    _require_photos(photos, [args.photo_a, args.photo_b])
    if len(photos) != 2:
        raise CommandError("verify compares two different photo files", usage=True)
    found, embeddings = _faces(args, photos, args.select)
    for photo in photos:
        if str(photo) in dict(found.unreadable):
            raise CommandError(f"cannot read photo '{photo}': {dict(found.unreadable)[str(photo)]}")
        if not found.faces_of(photo):
            raise CommandError(f"no face found in '{photo}'")
    a, b = found.faces_of(photos[0])[0], found.faces_of(photos[1])[0]
    distance = float(pairwise_squared_l2(embeddings[a], embeddings[b])[0, 0])
    same = distance <= threshold
    print(f"{'same person' if same else 'different people'}: distance {distance:.3f} "
          f"{'<=' if same else '>'} threshold {threshold:.3f}")
    print(f"  {photos[0]} face {_box(found.records[a].box)}")
    print(f"  {photos[1]} face {_box(found.records[b].box)}")
    return 0


def _check_cluster_output(out: Path, inputs: Sequence[str], overwrite: bool) -> None:
    """Before any work: ``out`` is new, empty, or (with --overwrite) an earlier cluster output holding nothing else,
    and it neither is nor holds an input."""
    from facenet_tf.atomic import OutputError, check_output, check_replaceable
    from facenet_tf.recognition.outputs import foreign_files, is_replaceable_output

    target = out.resolve()
    for item in inputs:
        source = Path(item).resolve()
        if source == target or source.is_relative_to(target):
            raise CommandError(f"--out '{out}' holds the input '{item}'; choose an output folder outside your photos "
                               "(a folder inside a photo folder is fine)", usage=True)
    try:
        check_output(out, overwrite=True, flag="--out", kind="folder")
        check_replaceable(out, overwrite or _is_empty_folder(out), is_replaceable_output)
    except OutputError as error:
        raise CommandError(str(error)) from None
    except FileExistsError:
        if not overwrite:
            raise CommandError(f"--out '{out}' is not empty; choose a new folder, or pass --overwrite to replace the "
                               "output of an earlier cluster run there") from None
        foreign = foreign_files(out)
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise CommandError(f"--out '{out}' holds files that facenet-tf did not write ({shown}); --overwrite replaces "
                           "only the output of an earlier cluster run: move them, or choose another folder") from None


def _is_empty_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


def run_cluster(args: argparse.Namespace) -> int:
    from facenet_tf.atomic import write_directory_atomically
    from facenet_tf.evaluation import clustering
    from facenet_tf.recognition.clusters import CLUSTER_PREFIX, SINGLES, group_folders, write_cluster_folder
    from facenet_tf.recognition.outputs import is_replaceable_output

    threshold = _threshold(args)
    out = Path(args.out)
    photos = _photos(args.photos)
    _check_cluster_output(out, args.photos, args.overwrite)
    _require_photos(photos, args.photos)
    found, embeddings = _faces(args, photos)
    _require_faces(found, photos)
    if args.algorithm == "agglomerative":
        labels = clustering.agglomerative_clustering(embeddings, threshold, "average")
    else:
        labels = clustering.chinese_whispers(embeddings, threshold)
    _, groups, singles = group_folders(labels, args.min_size)
    sizes = np.bincount(labels)
    write_directory_atomically(out, lambda tmp: (tmp.mkdir(), write_cluster_folder(tmp, found, labels,
                                                                                   args.min_size)),
                               overwrite=args.overwrite or _is_empty_folder(out), replaceable=is_replaceable_output)
    print(f"{len(found)} face(s) in {len(found.photos)} photo(s): {len(groups)} group(s) of >= {args.min_size} "
          f"faces, {sum(sizes[c] for c in singles)} face(s) in '{SINGLES}' (threshold {threshold:.3f}, "
          f"{args.algorithm}) -> {out}")
    for n, c in enumerate(groups):
        print(f"  {CLUSTER_PREFIX}{n + 1:03d}: {sizes[c]} faces")
    _report_skipped(found)
    return 0


def _build_gallery(args: argparse.Namespace):
    """The gallery from ``--gallery``: a saved .npz, or KNOWN_DIR/<name>/ photos (the largest face of each)."""
    from facenet_tf.recognition import Gallery

    source = Path(args.gallery)
    if source.is_file():
        try:
            gallery = Gallery.load(source)
        except ValueError as error:
            raise CommandError(f"--gallery: {error}") from None
        if UNKNOWN in gallery.identities:
            raise CommandError(f"--gallery '{source}' has a person named '{UNKNOWN}', the label of faces that match "
                               "no one; rebuild it with that folder renamed")
        if gallery.metadata.get("model") not in (None, _model_name(args)):
            raise CommandError(f"gallery '{source}' was built with model {gallery.metadata['model']}, not "
                               f"{_model_name(args)}; rebuild it from the photos or pass that --model/--weights")
        return gallery
    if not source.is_dir():
        raise CommandError(f"--gallery '{source}' does not exist", usage=True)
    people = sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not people:
        raise CommandError(f"--gallery '{source}' has no person folders (expected {source}/<name>/*.jpg)")
    if any(person.name == UNKNOWN for person in people):
        raise CommandError(f"--gallery: the person folder '{source / UNKNOWN}' has the name of the label of faces "
                           "that match no one; rename it (e.g. unknown_person)")
    photos, names = [], []
    for person in people:
        for photo in _photos([person], f" in the gallery folder '{person.name}'"):
            photos.append(photo)
            names.append(person.name)
    if not photos:
        raise CommandError(f"no photos in the person folders of --gallery '{source}'")
    found, embeddings = _faces(args, photos, "largest")
    if len(found) == 0:
        _report_skipped(found)
        raise CommandError(f"no face found in any photo of the gallery '{source}'")
    name_of = {str(photo): name for photo, name in zip(photos, names)}
    gallery = Gallery(metadata={"model": _model_name(args)})
    gallery.add([name_of[r.source] for r in found.records], embeddings, [r.source for r in found.records])
    missing = sorted({p.name for p in people} - set(gallery.identities))
    _say(f"gallery: {len(gallery.identities)} people, {len(gallery)} face(s) from '{source}'")
    if missing:
        _say(f"warning: no usable face for {len(missing)} person folder(s): {', '.join(missing)}")
    _report_skipped(found)
    return gallery


def run_identify(args: argparse.Namespace) -> int:
    threshold = _threshold(args)
    photos = _photos(args.photos)
    _require_photos(photos, args.photos)
    gallery = _build_gallery(args)
    if args.save_gallery:
        _say(f"gallery saved to {gallery.save(args.save_gallery, overwrite=args.overwrite)}")
    found, embeddings = _faces(args, photos)
    _require_faces(found, photos)
    try:
        matches = gallery.search(embeddings, k=1)
    except ValueError as error:  # a gallery of another embedding size
        raise CommandError(f"--gallery '{args.gallery}' does not fit --model {_model_name(args)}: {error}") from None
    rows = []
    for record, name, distance in zip(found.records, matches.names[:, 0], matches.distances[:, 0]):
        known = bool(distance <= threshold)
        shown = name if known else UNKNOWN
        nearest = "" if known else f" (nearest: {name})"
        print(f"{record.source}  face {record.face} {_box(record.box)}: {shown}  distance {distance:.3f}{nearest}")
        rows.append([record.source, record.face, *(f"{v:.1f}" for v in record.box), shown, f"{distance:.4f}",
                     name])
    recognised = sum(row[6] != UNKNOWN for row in rows)
    print(f"{recognised} of {len(rows)} face(s) recognised (threshold {threshold:.3f}), "
          f"{len(rows) - recognised} unknown")
    if args.csv:
        from facenet_tf.atomic import write_text_atomically

        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(["photo", "face", "x1", "y1", "x2", "y2", "name", "distance", "nearest"])
        writer.writerows(rows)
        write_text_atomically(args.csv, text.getvalue(), overwrite=args.overwrite)
    _report_skipped(found)
    return 0


def run_weights(args: argparse.Namespace) -> int:
    from facenet_tf.models import weights as registry

    unknown = [name for name in args.names if name not in registry.REGISTRY]
    if unknown:
        raise CommandError(f"unknown weights {unknown[0]!r}; known: {', '.join(sorted(registry.REGISTRY))}",
                           usage=True)
    if args.action == "list":
        for row in registry.weights_status():
            where = (f"{row['path']} ({'verified' if row['verified'] else 'DOES NOT VERIFY'})" if row["present"]
                     else "not here (fetched on first use)")
            print(f"{row['name']:<12} {row['architecture']} {row['embedding_dim']}-D, {row['size'] / 1e6:.1f} MB: "
                  f"{where}\n{'':<13}LFW View 2: {row['lfw_view2']}\n{'':<13}licence: {row['license']}")
        return 0
    if args.action == "fetch":
        if not args.names:
            raise CommandError("weights fetch needs the NAME of the weights (see 'facenet-tf weights list')",
                               usage=True)
        for name in args.names:
            try:
                print(f"{name}: {registry.resolve_weights(name, progress=not args.quiet)}")
            except registry.WeightsError as error:
                raise CommandError(str(error)) from None
        return 0
    bad = 0
    for row in registry.weights_status():
        if (args.names and row["name"] not in args.names) or not (row["present"] or args.names):
            continue
        if row["verified"]:
            print(f"{row['name']}: {row['path']} verified (SHA-256 matches)")
        else:
            bad += 1
            print(f"{row['name']}: " + (f"{row['path']} does not verify (SHA-256 differs): delete it and fetch "
                                        "again" if row["present"] else "not here"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
