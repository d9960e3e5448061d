"""Small Keras layers the FaceNet networks need, each serialisable (``get_config``) so ``.keras`` files reload.

All are registered under the package name ``facenet_tf``; loading a ``.keras`` file that uses them only needs
``import facenet_tf.models`` first (or ``custom_objects``).
"""

from __future__ import annotations

import keras
from keras import ops

_PACKAGE = "facenet_tf"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class L2Normalize(keras.layers.Layer):
    """Projects each embedding onto the unit hypersphere: ``x / max(||x||_2, epsilon)`` (paper, "The embedding").

    Computed in float32 whatever the compute dtype, so mixed-precision models still return unit vectors.
    """

    def __init__(self, axis: int = -1, epsilon: float = 1e-10, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis
        self.epsilon = epsilon

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        squared_norm = ops.sum(ops.square(x), axis=self.axis, keepdims=True)
        return x * ops.rsqrt(ops.maximum(squared_norm, self.epsilon**2))

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype="float32")

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class L2Pooling(keras.layers.Layer):
    """L2 pooling (paper Table 2, "L2"): the root of the mean of squares over each window.

    ``sqrt(avg_pool(x^2) + epsilon)``; the epsilon keeps the gradient finite where a window is all zero (after
    ReLU that happens). Using the mean rather than the sum only rescales by the window size, which the following
    1x1 projection absorbs; the mean keeps the output on the scale of the input at borders, where 'same' padding
    shrinks the window.
    """

    def __init__(self, pool_size: int = 3, strides: int = 1, padding: str = "same", epsilon: float = 1e-6,
                 **kwargs):
        super().__init__(**kwargs)
        self.pool_size = pool_size
        self.strides = strides
        self.padding = padding
        self.epsilon = epsilon

    def call(self, inputs):
        mean_square = ops.average_pool(ops.square(inputs), self.pool_size, self.strides, self.padding)
        return ops.sqrt(mean_square + self.epsilon)

    def compute_output_shape(self, input_shape):
        return keras.layers.AveragePooling2D(self.pool_size, self.strides, self.padding).compute_output_shape(
            input_shape)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LocalResponseNormalization(keras.layers.Layer):
    """Local response normalisation across channels (paper Table 1 "rnorm", Table 2 "norm"; Krizhevsky et al.).

    ``x / (bias + alpha * sum_{|c'-c| <= depth_radius} x_{c'}^2) ^ beta``. Defaults are AlexNet's / GoogLeNet's
    (radius 2, i.e. a window of 5 channels, alpha 1e-4, beta 0.75, bias 1), with alpha divided by the window as in
    Caffe, which those networks were trained in.
    """

    def __init__(self, depth_radius: int = 2, bias: float = 1.0, alpha: float = 1e-4, beta: float = 0.75,
                 **kwargs):
        super().__init__(**kwargs)
        self.depth_radius = depth_radius
        self.bias = bias
        self.alpha = alpha
        self.beta = beta

    def call(self, inputs):
        window = 2 * self.depth_radius + 1
        if keras.backend.backend() != "tensorflow":
            return ops.cast(self.normalise_with_ops(ops.cast(inputs, "float32")), inputs.dtype)
        import tensorflow as tf  # TensorFlow's fused kernel; imported here so the zoo runs without TensorFlow

        x = tf.cast(inputs, tf.float32)
        y = tf.nn.local_response_normalization(x, depth_radius=self.depth_radius, bias=self.bias,
                                               alpha=self.alpha / window, beta=self.beta)
        return tf.cast(y, inputs.dtype)

    def normalise_with_ops(self, x):
        """The same normalisation in ``keras.ops`` (any backend): a sum of squares over a sliding channel window."""
        r = self.depth_radius
        window = 2 * r + 1
        squares = ops.pad(ops.square(x), [(0, 0)] * (len(x.shape) - 1) + [(r, r)])
        channels = x.shape[-1]
        total = sum(squares[..., k:k + channels] for k in range(window))
        return x * ops.power(self.bias + (self.alpha / window) * total, -self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "depth_radius": self.depth_radius, "bias": self.bias,
                "alpha": self.alpha, "beta": self.beta}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Maxout(keras.layers.Layer):
    """Maxout over groups of ``pool_size`` consecutive features (Goodfellow et al.; paper Table 1 fc1/fc2, p=2).

    Input (..., units * pool_size) -> output (..., units).
    """

    def __init__(self, pool_size: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = pool_size

    def build(self, input_shape):
        if input_shape[-1] % self.pool_size:
            raise ValueError(f"Maxout '{self.name}': the last dimension ({input_shape[-1]}) must be a multiple of "
                             f"pool_size ({self.pool_size}).")
        super().build(input_shape)

    def call(self, inputs):
        units = inputs.shape[-1] // self.pool_size
        grouped = ops.reshape(inputs, (*ops.shape(inputs)[:-1], units, self.pool_size))
        return ops.max(grouped, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (input_shape[-1] // self.pool_size,)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Prewhiten(keras.layers.Layer):
    """Per-image standardisation used by the open-source FaceNet models (davidsandberg/facenet ``prewhiten``).

    ``(x - mean(x)) / max(std(x), 1 / sqrt(x.size))`` over each image's pixels and channels, in float32.
    """

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        axes = (1, 2, 3)
        mean = ops.mean(x, axis=axes, keepdims=True)
        std = ops.std(x, axis=axes, keepdims=True)
        size = float(x.shape[1] * x.shape[2] * x.shape[3])
        return (x - mean) / ops.maximum(std, 1.0 / size**0.5)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype="float32")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ScaledResidual(keras.layers.Layer):
    """``shortcut + scale * residual`` — the residual scaling of Inception-ResNet (Szegedy et al. 2016).

    Replaces the Keras 2 ``Lambda`` layers of the original file with a serialisable layer.
    """

    def __init__(self, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, inputs):
        shortcut, residual = inputs
        return shortcut + self.scale * residual

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
