"""facenet-tf: face recognition on your own photos, from the command line.

    facenet-tf verify A.jpg B.jpg                     same person or not (the largest face of each photo)
    facenet-tf verify --pairs pairs.csv               many pairs, each photo embedded once (CSV: photo_a,photo_b)
    facenet-tf embed PHOTOS... --out faces.npz        every face of every photo -> embeddings (+ photo and box)
    facenet-tf cluster PHOTOS... --out DIR            sort the photos by person: DIR/person_001/ ... (links)
    facenet-tf identify --gallery KNOWN PHOTOS...     name the faces, from KNOWN/<name>/*.jpg; others are "unknown"
    facenet-tf calibrate KNOWN --out cal.json         thresholds measured on your own labelled photos
    facenet-tf weights list | fetch NAME | verify     the pretrained weights: where they are, fetch and check them

PHOTOS are image files or folders, searched recursively for every format the reader decodes (JPEG, PNG, BMP, GIF,
TIFF, WebP, PGM/PPM, JPEG 2000, AVIF, ...; a file without a suffix is recognised by its first bytes). Hidden
files, folders written by an earlier facenet-tf run and symbolic-link loops are passed over, the last two listed.
Faces are found with MTCNN, cropped as in the LFW evaluation and embedded with the pretrained FaceNet
(Inception-ResNet-v1, MS-Celeb-1M) unless --model/--weights say otherwise (fetched and checked by SHA-256 on
first use; see 'weights'). Two faces are the same person when the squared distance of their embeddings is at
most the threshold (--threshold, or measured on your photos by 'calibrate' and passed with --calibration).
Unreadable photos and photos without a face are skipped and listed at the end.

--json prints one JSON document on standard output instead of text (an error too: {"error": ..., "status": ...});
notes and warnings always go to standard error. Nothing is overwritten without --overwrite, and every output is
written atomically: a killed run leaves the previous output as it was. Load only models you trust: a SavedModel
runs its own graph.

Exit status: 0 success, 1 failure (missing weights, nothing usable in the input, ...), 2 usage error;
'verify --exit-code': 0 same person, 1 different people, 2 error.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import csv  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

#: The thresholds of the default model and the unknown label (owned by facenet_tf.api: see there how they were
#: measured).
from facenet_tf.api import (CLUSTER_ALGORITHM, CLUSTER_ALGORITHMS, CLUSTER_THRESHOLD, IDENTIFY_THRESHOLD,  # noqa: E402
                            UNKNOWN, VERIFY_THRESHOLD)

PROG = "facenet-tf"
DEFAULT_MODEL = "inception_resnet_v1"
DEFAULT_WEIGHTS = "msceleb"
#: The default threshold of each command, for the pretrained model.
DEFAULT_THRESHOLDS = {"verify": VERIFY_THRESHOLD, "identify": IDENTIFY_THRESHOLD, "cluster": CLUSTER_THRESHOLD,
                      "embed": None, "calibrate": None}

_NETS: dict[tuple, object] = {}


class CommandError(Exception):
    """A failure to report as ``facenet-tf: error: ...`` with exit status 1 (``usage=True``: status 2)."""

    def __init__(self, message: str, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


# ------------------------------------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true",
                        help="print one JSON document on standard output instead of text")
    common = argparse.ArgumentParser(add_help=False, parents=[output])
    model = common.add_argument_group("model and matching")
    model.add_argument("--model", default=DEFAULT_MODEL,
                       help="zoo model name, training folder, .keras file or SavedModel folder (default: %(default)s). "
                            "Load only models you trust: a SavedModel runs its own graph, with the rights of this "
                            "command")
    model.add_argument("--weights", default=None,
                       help=f"weights for a zoo model ('{DEFAULT_WEIGHTS}' or a file; default: '{DEFAULT_WEIGHTS}' "
                            f"for {DEFAULT_MODEL}, none otherwise)")
    model.add_argument("--threshold", type=float, default=None,
                       help=f"same person iff squared distance <= this (defaults for the pretrained model: verify "
                            f"{VERIFY_THRESHOLD}, identify {IDENTIFY_THRESHOLD}, cluster {CLUSTER_THRESHOLD}, "
                            "stricter where each face meets many; measure your own with 'calibrate')")
    model.add_argument("--calibration", default=None, metavar="FILE",
                       help="thresholds measured by 'facenet-tf calibrate' on your photos (--threshold wins)")
    model.add_argument("--centre", action=argparse.BooleanOptionalAction, default=None,
                       help="subtract the model's stored reference mean embedding (default: when it has one, as "
                            "the registered weights do; --no-centre for the plain embeddings of earlier galleries)")
    model.add_argument("--flip", action="store_true",
                       help="average each face's embedding with its mirror image's (twice the model calls)")
    faces = common.add_argument_group("face detection")
    faces.add_argument("--min-confidence", type=float, default=0.9,
                       help="drop detections below this MTCNN probability (default: %(default)s)")
    faces.add_argument("--min-face-size", type=int, default=20,
                       help="drop faces smaller than this many pixels (default: %(default)s)")
    faces.add_argument("--margin", type=float, default=0.3,
                       help="crop margin, fraction of the face size (default: %(default)s, as in the LFW evaluation)")
    run = common.add_argument_group("running")
    run.add_argument("--batch-size", type=int, default=32, help="faces per model call (default: %(default)s)")
    run.add_argument("-q", "--quiet", action="store_true",
                     help="no progress bars (they are shown only when standard error is a terminal)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace existing output files (each is replaced atomically, only once the run succeeds; "
                          "cluster replaces only a folder that an earlier run wrote)")

    overview = "\n\n".join(__doc__.split("\n\n")[:4])
    parser = argparse.ArgumentParser(prog=PROG, description=overview,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Run '%(prog)s COMMAND --help' for the options of a command.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    verify = commands.add_parser("verify", parents=[common], help="are two photos of the same person?",
                                 description="Compare the main face of two photos (or of each pair in --pairs): "
                                             "same person or not.")
    verify.add_argument("pair", nargs="*", metavar="PHOTO", help="the two photos (not with --pairs)")
    verify.add_argument("--pairs", default=None, metavar="CSV",
                        help="a CSV file of pairs, one 'photo_a,photo_b' per line (optional header, '#' comments, "
                             "paths relative to the file's folder); each photo is embedded once, and a pair that "
                             "cannot be answered is reported on its own line")
    verify.add_argument("--csv", default=None, help="with --pairs: also write the answers to this CSV file")
    verify.add_argument("--exit-code", action="store_true",
                        help="exit 0 when the same person, 1 when different people (with --pairs: when any pair "
                             "is), 2 on any error")
    verify.add_argument("--select", choices=["largest", "center"], default="largest",
                        help="which face when a photo has several (default: %(default)s)")
    verify.set_defaults(run=run_verify)

    embed = commands.add_parser("embed", parents=[common], help="store the embedding of every face of the photos",
                                description="Find every face in every photo and store its embedding, photo and box.")
    embed.add_argument("photos", nargs="+", metavar="PHOTOS", help="image files or folders")
    embed.add_argument("--out", required=True, help="the .npz file to write")
    embed.add_argument("--faces", choices=["all", "largest", "center"], default="all",
                       help="which faces of each photo (default: %(default)s)")
    embed.set_defaults(run=run_embed)

    cluster = commands.add_parser("cluster", parents=[common], help="sort the photos by person",
                                  description="Group the faces by person and sort the photos: OUT/person_001/ holds "
                                              "links to the photos of person 1 (copies with --copy; a photo with "
                                              "several people is under each), OUT/person_001.png shows every face "
                                              "of the group, clusters.csv lists every face.")
    cluster.add_argument("photos", nargs="+", metavar="PHOTOS", help="image files or folders")
    cluster.add_argument("--out", required=True,
                         help="output folder: new, empty, or (with --overwrite) the output of an earlier cluster run "
                              "holding nothing else; built beside it and swapped in when complete. It may lie "
                              "inside a photo folder (later runs pass over it), not the reverse")
    cluster.add_argument("--copy", action="store_true", help="copy the photos instead of linking to them")
    cluster.add_argument("--crops", action="store_true", help="also write each face crop, under OUT/crops/")
    cluster.add_argument("--algorithm", choices=CLUSTER_ALGORITHMS, default=CLUSTER_ALGORITHM,
                         help="agglomerative (the paper's choice) or chinese-whispers (default: %(default)s)")
    cluster.add_argument("--linkage", choices=["complete", "average", "single"], default=None,
                         help="agglomerative: how far two groups are: their farthest faces (complete), the mean "
                              "(average) or the nearest (single) (default: complete, measured on web-like photos "
                              "in results/photo_defaults.md, or the calibrated one)")
    cluster.add_argument("--min-size", type=int, default=2,
                         help="photos of smaller groups go to 'singles/' (default: %(default)s)")
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

    calibrate = commands.add_parser("calibrate", parents=[common], help="measure the thresholds on your own photos",
                                    description="From KNOWN/<name>/*.jpg (one folder per person, the largest face "
                                                "of each photo), measure the distances and recommend the verify, "
                                                "identify and cluster thresholds; other commands take the result "
                                                "with --calibration.")
    calibrate.add_argument("known", metavar="KNOWN", help="folder with one folder of photos per person")
    calibrate.add_argument("--out", required=True, help="the calibration .json to write")
    calibrate.add_argument("--far", type=float, default=1e-3,
                           help="verify: largest share of different-person pairs accepted (default: %(default)s)")
    calibrate.add_argument("--identify-far", type=float, default=1e-2,
                           help="identify: largest share of strangers' faces accepted as someone (default: "
                                "%(default)s)")
    calibrate.add_argument("--plot", default=None, metavar="PNG",
                           help="also draw the two distance distributions and the thresholds")
    calibrate.set_defaults(run=run_calibrate)

    weights = commands.add_parser("weights", parents=[output], help="list, fetch or verify the pretrained weights",
                                  description="The registered pretrained weights: where a verified copy is "
                                              "(../shared/weights, then the cache $FACENET_TF_WEIGHTS_DIR or "
                                              "~/.cache/facenet_tf/weights), fetching them into the cache, and "
                                              "checking their SHA-256.")
    weights.add_argument("action", choices=["list", "fetch", "verify"])
    weights.add_argument("names", nargs="*", metavar="NAME", help="weights names (default for verify: every "
                                                                   "copy present; fetch needs one or more)")
    weights.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    weights.set_defaults(run=run_weights)
    _add_serving_commands(commands, common, output)
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
        return _fail(args, str(error), 2 if error.usage else 1)
    except KeyboardInterrupt:
        return _fail(args, "interrupted", 1)
    except ModuleNotFoundError as error:  # TensorFlow is an extra: quiet.require_tensorflow says which to install
        if error.name != "tensorflow":
            raise
        return _fail(args, str(error), 1)
    except OSError as error:  # a full disk, a folder that vanished ...: nothing was replaced (atomic writes)
        where = f" '{error.filename}'" if error.filename else ""
        return _fail(args, f"cannot write{where}: {error.strerror or error}; earlier outputs are unchanged", 1)


def _fail(args: argparse.Namespace, message: str, status: int) -> int:
    status = 2 if getattr(args, "exit_code", False) else status
    print(f"{PROG}: error: {message}", file=sys.stderr)
    if args.json:
        print(json.dumps({"error": message, "status": status}))
    return status


def _check_options(args: argparse.Namespace) -> None:
    if args.command in ("weights", "gallery"):
        return
    if args.threshold is not None and not 0 < args.threshold < 4:
        raise CommandError(f"--threshold is a squared distance of unit vectors, in (0, 4); got {args.threshold}",
                           usage=True)
    if not 0 <= args.min_confidence <= 1:
        raise CommandError(f"--min-confidence must be in [0, 1]; got {args.min_confidence}", usage=True)
    if not (np.isfinite(args.margin) and args.margin >= 0) or args.batch_size < 1 or args.min_face_size < 1:
        raise CommandError("--margin must be >= 0, --batch-size and --min-face-size >= 1", usage=True)
    if getattr(args, "min_size", 1) < 1:
        raise CommandError(f"--min-size must be >= 1; got {args.min_size}", usage=True)
    if args.calibration is not None:
        _calibration(args)  # a bad file is refused before any work
    outputs = {"embed": [("--out", "out")], "identify": [("--save-gallery", "save_gallery"), ("--csv", "csv")],
               "verify": [("--csv", "csv")], "calibrate": [("--out", "out"), ("--plot", "plot")]}
    for flag, name in outputs.get(args.command, []):
        value = getattr(args, name)
        if value:
            _check_output_file(npz_path(value) if name in ("save_gallery",) or args.command == "embed" else value,
                               args.overwrite, flag)
    if args.command == "verify":
        if args.pairs is None and len(args.pair) != 2:
            raise CommandError("verify takes two photos, or --pairs CSV", usage=True)
        if args.pairs is not None and args.pair:
            raise CommandError("verify takes two photos or --pairs CSV, not both", usage=True)
        if args.csv and args.pairs is None:
            raise CommandError("--csv goes with --pairs (the answers of many pairs)", usage=True)
    if args.command == "calibrate":
        for flag, value in (("--far", args.far), ("--identify-far", args.identify_far)):
            if not (np.isfinite(value) and 0 < value < 1):
                raise CommandError(f"{flag} is a rate in (0, 1); got {value}", usage=True)


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


def _calibration(args: argparse.Namespace) -> dict:
    from facenet_tf.evaluation.calibration import CalibrationError, load_calibration

    try:
        return load_calibration(args.calibration)
    except CalibrationError as error:
        raise CommandError(f"--calibration: {error}", usage=True) from None


# --------------------------------------------------------------------------------------------- shared steps


def _say(message: str) -> None:
    """Notes and warnings go to stderr; results to stdout."""
    print(message, file=sys.stderr)


def _emit(args: argparse.Namespace, result: dict[str, Any], lines: Sequence[str]) -> None:
    """The result: ``lines`` of text, or with --json the ``result`` as one JSON document."""
    if args.json:
        print(json.dumps(result, indent=2, default=_json_value))
    else:
        for line in lines:
            print(line)


def _json_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _progress(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


def _net(args: argparse.Namespace):
    """The ``facenet_tf.api.FaceNet`` (model and detector) for the options (kept for the life of the process, so
    repeated calls of :func:`main` load it once)."""
    weights = args.weights if args.weights is not None else (DEFAULT_WEIGHTS if args.model == DEFAULT_MODEL else None)
    frozen = args.command == "serve"  # a long-lived server: constant weights, faster small batches (more set-up)
    key = (args.model, weights, args.calibration, args.margin, args.min_confidence, args.min_face_size,
           args.batch_size, frozen, args.flip, args.centre)
    if key not in _NETS:
        from facenet_tf import paths
        from facenet_tf.quiet import import_tensorflow_quietly

        import_tensorflow_quietly()
        from facenet_tf.api import FaceNet
        from facenet_tf.evaluation.embed import NonFiniteEmbeddingError

        try:
            _NETS[key] = FaceNet(args.model, weights, margin=args.margin, min_confidence=args.min_confidence,
                                 min_face_size=args.min_face_size, batch_size=args.batch_size, frozen=frozen,
                                 calibration=_calibration(args) if args.calibration else None, flip=args.flip,
                                 centre=args.centre)
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


def _threshold(args: argparse.Namespace, net) -> float:
    """--threshold, else the calibrated or measured threshold of the command, else the pretrained model's (with a
    warning)."""
    if args.threshold is not None:
        return args.threshold
    measured = {"verify": net.threshold, "identify": net.identify_threshold, "cluster": net.cluster_threshold}
    if measured[args.command] is not None:
        return float(measured[args.command])
    default = DEFAULT_THRESHOLDS[args.command]
    _say(f"warning: threshold {default} was measured for the pretrained {DEFAULT_MODEL}; pass --threshold or "
         "--calibration for this model")
    return default


def _photos(inputs: Sequence[str], what: str = "") -> tuple[list[Path], list[tuple[str, str]]]:
    """The photos of ``inputs`` and what was passed over (link loops, earlier outputs; listed on stderr)."""
    from facenet_tf.recognition import scan_photos

    try:
        scanned = scan_photos(inputs)
    except FileNotFoundError as error:
        raise CommandError(str(error), usage=True) from None
    if scanned.skipped:
        _say(f"passed over {len(scanned.skipped)} entr{'y' if len(scanned.skipped) == 1 else 'ies'}{what}:")
        for path, reason in scanned.skipped:
            _say(f"  {path}: {reason}")
    if not scanned.photos:
        raise CommandError(f"no photos (image files) in {', '.join(map(str, inputs))}")
    return scanned.photos, scanned.skipped


def _faces(args: argparse.Namespace, photos: Sequence[Path], which: str = "all"):
    """Find the faces of ``photos`` and embed them: ``(PhotoFaces, embeddings)``; none at all is an error."""
    net = _net(args)
    try:
        found, embeddings = net.find(photos, which, progress=_progress(args))
    except ValueError as error:  # e.g. a model whose embeddings are not finite
        raise CommandError(f"--model {args.model}: {error}") from None
    if len(found) == 0:
        _report_skipped(found)
        raise CommandError(f"no face found in any of the {len(photos)} photo(s)")
    return found, embeddings


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


def _skipped(found, passed_over: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """What a run could not use, for its JSON result."""
    return {"unreadable": [{"photo": p, "reason": r} for p, r in found.unreadable],
            "without_faces": list(found.without_faces),
            "passed_over": [{"path": p, "reason": r} for p, r in passed_over]}


def _face(record) -> dict[str, Any]:
    return {"photo": record.source, "face": record.face, "box": [round(float(v), 1) for v in record.box],
            "confidence": round(float(record.confidence), 4)}


def _box(box: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in box) + ")"


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    return text.getvalue()


# ------------------------------------------------------------------------------------------------ commands


def run_embed(args: argparse.Namespace) -> int:
    from facenet_tf.recognition import save_faces

    photos, passed_over = _photos(args.photos)
    found, embeddings = _faces(args, photos, args.faces)
    net = _net(args)
    path = save_faces(args.out, found, embeddings, net.model_name, overwrite=args.overwrite)
    with_faces = len(found.photos) - len(found.without_faces)
    _emit(args, {"out": str(path), "model": net.model_name, "photos": len(photos), "photos_with_faces": with_faces,
                 "faces": [_face(r) for r in found.records], **_skipped(found, passed_over)},
          [f"{len(found)} face(s) from {with_faces} of {len(photos)} photo(s) -> {path}"])
    _report_skipped(found)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    if args.pairs is not None:
        return _verify_pairs(args)
    photos, _ = _photos(args.pair)
    if len(photos) != 2:
        raise CommandError("verify compares two different photo files", usage=True)
    net = _net(args)
    result = net.verify_pairs([tuple(photos)], args.select, _threshold(args, net), progress=_progress(args))[0]
    if "error" in result:
        raise CommandError(result["error"])
    same, distance, threshold = result["same"], result["distance"], result["threshold"]
    faces = result["faces"]
    _emit(args, {**result, "faces": [{**f, "box": [round(v, 1) for v in f["box"]]} for f in faces]}, [
        f"{'same person' if same else 'different people'}: distance {distance:.3f} "
        f"{'<=' if same else '>'} threshold {threshold:.3f}",
        *(f"  {face['photo']} face {_box(face['box'])}" for face in faces)])
    return (0 if same else 1) if args.exit_code else 0


def _verify_pairs(args: argparse.Namespace) -> int:
    from facenet_tf.atomic import write_text_atomically
    from facenet_tf.recognition.pair_list import PairListError, read_pair_list

    try:
        pairs = read_pair_list(args.pairs)
    except PairListError as error:
        raise CommandError(f"--pairs: {error}", usage=True) from None
    net = _net(args)
    threshold = _threshold(args, net)
    results = net.verify_pairs([(pair.a, pair.b) for pair in pairs], args.select, threshold,
                               progress=_progress(args))
    rows, lines = [], []
    for pair, result in zip(pairs, results):
        if "error" in result:
            lines.append(f"error  {result['a']}  {result['b']}: {result['error']}")
            rows.append([pair.line, result["a"], result["b"], "", "", result["error"]])
        else:
            lines.append(f"{'same     ' if result['same'] else 'different'}  {result['distance']:.3f}  "
                         f"{result['a']}  {result['b']}")
            rows.append([pair.line, result["a"], result["b"], int(result["same"]), f"{result['distance']:.4f}", ""])
    errors = sum("error" in r for r in results)
    same = sum(bool(r.get("same")) for r in results)
    different = len(results) - errors - same
    summary = (f"{len(results)} pair(s): {same} same person, {different} different people, {errors} could not be "
               f"answered (threshold {threshold:.3f})")
    if args.csv:
        write_text_atomically(args.csv, _csv_text(["line", "a", "b", "same", "distance", "error"], rows),
                              overwrite=args.overwrite)
    _emit(args, {"pairs": [{"line": pair.line, **{k: v for k, v in r.items() if k != "faces"}}
                           for pair, r in zip(pairs, results)],
                 "same": same, "different": different, "errors": errors, "threshold": threshold,
                 "model": net.model_name}, [*lines, summary])
    if args.exit_code:
        return 2 if errors else (1 if different else 0)
    return 1 if errors == len(results) else 0


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
    from facenet_tf.recognition.clusters import SINGLES, group_folders, write_cluster_folder
    from facenet_tf.recognition.outputs import is_replaceable_output

    out = Path(args.out)
    photos, passed_over = _photos(args.photos)
    _check_cluster_output(out, args.photos, args.overwrite)
    found, embeddings = _faces(args, photos)
    net = _net(args)
    threshold = _threshold(args, net)
    labels = net.group(embeddings, args.algorithm, threshold, args.linkage)
    folder_of, groups, _ = group_folders(labels, args.min_size)
    mode = "copy" if args.copy else "link"
    write_directory_atomically(
        out, lambda tmp: (tmp.mkdir(), write_cluster_folder(tmp, found, labels, args.min_size, photos=mode,
                                                            crops=args.crops)),
        overwrite=args.overwrite or _is_empty_folder(out), replaceable=is_replaceable_output)
    folders: dict[str, dict[str, Any]] = {}
    for record, label in zip(found.records, labels):
        entry = folders.setdefault(folder_of[int(label)], {"faces": 0, "photos": []})
        entry["faces"] += 1
        if record.source not in entry["photos"]:
            entry["photos"].append(record.source)
    lines = [f"{len(found)} face(s) in {len(found.photos)} photo(s): {len(groups)} group(s) of >= {args.min_size} "
             f"faces, {folders.get(SINGLES, {}).get('faces', 0)} face(s) in '{SINGLES}' (threshold {threshold:.3f}, "
             f"{args.algorithm}{f', {args.linkage or net.cluster_linkage} linkage' if args.algorithm == 'agglomerative' else ''}"
             f") -> {out}"]
    lines += [f"  {name}: {entry['faces']} face(s) in {len(entry['photos'])} photo(s)"
              for name, entry in folders.items() if name != SINGLES]
    _emit(args, {"out": str(out), "threshold": threshold, "algorithm": args.algorithm,
                 "linkage": (args.linkage or net.cluster_linkage) if args.algorithm == "agglomerative" else None,
                 "photos_placed": mode,
                 "groups": [{"folder": name, **entry} for name, entry in folders.items() if name != SINGLES],
                 "singles": folders.get(SINGLES, {"faces": 0, "photos": []}),
                 "faces": [{**_face(r), "folder": folder_of[int(label)]} for r, label in zip(found.records, labels)],
                 **_skipped(found, passed_over)}, lines)
    _report_skipped(found)
    return 0


def _load_gallery(args: argparse.Namespace, net):
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
        model = gallery.metadata.get("model")
        if model is not None and model.replace("/", "@") != net.model_name:
            raise CommandError(f"gallery '{source}' was built with model {model}, not {net.model_name}; rebuild it "
                               "from the photos or pass the --model/--weights and --centre/--no-centre/--flip it was "
                               "built with (a name without +centred: --no-centre)")
        return gallery
    if not source.is_dir():
        raise CommandError(f"--gallery '{source}' does not exist", usage=True)
    try:
        gallery, found, people = net.gallery_faces(source, progress=_progress(args))
    except ValueError as error:
        raise CommandError(f"--gallery: {error}") from None
    missing = sorted({p.name for p in people} - set(gallery.identities))
    _say(f"gallery: {len(gallery.identities)} people, {len(gallery)} face(s) from '{source}'")
    if missing:
        _say(f"warning: no usable face for {len(missing)} person folder(s): {', '.join(missing)}")
    _report_skipped(found)
    return gallery


def run_identify(args: argparse.Namespace) -> int:
    from facenet_tf.atomic import write_text_atomically

    photos, passed_over = _photos(args.photos)
    net = _net(args)
    threshold = _threshold(args, net)
    gallery = _load_gallery(args, net)
    if args.save_gallery:
        _say(f"gallery saved to {gallery.save(args.save_gallery, overwrite=args.overwrite)}")
    found, embeddings = _faces(args, photos)
    try:
        named = net.name_faces(found, embeddings, gallery, threshold)
    except ValueError as error:  # a gallery of another embedding size
        raise CommandError(f"--gallery '{args.gallery}' does not fit --model {net.model_name}: {error}") from None
    rows, lines = [], []
    for face in named:
        shown = face["name"] or UNKNOWN
        nearest = "" if face["name"] else f" (nearest: {face['nearest']})"
        lines.append(f"{face['photo']}  face {face['face']} {_box(face['box'])}: {shown}  "
                     f"distance {face['distance']:.3f}{nearest}")
        rows.append([face["photo"], face["face"], *(f"{v:.1f}" for v in face["box"]), shown,
                     f"{face['distance']:.4f}", face["nearest"]])
    recognised = sum(face["name"] is not None for face in named)
    lines.append(f"{recognised} of {len(named)} face(s) recognised (threshold {threshold:.3f}), "
                 f"{len(named) - recognised} unknown")
    if args.csv:
        write_text_atomically(args.csv, _csv_text(["photo", "face", "x1", "y1", "x2", "y2", "name", "distance",
                                                   "nearest"], rows), overwrite=args.overwrite)
    _emit(args, {"threshold": threshold, "model": net.model_name, "recognised": recognised,
                 "unknown": len(named) - recognised,
                 "gallery": {"people": len(gallery.identities), "faces": len(gallery)},
                 "faces": [{**_face(r), "name": f["name"], "nearest": f["nearest"],
                            "distance": round(f["distance"], 4)} for r, f in zip(found.records, named)],
                 **_skipped(found, passed_over)}, lines)
    _report_skipped(found)
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    from facenet_tf.evaluation import calibration

    net = _net(args)
    if not Path(args.known).is_dir():
        raise CommandError(f"KNOWN '{args.known}' is not a folder (expected {args.known}/<name>/*.jpg)", usage=True)
    try:
        result, same, different = net.calibrate(args.known, args.far, args.identify_far, progress=_progress(args))
    except ValueError as error:
        raise CommandError(f"{args.known}: {error}") from None
    path = calibration.save_calibration(args.out, result, overwrite=args.overwrite)
    if args.plot:
        calibration.plot_distances(result, same, different, args.plot)
    v, i, c = result["verify"], result["identify"], result["cluster"]
    tar = "n/a" if v["tar"] is None else f"{v['tar']:.3f}"
    lines = [f"{result['faces']} face(s) of {result['people']} people: {result['same_pairs']} same-person and "
             f"{result['different_pairs']} different-person pairs -> {path}",
             f"  verify    threshold {v['threshold']:.4f}: false accepts {v['far']:.4f} (target {v['far_target']:g}), "
             f"same-person pairs accepted {tar}",
             f"  identify  threshold {i['threshold']:.4f}: strangers accepted {i['far']:.4f} (target "
             f"{i['far_target']:g}), rank-1 {i['rank1']:.3f}, named and accepted {i['named']:.3f}",
             f"  cluster   threshold {c['threshold']:.4f}: pairwise F1 {c['f1']:.3f} ({c['groups']} groups for "
             f"{result['people']} people)"]
    lines += [f"warning: {warning}" for warning in result["warnings"]]
    lines += [f"use it: {PROG} identify --calibration {path} ..."]
    _emit(args, {**result, "out": str(path), "plot": args.plot}, lines)
    return 0


def run_weights(args: argparse.Namespace) -> int:
    from facenet_tf.models import weights as registry

    unknown = [name for name in args.names if name not in registry.REGISTRY]
    if unknown:
        raise CommandError(f"unknown weights {unknown[0]!r}; known: {', '.join(sorted(registry.REGISTRY))}",
                           usage=True)
    if args.action == "list":
        rows = registry.weights_status()
        _emit(args, {"weights": rows}, [
            f"{row['name']:<12} {row['architecture']} {row['embedding_dim']}-D, {row['size'] / 1e6:.1f} MB: "
            + (f"{row['path']} ({'verified' if row['verified'] else 'DOES NOT VERIFY'})" if row["present"]
               else "not here (fetched on first use)")
            + f"\n{'':<13}LFW View 2: {row['lfw_view2']}\n{'':<13}licence: {row['license']}" for row in rows])
        return 0
    if args.action == "fetch":
        if not args.names:
            raise CommandError("weights fetch needs the NAME of the weights (see 'facenet-tf weights list')",
                               usage=True)
        fetched = {}
        for name in args.names:
            try:
                fetched[name] = str(registry.resolve_weights(name, progress=not args.quiet and sys.stderr.isatty()))
            except registry.WeightsError as error:
                raise CommandError(str(error)) from None
        _emit(args, {"fetched": fetched}, [f"{name}: {path}" for name, path in fetched.items()])
        return 0
    checked, lines = [], []
    for row in registry.weights_status():
        if (args.names and row["name"] not in args.names) or not (row["present"] or args.names):
            continue
        checked.append(row)
        if row["verified"]:
            lines.append(f"{row['name']}: {row['path']} verified (SHA-256 matches)")
        else:
            lines.append(f"{row['name']}: " + (f"{row['path']} does not verify (SHA-256 differs): delete it and "
                                               "fetch again" if row["present"] else "not here"))
    _emit(args, {"weights": checked}, lines)
    return 1 if any(not row["verified"] for row in checked) else 0


# ------------------------------------------------------------------------------- serve, gallery (serving)
# The HTTP service and database galleries live in facenet_tf/serving/; these are their thin command lines.


def _add_serving_commands(commands, common: argparse.ArgumentParser, output: argparse.ArgumentParser) -> None:
    from facenet_tf.serving.settings import TOKEN_ENV, URI_FORMS, URI_HELP, Batching, Limits

    limits, batching = Limits(), Batching()
    serve = commands.add_parser(
        "serve", parents=[common], help="an HTTP JSON API: embed, verify, identify, enrol, remove, list",
        description="Serve the model over HTTP (FastAPI on uvicorn): POST /embed, /verify, /identify, /enrol, "
                    "/remove; GET /list, /health; API docs at /docs, a web page at /. Faces of concurrent requests "
                    "are embedded together (--batch-size faces per model call). Enrolled faces are kept in a "
                    f"database named by --gallery: {URI_FORMS}.")
    serve.add_argument("--gallery", default="sqlite:///gallery.db", metavar="URI",
                       help="where enrolled faces are kept (default: %(default)s, created when new)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: %(default)s, this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    serve.add_argument("--token", default=None,
                       help=f"bearer token that enrol and remove need (default: ${TOKEN_ENV}; without one the "
                            "gallery cannot be changed over HTTP)")
    serve.add_argument("--read-token", action="store_true",
                       help="reads (embed, verify, identify, list) need the token too")
    serve.add_argument("--identify-threshold", type=float, default=None,
                       help=f"identify: named when the squared distance is <= this (default for the pretrained "
                            f"model: {IDENTIFY_THRESHOLD}); --threshold sets the verify one")
    serve.add_argument("--max-wait-ms", type=float, default=batching.max_wait * 1000,
                       help="how long a model call waits for other requests' faces (default: %(default)s)")
    serve.add_argument("--detect-batch", type=int, default=batching.detect_batch,
                       help="images per face-detector call (default: %(default)s)")
    serve.add_argument("--max-queue", type=int, default=batching.max_queue,
                       help="requests in progress at once; more are answered 503 (default: %(default)s)")
    serve.add_argument("--max-upload-mb", type=float, default=limits.max_upload_bytes / 2 ** 20,
                       help="largest request body, MiB (default: %(default)s)")
    serve.add_argument("--max-side", type=int, default=limits.max_side,
                       help="largest image side, pixels (default: %(default)s)")
    serve.add_argument("--max-pixels", type=int, default=limits.max_pixels,
                       help="largest image, pixels in all (default: %(default)s)")
    serve.add_argument("--max-images", type=int, default=limits.max_images,
                       help="most images in one request (default: %(default)s)")
    serve.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"],
                       help="uvicorn's log level (default: %(default)s)")
    serve.set_defaults(run=run_serve)

    gallery = commands.add_parser("gallery", parents=[output], help="galleries in a database: import a .npz",
                                  description="Copy a gallery .npz (identify --save-gallery) into a database "
                                              f"gallery, in one transaction; {URI_HELP}.")
    gallery.add_argument("action", choices=["import"])
    gallery.add_argument("source", metavar="GALLERY.npz", help="the .npz gallery to import")
    gallery.add_argument("--to", required=True, metavar="URI", help="the database gallery (created when new)")
    gallery.add_argument("--overwrite", action="store_true",
                         help="replace the faces of a gallery that already holds some")
    gallery.set_defaults(run=run_gallery)


def run_serve(args: argparse.Namespace) -> int:
    from facenet_tf.serving.server import check_installed, serve
    from facenet_tf.serving.service import ServiceError
    from facenet_tf.serving.settings import TOKEN_ENV, Access, Batching, Limits
    from facenet_tf.serving.store import StoreError, StoreUnavailable

    try:
        check_installed()
    except ImportError as error:
        raise CommandError(str(error)) from None
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV) or None
    if args.read_token and not token:
        raise CommandError(f"--read-token needs a token (--token or ${TOKEN_ENV})", usage=True)
    if args.identify_threshold is not None and not 0 < args.identify_threshold < 4:
        raise CommandError(f"--identify-threshold is a squared distance in (0, 4); got {args.identify_threshold}",
                           usage=True)
    if not 0 < args.port < 65536:
        raise CommandError(f"--port must be in [1, 65535]; got {args.port}", usage=True)
    try:
        limits = Limits(int(args.max_upload_mb * 2 ** 20), args.max_side, args.max_pixels, args.max_images).check()
        batching = Batching(args.batch_size, args.max_wait_ms / 1000, args.detect_batch, args.max_queue)
        if not (args.max_wait_ms >= 0 and args.detect_batch >= 1 and args.max_queue >= 1):
            raise ValueError("--max-wait-ms must be >= 0, --detect-batch and --max-queue >= 1")
    except ValueError as error:
        raise CommandError(str(error).replace("max_", "--max-").replace("_", "-"), usage=True) from None
    net = _net(args)
    for flag, given, measured in (("--threshold", args.threshold, net.threshold),
                                  ("--identify-threshold", args.identify_threshold, net.identify_threshold)):
        if given is None and measured is None:
            raise CommandError(f"no {flag[2:]} is known for model {net.model_name}: pass {flag} (or --calibration "
                               "from 'facenet-tf calibrate')", usage=True)
    try:
        serve(net, args.gallery, args.host, args.port, Access(token, args.read_token), limits, batching,
              args.threshold, args.identify_threshold, args.log_level)
    except (StoreError, ServiceError) as error:  # a gallery of another model, or not a gallery
        raise CommandError(f"--gallery: {error}") from None
    except StoreUnavailable as error:
        raise CommandError(f"--gallery: cannot reach the database: {error}") from None
    return 0


def run_gallery(args: argparse.Namespace) -> int:
    from facenet_tf.serving.store import StoreError, StoreUnavailable, import_npz

    try:
        done = import_npz(args.source, args.to, overwrite=args.overwrite)
    except StoreUnavailable as error:
        raise CommandError(f"--to: cannot reach the database: {error}") from None
    except StoreError as error:
        raise CommandError(f"--to: {error}") from None
    except ValueError as error:  # the .npz (message names the file)
        raise CommandError(f"{error}") from None
    _emit(args, done, [f"imported {done['faces']} face(s) of {done['people']} people from '{args.source}' into "
                       f"{done['to']} (model {done['model'] or 'not recorded'})"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
