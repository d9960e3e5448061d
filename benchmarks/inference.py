"""Inference speed and size of every zoo model in every export format, on this CPU.

    .venv/bin/python benchmarks/inference.py --models=nns2,nn4,inception_resnet_v1 --output=results/inference_cpu.md
    .venv/bin/python benchmarks/inference.py --models=nns2 --formats=keras,int8 --threads=1
    .venv/bin/python benchmarks/inference.py --formats= --frozen_graph=casia_webface \
        --output=results/inference_folding_cpu.md

For each model (random weights, the paper's input size, 128-D; speed does not depend on the weights) and format
— Keras (one tf.function), Keras with batch norm folded into the convolutions (``keras_folded``:
``facenet_tf.models.folding.fold_batch_norm``), the serving SavedModel (its ``embed_images`` signature), and each
TFLite variant in ``ai_edge_litert`` with 1 and 2 interpreter threads — it measures:

- latency at batch 1: the median of ``--latency_runs`` calls, after warm-up;
- throughput at batch ``--batch_size``: the best of ``--throughput_runs`` calls (the best, because other jobs on a
  shared CPU only ever slow a run down), in images/s;
- size on disk: the .keras file, the SavedModel directory, the .tflite file;
- achieved multiply-adds per second at that throughput (``count_flops``: the model's multiply-adds per image) as
  a fraction of this machine's peak, measured in the same run as the best of several float32 matmuls
  (``--matmul_size``², TensorFlow, all cores: 2·n³ FLOP = n³ multiply-adds each) before every model and at the
  end (the best, since contention only lowers it).

TensorFlow uses every core (its default); TFLite rows say their thread count. int8 variants are calibrated on a
few random images (fine for speed). Prints a markdown table; ``--output`` writes it with the command and machine.

``--frozen_graph`` (a ``.pb`` path, or a weights-registry name such as ``casia_webface``: davidsandberg's frozen
TensorFlow 1 Inception-ResNet-v1, batch norms already folded into its convolutions) adds a second table: the graph
(imported into a ``tf.function``, its input's fixed batch of 1 freed, see ``frozen_graph_function``) against our
Keras Inception-ResNet-v1 of the same embedding size at the graph's input size — as built, folded, folded with the
ReLUs fused into the convolutions, and folded then frozen to constants — measured interleaved (every round calls
each of them once, in a rotating order) at batch 1 and at ``--batch_size``. Each gets the same raw 0-255 images:
the graph's standardisation ``(x - 127.5) / 128`` runs inside its timed function, ours is the model's first layer.
The speed ratio of a row is the median over rounds of (graph time / row time) in the same round, so load that
drifts between rounds cancels out.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses  # noqa: E402
import datetime  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

FORMATS = ("keras", "keras_folded", "saved_model", "float32", "float16", "dynamic_int8", "int8")

_MODELS = flags.DEFINE_list("models", None, "Zoo models to measure (default: all).")
_FORMATS = flags.DEFINE_list("formats", list(FORMATS), f"Formats, from {list(FORMATS)} (the last four: TFLite); "
                             "empty: no format table.")
_THREADS = flags.DEFINE_list("threads", ["1", "2"], "TFLite interpreter thread counts.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Batch size of the throughput measurement.")
_LATENCY_RUNS = flags.DEFINE_integer("latency_runs", 15, "Timed batch-1 calls per row (median reported).")
_THROUGHPUT_RUNS = flags.DEFINE_integer("throughput_runs", 3, "Timed full-batch calls per row (best reported).")
_MATMUL = flags.DEFINE_integer("matmul_size", 4096, "Side of the square float32 matmul that measures the peak.")
_CALIBRATION = flags.DEFINE_integer("calibration_images", 8, "Random representative images for the int8 variant.")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the table (with command and machine) to this file.")
_FROZEN_GRAPH = flags.DEFINE_string(
    "frozen_graph", None, "A davidsandberg frozen graph (.pb path or weights-registry name, e.g. casia_webface) to "
    "compare with our Keras Inception-ResNet-v1, interleaved, at batch 1 and --batch_size.")
_GRAPH_INPUT = flags.DEFINE_string("graph_input", "input", "The frozen graph's image placeholder.")
_GRAPH_OUTPUT = flags.DEFINE_string("graph_output", "embeddings", "The frozen graph's embedding tensor.")
_ROUNDS = flags.DEFINE_integer("comparison_rounds", 60, "Interleaved rounds of the graph comparison at batch 1.")
_BATCH_ROUNDS = flags.DEFINE_integer("comparison_batch_rounds", 15,
                                     "Interleaved rounds of the graph comparison at --batch_size.")


@dataclasses.dataclass
class Row:
    model: str
    format: str
    threads: str
    size_bytes: int
    latency_ms: float
    images_per_second: float
    macs_per_image: int


def measure_peak(size: int, runs: int = 8) -> float:
    """Multiply-adds per second of the best of ``runs`` float32 ``size``×``size`` matmuls in TensorFlow."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a = tf.constant(rng.standard_normal((size, size), dtype=np.float32))
    b = tf.constant(rng.standard_normal((size, size), dtype=np.float32))
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.linalg.matmul(x, y)))
    matmul(a, b).numpy()  # warm-up (and tracing)
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return size ** 3 / best


def keras_function(model) -> Callable:
    """``model`` in inference mode as one ``tf.function`` (no XLA)."""
    import tensorflow as tf

    @tf.function(autograph=False)
    def call(images):
        return model(images, training=False)

    return call


def time_calls(call: Callable[[np.ndarray], object], images_1: np.ndarray, images_n: np.ndarray,
               latency_runs: int, throughput_runs: int) -> tuple[float, float]:
    """(median batch-1 latency in ms, best throughput at the full batch in images/s)."""
    call(images_1)  # warm-up: tracing, allocation
    call(images_n)
    latencies = []
    for _ in range(latency_runs):
        start = time.perf_counter()
        call(images_1)
        latencies.append(time.perf_counter() - start)
    best = float("inf")
    for _ in range(throughput_runs):
        start = time.perf_counter()
        call(images_n)
        best = min(best, time.perf_counter() - start)
    return 1000 * statistics.median(latencies), len(images_n) / best


def directory_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def measure_model(name: str, formats: list[str], threads: list[int], batch_size: int, latency_runs: int,
                  throughput_runs: int, calibration_images: int, log: Callable[[str], None]) -> list[Row]:
    import tensorflow as tf

    from facenet_tf.export.saved_model import export_saved_model
    from facenet_tf.export.tflite import TFLiteEmbeddingModel, convert_saved_model, write_plain_saved_model
    from facenet_tf.models import count_flops, create_model, fold_batch_norm

    model = create_model(name)
    macs = count_flops(model)
    height, width = int(model.input.shape[1]), int(model.input.shape[2])
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_size, height, width, 3)).astype(np.float32)
    one = images[:1]
    rows = []

    def add(fmt: str, thread_label: str, size: int, call: Callable[[np.ndarray], object]) -> None:
        latency, throughput = time_calls(call, one, images, latency_runs, throughput_runs)
        rows.append(Row(name, fmt, thread_label, size, latency, throughput, macs))
        log(f"{name:>20} {fmt:>12} threads {thread_label:>3}: {latency:8.2f} ms, {throughput:8.1f} img/s")

    tf_threads = f"tf {os.cpu_count()}"
    with tempfile.TemporaryDirectory(prefix="facenet_tf_bench_") as scratch:
        scratch = Path(scratch)
        for fmt in ("keras", "keras_folded"):
            if fmt not in formats:
                continue
            keras_model = fold_batch_norm(model) if fmt == "keras_folded" else model
            keras_model.save(scratch / f"{fmt}.keras")
            function = keras_function(keras_model)
            add(fmt, tf_threads, (scratch / f"{fmt}.keras").stat().st_size,
                lambda x, function=function: function(x).numpy())
        if "saved_model" in formats:
            export = export_saved_model(model, scratch / "saved_model", threshold=1.0, check=False)
            signature = tf.saved_model.load(str(export.path)).signatures["embed_images"]
            add("saved_model", tf_threads, directory_size(export.path),
                lambda x: signature(images=tf.constant(x))["embeddings"].numpy())
        variants = [f for f in formats if f not in ("keras", "keras_folded", "saved_model")]
        if variants:
            plain = write_plain_saved_model(model, scratch / "plain")
            representative = rng.uniform(0, 255, (calibration_images, height, width, 3)).astype(np.float32)
            representative[0, 0, 0] = (0, 255, 0)  # the int8 input range spans 0..255
            for variant in variants:
                flatbuffer = convert_saved_model(plain, variant, representative if variant == "int8" else None)
                for count in threads:
                    runner = TFLiteEmbeddingModel(flatbuffer, num_threads=count)
                    add(f"tflite {variant}", str(count), len(flatbuffer), runner.run)
    return rows


def cpu_vector_extensions() -> str:
    """Whether this CPU has AVX-512 (and which subsets), from /proc/cpuinfo's flags."""
    try:
        flag_line = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "vector extensions unknown (no /proc/cpuinfo flags)"
    cpu_flags = set(flag_line.split(":", 1)[1].split())
    avx512 = sorted(f for f in cpu_flags if f.startswith("avx512"))
    if avx512:
        return f"AVX-512: yes ({', '.join(avx512)})"
    return f"AVX-512: no (AVX2: {'yes' if 'avx2' in cpu_flags else 'no'})"


def frozen_graph_function(path: str | os.PathLike, input_name: str, output_name: str) -> Callable:
    """A frozen TensorFlow 1 graph as a concrete function ``images -> embeddings`` that takes any batch size.

    Graphs exported for OpenCV fix the batch at 1: in the input placeholder's shape and in the shape constants of
    their ``Reshape`` ops (``[1, -1]`` to flatten, ``[1, 512]`` after the bottleneck). Here the placeholder's
    batch becomes unknown and each ``Reshape`` with a constant shape gets its own constant ``[-1, *rest]``, where
    ``rest`` is its output shape at batch 1 (from importing the graph unchanged). Boolean placeholders (the
    ``phase_train`` of davidsandberg's training graphs) are fed ``False``. The rewrite is then checked: a batch of
    two images must give what the unchanged graph gives for each image alone, else ``ValueError``.
    """
    import tensorflow as tf
    from tensorflow.python.framework import tensor_util

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(Path(path).read_bytes())
    original = tf.compat.v1.GraphDef()
    original.CopyFrom(graph_def)
    with tf.Graph().as_default() as probe:
        tf.compat.v1.import_graph_def(original, name="")
    nodes = {node.name: node for node in graph_def.node}
    if input_name not in nodes or nodes[input_name].op != "Placeholder":
        raise ValueError(f"'{path}' has no placeholder named {input_name!r} (--graph_input).")
    booleans = [n.name for n in graph_def.node
                if n.op == "Placeholder" and n.attr["dtype"].type == tf.bool.as_datatype_enum]
    shape = nodes[input_name].attr["shape"].shape
    if shape.dim:
        shape.dim[0].size = -1
    for node in list(graph_def.node):
        if node.op != "Reshape" or nodes[node.input[1].split(":")[0]].op != "Const":
            continue
        out_shape = probe.get_operation_by_name(node.name).outputs[0].shape
        if out_shape.rank and out_shape[0] == 1 and out_shape[1:].is_fully_defined():
            constant = graph_def.node.add()
            constant.name, constant.op = f"{node.name}/batch_free_shape", "Const"
            constant.attr["dtype"].type = tf.int32.as_datatype_enum
            constant.attr["value"].tensor.CopyFrom(
                tensor_util.make_tensor_proto(np.array([-1, *out_shape[1:]], np.int32)))
            node.input[1] = constant.name

    def prune(definition: tf.compat.v1.GraphDef):
        def imports():
            feeds = {f"{name}:0": tf.constant(False) for name in booleans}
            tf.compat.v1.import_graph_def(definition, input_map=feeds, name="")

        wrapped = tf.compat.v1.wrap_function(imports, [])
        return wrapped.prune(feeds=f"{input_name}:0", fetches=f"{output_name}:0")

    function, unchanged = prune(graph_def), prune(original)
    height, width, channels = (d.size for d in shape.dim[1:])
    images = tf.constant(np.random.default_rng(0).standard_normal((2, height, width, channels)), tf.float32)
    batched = function(images).numpy()
    alone = np.concatenate([unchanged(images[i:i + 1]).numpy() for i in range(2)])
    if batched.shape != alone.shape or not np.allclose(batched, alone, atol=1e-5):
        raise ValueError(f"'{path}': freeing the batch size changed the graph's result (max abs difference "
                         f"{np.abs(batched - alone).max() if batched.shape == alone.shape else batched.shape}); "
                         "it does more than its Reshape constants fix at batch 1.")
    return function


@dataclasses.dataclass
class Timing:
    variant: str
    batch: int
    seconds: list[float]
    speed_vs_graph: float      # median over rounds of graph time / this time, in the same round


def interleaved_times(calls: dict[str, Callable[[object], object]], images, rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each of ``calls`` on ``images``: every round calls each once, the order rotating by one
    per round (so no variant always runs just after the same one), after two warm-up calls each."""
    for call in calls.values():
        call(images)
        call(images)
    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            calls[name](images)
            times[name].append(time.perf_counter() - start)
    return times


def compare_with_frozen_graph(graph_path: str | os.PathLike, input_name: str, output_name: str, batch_size: int,
                              rounds: int, batch_rounds: int, log: Callable[[str], None]) -> list[Timing]:
    """The frozen graph (twice: the spread of a row against an identical copy is the noise floor) against our
    Inception-ResNet-v1 as built, folded, folded with fused ReLUs, and folded and frozen to constants by
    ``facenet_tf.models.frozen_function`` (random weights, the graph's input and embedding size), interleaved.
    Each row's set-up time (building its function, freezing, and its first call at batch 1) is logged."""
    import keras
    import tensorflow as tf

    from facenet_tf.models import create_model, fold_batch_norm, frozen_function

    start = time.perf_counter()
    graph = frozen_graph_function(graph_path, input_name, output_name)
    log(f"frozen graph: read, batch freed and checked in {time.perf_counter() - start:.2f} s")
    height, width, channels = graph.inputs[0].shape[1:]
    embedding_dim = int(graph.outputs[0].shape[-1])
    model = create_model("inception_resnet_v1", input_shape=(height, width, channels), embedding_dim=embedding_dim,
                         preprocessing="fixed")
    folded = fold_batch_norm(model)
    log(f"folded {sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)} batch norms; "
        f"{len(model.layers)} -> {len(folded.layers)} layers")

    def graph_with_standardisation():
        @tf.function(autograph=False)
        def call(images):
            return graph((images - 127.5) / 128.0)

        return call

    makers = {
        "frozen graph (TF1, batch norm folded)": graph_with_standardisation,
        "frozen graph, a second copy (noise floor)": graph_with_standardisation,
        "keras": lambda: keras_function(model),
        "keras folded": lambda: keras_function(folded),
        "keras folded, ReLU fused into conv": lambda: keras_function(fold_batch_norm(model, fuse_activation=True)),
        "keras folded, frozen to constants (frozen_function)": lambda: frozen_function(folded),
    }
    rng = np.random.default_rng(0)
    one = tf.constant(rng.uniform(0, 255, (1, height, width, channels)), tf.float32)
    functions = {}
    for name, make in makers.items():
        start = time.perf_counter()
        functions[name] = make()
        tf.nest.flatten(functions[name](one))[0].numpy()
        log(f"{name}: set-up and first call {time.perf_counter() - start:.2f} s")
    calls = {name: (lambda x, f=f: tf.nest.flatten(f(x))[0].numpy()) for name, f in functions.items()}
    reference = "frozen graph (TF1, batch norm folded)"
    rng = np.random.default_rng(0)
    check = tf.constant(rng.uniform(0, 255, (2, height, width, channels)), tf.float32)
    ours = {name: call(check) for name, call in calls.items() if not name.startswith("frozen graph")}
    for name, out in ours.items():
        difference = np.abs(out - ours["keras"]).max()
        if difference > 1e-4:
            raise AssertionError(f"{name} differs from the Keras model by {difference}")
    timings = []
    for batch, count in ((1, rounds), (batch_size, batch_rounds)):
        images = tf.constant(rng.uniform(0, 255, (batch, height, width, channels)), tf.float32)
        for name in calls:
            if name == reference:
                continue
            # Each row against the graph alone, interleaved: with every row in one rotation oneDNN's primitive
            # cache (1,024 entries by default) cannot hold six Inception-ResNet-v1s, and evictions, not the
            # models, decide the ratios.
            times = interleaved_times({reference: calls[reference], name: calls[name]}, images, count)
            graph_times = np.array(times[reference])
            ratio = float(np.median(graph_times / np.array(times[name])))
            if not any(t.variant == reference and t.batch == batch for t in timings):
                timings.append(Timing(reference, batch, times[reference], 1.0))
            timings.append(Timing(name, batch, times[name], ratio))
            log(f"batch {batch:>3} {name:>40}: median {1000 * statistics.median(times[name]):8.2f} ms, "
                f"speed vs graph {ratio:.3f}")
    return timings


def format_comparison(timings: list[Timing]) -> str:
    lines = ["| model | batch | median ms | best ms | images/s (median) | speed vs frozen graph (median of per-round "
             "ratios) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for t in timings:
        median = statistics.median(t.seconds)
        lines.append(f"| {t.variant} | {t.batch} | {1000 * median:.1f} | {1000 * min(t.seconds):.1f} | "
                     f"{t.batch / median:.1f} | {t.speed_vs_graph:.3f} |")
    return "\n".join(lines)


def format_table(rows: list[Row], peak: float) -> str:
    lines = ["| model | format | threads | size MB | latency b=1 ms (median) | throughput img/s "
             f"(b={_BATCH.value}) | multiply-adds/image | GMAC/s | % of peak |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        achieved = row.macs_per_image * row.images_per_second
        lines.append(f"| {row.model} | {row.format} | {row.threads} | {row.size_bytes / 1e6:.2f} | "
                     f"{row.latency_ms:.2f} | {row.images_per_second:.1f} | {row.macs_per_image / 1e6:.0f}M | "
                     f"{achieved / 1e9:.2f} | {100 * achieved / peak:.1f} |")
    return "\n".join(lines)


def format_section(models: list[str], threads: list[int]) -> str:
    """The formats table of every model in ``models``, with the matmul peak."""
    peaks = []
    rows = []
    for name in models:  # the peak is measured before every model and at the end; the best counts
        peaks.append(measure_peak(_MATMUL.value))
        print(f"peak (float32 {_MATMUL.value}² matmul): {peaks[-1] / 1e9:.1f} G multiply-adds/s")
        rows += measure_model(name, _FORMATS.value, threads, _BATCH.value, _LATENCY_RUNS.value,
                              _THROUGHPUT_RUNS.value, _CALIBRATION.value, print)
    peaks.append(measure_peak(_MATMUL.value))
    peak = max(peaks)
    header = [
        "## Formats",
        "",
        f"Peak: best float32 {_MATMUL.value}×{_MATMUL.value} matmul in TensorFlow (all cores) = "
        f"{peak / 1e9:.1f} G multiply-adds/s ({2 * peak / 1e9:.1f} GFLOP/s), the best of the measurements before "
        f"each model and at the end ({', '.join(f'{p / 1e9:.1f}' for p in peaks)}). % of peak = "
        "multiply-adds/image × throughput / peak. TensorFlow rows use every core; TFLite rows the interpreter "
        "threads shown (one thread can reach at most 1/cores of the peak). The int8 and dynamic_int8 rows do "
        "integer multiply-adds, which these CPUs execute several times faster than float32 ones, so they can "
        "exceed 100 % of the float32 peak; a float row above 100 % means its kernels do fewer multiply-adds than "
        "the nominal (direct convolution) count (possibly Winograd-style 3×3 convolutions in oneDNN) or that "
        "other jobs slowed every peak measurement. Random weights, paper input sizes, 128-D embeddings. The CPU is "
        "shared with other engineers' jobs: latency is a median, throughput the best of the runs, and both are "
        "noisy (with contention, 2 threads can be slower than 1).",
        "",
    ]
    return "\n".join(header) + "\n" + format_table(rows, peak) + "\n"


def comparison_section() -> str:
    """The interleaved comparison with ``--frozen_graph`` (a path or a weights-registry name)."""
    graph_path = Path(_FROZEN_GRAPH.value)
    if not graph_path.is_file():
        from facenet_tf.models.weights import resolve_weights

        graph_path = resolve_weights(_FROZEN_GRAPH.value)
    timings = compare_with_frozen_graph(graph_path, _GRAPH_INPUT.value, _GRAPH_OUTPUT.value, _BATCH.value,
                                        _ROUNDS.value, _BATCH_ROUNDS.value, print)
    header = [
        "## Keras Inception-ResNet-v1 against the frozen TensorFlow 1 graph",
        "",
        f"Graph: `{graph_path.name}` ({_FROZEN_GRAPH.value}), run as an imported graph in a `tf.function` with its "
        "batch freed; ours: `inception_resnet_v1` with random weights, the graph's input and embedding sizes, "
        "`preprocessing=\"fixed\"` (the graph's `(x - 127.5) / 128` runs inside its timed function). Interleaved: "
        f"{_ROUNDS.value} rounds at batch 1, {_BATCH_ROUNDS.value} at batch {_BATCH.value} for each row against the "
        "graph alone (each round calls the two in alternating order; with all rows in one rotation oneDNN's "
        "primitive cache cannot hold six networks and evictions decide the ratios); the graph's times shown are "
        "those of its first pairing; speed vs frozen graph = median over rounds of graph time / row time "
        "(> 1: faster than the graph); the second copy of the graph shows how far from 1.000 noise alone moves a "
        "row. TensorFlow on every core, oneDNN on, no XLA. `keras folded`: `fold_batch_norm(model)`; `ReLU fused`: "
        "`fold_batch_norm(model, fuse_activation=True)`; `frozen to constants`: "
        "`facenet_tf.models.frozen_function(folded)`, the folded model with its variables made constants, as the "
        "graph's weights are, called through a `tf.function`.",
        "",
    ]
    return "\n".join(header) + "\n" + format_comparison(timings) + "\n"


def main(argv: list[str]) -> None:
    del argv
    from facenet_tf.export.evaluate import machine_description
    from facenet_tf.models import list_models

    models = _MODELS.value or list_models()
    unknown_models = sorted(set(models) - set(list_models()))
    unknown_formats = sorted(set(_FORMATS.value) - set(FORMATS))
    if unknown_models or unknown_formats:
        raise app.UsageError(f"unknown models {unknown_models} (choose from {list_models()}) or formats "
                             f"{unknown_formats} (choose from {list(FORMATS)})")
    try:
        threads = [int(t) for t in _THREADS.value]
    except ValueError:
        raise app.UsageError(f"--threads must be integers, got {_THREADS.value}")
    command = " ".join([".venv/bin/python", *(shlex.quote(a) for a in sys.argv)])
    sections = []
    if _FORMATS.value:
        sections.append(format_section(models, threads))
    if _FROZEN_GRAPH.value:
        sections.append(comparison_section())
    if not sections:
        raise app.UsageError("nothing to measure: give --formats and/or --frozen_graph")
    header = [
        "# Inference speed and size on CPU",
        "",
        f"Written by `{command}` on {datetime.date.today().isoformat()}; {machine_description()} at the end; "
        f"{cpu_vector_extensions()}.",
        "",
    ]
    text = "\n".join(header) + "\n" + "\n".join(sections)
    print()
    print(text)
    if _OUTPUT.value:
        from facenet_tf.atomic import write_file_atomically

        write_file_atomically(_OUTPUT.value, text.encode())
        print(f"wrote {_OUTPUT.value}")


if __name__ == "__main__":
    app.run(main)
