"""Does an export still recognise faces? Parity with the Keras model and LFW metrics of every exported form.

- ``evaluate_tflite``: the Keras model and each TFLite variant run the same LFW protocol (``evaluate_lfw``,
  centre alignment by default); every embedding is recorded by image content, so parity (largest absolute
  difference, smallest cosine) is measured on exactly the images of the protocol, and nothing is embedded twice.
- ``evaluate_int8_embeddings``: the 128-byte form. The float embeddings of the protocol's images are computed once
  (``evaluate_lfw``); for each candidate scale they are quantised and the pairs' distances computed in integers
  (``integer_squared_distances`` / scale^2), then the same 10-fold protocol is applied.

``format_*_report`` turn the results into the markdown of ``results/export_*.md`` (with the command and machine).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from facenet_tf.evaluation.embed import Embedder, keras_embedder  # noqa: F401  (re-exported)
from facenet_tf.export.quantize import (DEFAULT_SCALE, FULL_RANGE_SCALE, int8_squared_distances, quantization_stats,
                                        quantize_embeddings)
from facenet_tf.export.source import ModelSource


def machine_description() -> str:
    """CPU model, logical CPU count, and load average: what a timing or a report was measured on."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{model}, {os.cpu_count()} logical CPUs, load average {load:.1f}"


class EmbeddingRecorder:
    """Wraps an :class:`Embedder` and remembers the embedding of every image it sees, keyed by the image's
    float32 bytes, so two runs over the same crops can be compared row by row and nothing is embedded twice
    (images already recorded, e.g. loaded with ``load``, are answered from the record)."""

    def __init__(self, embedder: Embedder):
        self._inner = embedder
        self._store: dict[bytes, np.ndarray] = {}
        self.seconds = 0.0
        self.images = 0
        self.embedder = dataclasses.replace(embedder, fn=self._record)

    @staticmethod
    def key(image: np.ndarray) -> bytes:
        return hashlib.blake2b(np.ascontiguousarray(image, np.float32).tobytes(), digest_size=16).digest()

    def _record(self, images: np.ndarray) -> np.ndarray:
        keys = [self.key(image) for image in images]
        missing = [i for i, k in enumerate(keys) if k not in self._store]
        if missing:
            start = time.perf_counter()
            out = np.asarray(self._inner.fn(images[missing]), np.float32)
            self.seconds += time.perf_counter() - start
            self.images += len(missing)
            for i, embedding in zip(missing, out):
                self._store[keys[i]] = embedding
        return np.stack([self._store[k] for k in keys])

    def save(self, path: str | os.PathLike, fingerprint: str) -> None:
        """Writes the record (and ``fingerprint``, what produced it) to an ``.npz`` file."""
        keys = sorted(self._store)
        np.savez(path, keys=np.array([k.hex() for k in keys]), embeddings=np.stack([self._store[k] for k in keys]),
                 fingerprint=np.array(fingerprint))

    def load(self, path: str | os.PathLike, fingerprint: str) -> bool:
        """Adds a record saved by ``save`` if its fingerprint matches; returns whether it did."""
        if not Path(path).is_file():
            return False
        data = np.load(path)
        if str(data["fingerprint"]) != fingerprint:
            return False
        for key, embedding in zip(data["keys"], data["embeddings"]):
            self._store[bytes.fromhex(str(key))] = embedding
        return True

    def __len__(self) -> int:
        return len(self._store)

    def lookup(self, images: np.ndarray) -> np.ndarray:
        """The recorded embeddings of ``images`` (KeyError for an image never embedded)."""
        rows = []
        for i, image in enumerate(np.asarray(images, np.float32)):
            try:
                rows.append(self._store[self.key(image)])
            except KeyError:
                raise KeyError(f"image {i} of the batch was never embedded by '{self._inner.name}'") from None
        return np.stack(rows)

    def matched(self, other: "EmbeddingRecorder") -> tuple[np.ndarray, np.ndarray]:
        """The embeddings of the images both recorders saw, row-aligned: (this one's, the other's)."""
        keys = sorted(set(self._store) & set(other._store))
        if not keys:
            raise ValueError("the two recorders saw no image in common")
        return np.stack([self._store[k] for k in keys]), np.stack([other._store[k] for k in keys])

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")


def alignment_label(config) -> str:
    """``center (crop 160)``, ``detect (margin 0.3)``: how the crops of a report were made."""
    if config.mode == "center":
        return f"center (crop {config.crop_size})"
    return f"{config.mode} (margin {config.margin:g})"


def model_fingerprint(model) -> str:
    """A hash of a Keras model's name, input shape and every weight: whether recorded embeddings still apply."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{model.name}{tuple(model.input.shape)}".encode())
    for weight in model.weights:
        digest.update(np.ascontiguousarray(np.asarray(weight)).tobytes())
    return digest.hexdigest()


def _lfw_metrics(report: dict) -> dict[str, Any]:
    metrics = report["metrics"]
    keys = ("accuracy_mean", "accuracy_sem", "accuracy_std", "val_mean", "val_std", "far_mean", "auc", "eer")
    return {key: metrics.get(key) for key in keys} | {"n_pairs": report["n_pairs"], "images": report["images"]}


@dataclasses.dataclass
class FormatResult:
    """One model format on the LFW protocol: its metrics, and its parity with the Keras reference."""

    label: str
    size_bytes: int | None
    metrics: dict[str, Any]
    parity: dict[str, float] | None
    images_per_second: float


def evaluate_tflite(source: ModelSource, exports: dict[str, Any], pairs: str = "view2", alignment: str = "center",
                    subset: int | None = None, root: str | os.PathLike | None = None, num_threads: int | None = None,
                    batch_size: int = 32, progress: bool = True, reference_cache: str | None = None,
                    align_overrides: dict | None = None, log: Callable[[str], None] = print) -> list[FormatResult]:
    """The Keras model, then each TFLite export (``{variant: TFLiteExport or .tflite path}``), on LFW ``pairs``
    under ``root`` (the resolved LFW root; ``facenet_tf.data.lfw.load_pairs``).

    Returns one row per format; the Keras row has no parity (it is the reference). ``reference_cache``: an
    ``.npz`` file for the Keras embeddings — read when it holds this model's (same weights fingerprint), written
    otherwise — so repeated evaluations of new variants do not re-embed with Keras."""
    from facenet_tf.evaluation.lfw import evaluate_lfw
    from facenet_tf.export.tflite import tflite_embedder

    def run(embedder: Embedder) -> tuple[EmbeddingRecorder, dict]:
        recorder = EmbeddingRecorder(embedder)
        report = evaluate_lfw(recorder.embedder, pairs=pairs, root=root, alignment=alignment, subset=subset,
                              progress=progress, batch_size=batch_size, align_overrides=align_overrides)
        log(f"{embedder.name}: accuracy {report['metrics']['accuracy_mean']:.4f}, VAL "
            f"{report['metrics']['val_mean']:.4f} ({recorder.images_per_second:.1f} img/s)")
        return recorder, report

    reference = EmbeddingRecorder(keras_embedder(source.model, f"keras:{source.name}"))
    fingerprint = model_fingerprint(source.model) if reference_cache else ""
    if reference_cache and reference.load(reference_cache, fingerprint):
        log(f"Keras embeddings of {len(reference)} images read from {reference_cache}")
    report = evaluate_lfw(reference.embedder, pairs=pairs, root=root, alignment=alignment, subset=subset,
                          progress=progress, batch_size=batch_size, align_overrides=align_overrides)
    log(f"keras: accuracy {report['metrics']['accuracy_mean']:.4f}, VAL {report['metrics']['val_mean']:.4f}")
    if reference_cache and reference.images:
        reference.save(reference_cache, fingerprint)
    weights_bytes = int(sum(np.prod(v.shape) * np.dtype(v.dtype).itemsize for v in source.model.weights))
    rows = [FormatResult("keras float32", weights_bytes, _lfw_metrics(report), None, reference.images_per_second)]
    for variant, export in exports.items():
        path = Path(getattr(export, "path", export))
        recorder, report = run(tflite_embedder(path, num_threads, name=f"tflite:{variant}"))
        from facenet_tf.export.tflite import embedding_parity

        parity = embedding_parity(*reference.matched(recorder))
        rows.append(FormatResult(f"tflite {variant}", path.stat().st_size, _lfw_metrics(report), parity,
                                 recorder.images_per_second))
        log(f"  parity vs Keras over {parity['n']} images: max |diff| {parity['max_abs_difference']:.2e}, "
            f"min cosine {parity['min_cosine']:.6f}")
    return rows


def _percent(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}"


def _ratio(ratio: float) -> str:
    return "1×" if abs(ratio - 1) < 0.005 else f"{ratio:.2f}× smaller"


def _rate(value: float) -> str:
    return f"{value:.1f}" if np.isfinite(value) else "– (cached)"


def format_tflite_report(rows: list[FormatResult], command: str, pairs: str, alignment: str,
                         subset: int | None, model: str, notes: Iterable[str] = ()) -> str:
    """The markdown of ``results/export_tflite.md``."""
    base = rows[0]
    scope = f"LFW {pairs}" + (f", first {subset} same + {subset} different pairs per fold" if subset else "")
    lines = [
        f"# TFLite export of {model}: parity and LFW accuracy",
        "",
        f"Written by `{command}` on {datetime.date.today().isoformat()} ({machine_description()}; the CPU is "
        "shared with other jobs, so img/s is indicative only).",
        "",
        f"{scope}, {alignment} aligned crops ({base.metrics['images']} images, {base.metrics['n_pairs']} pairs), "
        "no flip; accuracy is the mean over the 10 folds ± standard error (threshold chosen on the other folds; "
        "for View 1 on pairsDevTrain), VAL at FAR = 1e-3 the fold mean. Parity: the format's embeddings against "
        "the Keras model's on every image of the protocol (int8 outputs dequantised and renormalised). Size: the "
        "file (Keras: its float32 weights).",
        "",
        "| format | size MB | vs float32 | max abs diff | min cosine | mean cosine | LFW accuracy % | Δ acc (points) "
        "| VAL@FAR=1e-3 % | Δ VAL (points) | AUC | img/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    float32_size = next((r.size_bytes for r in rows if r.label == "tflite float32"), base.size_bytes)
    for row in rows:
        m = row.metrics
        parity = row.parity or {}
        delta_acc = 100 * (m["accuracy_mean"] - base.metrics["accuracy_mean"])
        delta_val = 100 * (m["val_mean"] - base.metrics["val_mean"])
        lines.append(
            f"| {row.label} | {row.size_bytes / 1e6:.2f} | {_ratio(float32_size / row.size_bytes)} | "
            + (f"{parity['max_abs_difference']:.2e} | {parity['min_cosine']:.6f} | {parity['mean_cosine']:.6f} | "
               if parity else "reference | – | – | ")
            + f"{_percent(m['accuracy_mean'])} ± {_percent(m['accuracy_sem'])} | "
            + ("–" if row.parity is None else f"{delta_acc:+.2f}")
            + f" | {_percent(m['val_mean'])} | " + ("–" if row.parity is None else f"{delta_val:+.2f}")
            + f" | {m['auc']:.4f} | {_rate(row.images_per_second)} |")
    lines += ["", *[f"- {note}" for note in notes]]
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------------------------------ 128-byte embeddings


@dataclasses.dataclass
class Int8Evaluation:
    """``float``: metrics of the float embeddings; ``scales``: per scale, its stats and metrics."""

    model: str
    pairs: str
    alignment: str
    subset: int | None
    n_pairs: int
    images: int
    float_metrics: dict[str, Any]
    scales: list[dict[str, Any]]
    distance_check: dict[str, float]


def evaluate_int8_embeddings(embedder: Embedder, scales: Iterable[float] = (FULL_RANGE_SCALE, 190.5, DEFAULT_SCALE,
                                                                           317.5, 381.0),
                             pairs: str = "view2", alignment: str = "center", subset: int | None = None,
                             root: str | os.PathLike | None = None, batch_size: int = 64, progress: bool = True,
                             align_overrides: dict | None = None,
                             log: Callable[[str], None] = print) -> Int8Evaluation:
    """LFW ``pairs`` (a k-fold protocol: ``view2`` or a pairs file) with float embeddings and with their int8
    codes at each scale, the distances of the codes computed in integer arithmetic. ``root``: the resolved LFW
    root (``facenet_tf.data.lfw.load_pairs``)."""
    from facenet_tf.align import AlignConfig, align_images
    from facenet_tf.evaluation import verification
    from facenet_tf.evaluation.lfw import evaluate_lfw, load_pair_sets

    if pairs == "view1":
        raise ValueError("evaluate_int8_embeddings runs a k-fold protocol; use pairs='view2' (or a pairs file)")
    recorder = EmbeddingRecorder(embedder)
    report = evaluate_lfw(recorder.embedder, pairs=pairs, root=root, alignment=alignment, subset=subset,
                          progress=progress, batch_size=batch_size, align_overrides=align_overrides)
    # The same crops again (from the alignment cache) -> the recorded float embeddings, row per image.
    pair_arrays = load_pair_sets(pairs, root, subset)[0]  # the same tree evaluate_lfw read
    files = sorted(set(pair_arrays.paths_a + pair_arrays.paths_b))
    position = {path: i for i, path in enumerate(files)}
    config = AlignConfig(mode=alignment, output_size=embedder.input_size, **(align_overrides or {}))
    embeddings = recorder.lookup(align_images(files, config=config, progress=False).images)
    index_a = np.array([position[p] for p in pair_arrays.paths_a])
    index_b = np.array([position[p] for p in pair_arrays.paths_b])
    float_distances = verification.squared_l2(embeddings[index_a], embeddings[index_b])
    float_result = verification.evaluate_verification(float_distances, pair_arrays.is_same, pair_arrays.folds)
    if abs(float_result.accuracy_mean - report["metrics"]["accuracy_mean"]) > 1e-12:
        raise RuntimeError("re-computed float distances disagree with evaluate_lfw's: the pairs did not line up")
    rows = []
    worst_difference = 0.0
    for scale in scales:
        codes = quantize_embeddings(embeddings, scale)
        distances = int8_squared_distances(codes[index_a], codes[index_b], scale)
        dequantized = codes.astype(np.float32) / np.float32(scale)
        float_of_codes = verification.squared_l2(dequantized[index_a], dequantized[index_b])
        worst_difference = max(worst_difference, float(np.abs(distances - float_of_codes).max()))
        result = verification.evaluate_verification(distances, pair_arrays.is_same, pair_arrays.folds)
        metrics = result.to_dict()
        rows.append({**quantization_stats(embeddings, scale).to_dict(),
                     "max_distance_error": float(np.abs(distances - float_distances).max()),
                     "accuracy_mean": metrics["accuracy_mean"], "accuracy_sem": metrics["accuracy_sem"],
                     "val_mean": metrics["val_mean"], "auc": metrics["auc"], "eer": metrics["eer"]})
        log(f"scale {scale:g}: accuracy {metrics['accuracy_mean']:.4f} (float {float_result.accuracy_mean:.4f}), "
            f"clipped {rows[-1]['clipped_fraction']:.2e}")
    return Int8Evaluation(embedder.name, pairs, alignment_label(config), subset, len(pair_arrays.is_same), len(files),
                          _lfw_metrics(report), rows,
                          {"max |integer/scale^2 - float distance of the dequantised codes|": worst_difference})


def format_int8_report(result: Int8Evaluation, command: str, chosen_scale: float = DEFAULT_SCALE) -> str:
    """The markdown of ``results/export_int8_embeddings.md``."""
    base = result.float_metrics
    scope = f"LFW {result.pairs}" + (f", first {result.subset} same + {result.subset} different pairs per fold"
                                     if result.subset else "")
    lines = [
        "# 128-byte embeddings: int8 codes vs float32 on LFW",
        "",
        f"Written by `{command}` on {datetime.date.today().isoformat()} ({machine_description()}).",
        "",
        f"Model {result.model}; {scope}, {result.alignment} aligned crops ({result.images} images, {result.n_pairs} "
        "pairs), no flip. Codes q = clip(round(x · scale), -127, 127); distance Σ(q_a − q_b)² / scale² computed "
        "in integers; the same 10-fold protocol as the float baseline (accuracy: mean ± standard error).",
        "",
        f"Float32 embeddings: accuracy {_percent(base['accuracy_mean'], 3)} ± {_percent(base['accuracy_sem'], 3)} %, "
        f"VAL@FAR=1e-3 {_percent(base['val_mean'], 2)} %, AUC {base['auc']:.5f}.",
        "",
        "| scale | range ± | largest component | components clipped | max round-trip error | max distance error "
        "| accuracy % | Δ accuracy (points) | VAL@FAR=1e-3 % | Δ VAL (points) | AUC |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in result.scales:
        mark = " (chosen)" if abs(row["scale"] - chosen_scale) < 1e-9 else ""
        lines.append(
            f"| {row['scale']:g}{mark} | {127 / row['scale']:.3f} | {row['max_abs_component']:.3f} | "
            f"{row['clipped_fraction']:.2e} | {row['max_abs_error']:.4f} | {row['max_distance_error']:.4f} | "
            f"{_percent(row['accuracy_mean'], 3)} ± {_percent(row['accuracy_sem'], 3)} | "
            f"{100 * (row['accuracy_mean'] - base['accuracy_mean']):+.3f} | {_percent(row['val_mean'], 2)} | "
            f"{100 * (row['val_mean'] - base['val_mean']):+.2f} | {row['auc']:.5f} |")
    (check_name, check_value), = result.distance_check.items()
    lines += ["", f"- Integer arithmetic check: {check_name} = {check_value:.2e} over all pairs and scales."]
    return "\n".join(lines) + "\n"
