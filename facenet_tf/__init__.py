"""facenet-tf: FaceNet (Schroff, Kalenichenko, Philbin, CVPR 2015) for TensorFlow 2 / Keras 3.

    import facenet_tf as fn
    fn.verify("a.jpg", "b.jpg")      # see facenet_tf.api: verify, embed, identify, cluster, FaceNet

Importing the package turns on oneDNN kernels (``TF_ENABLE_ONEDNN_OPTS=1``) unless the user already chose,
because on AVX2 CPUs without AVX-512 TensorFlow leaves them off and runs 2-3x slower, and keeps TensorFlow's C++
log to errors (``TF_CPP_MIN_LOG_LEVEL=2``: no info lines, and no "Local rendezvous is aborting ...
INVALID_ARGUMENT" warnings when a detector stage has no candidate face, which are harmless). Both only act when
facenet_tf is imported before TensorFlow, and a value the user set wins.

TensorFlow is an extra (``pip install 'facenet-tf[cpu]'`` or ``'facenet-tf[gpu]'``), and ``import facenet_tf``
works without it: the model zoo, ``facenet_tf.portable`` and the JAX side of harmonic phase 2
(``facenet_tf.harmonic.jax_runner``, ``KERAS_BACKEND=jax``) need only Keras, NumPy, OpenCV and absl. The one-line
API below and the ``facenet-tf`` command say which extra to install when TensorFlow is missing
(``facenet_tf.quiet.require_tensorflow``).
"""

import os

from facenet_tf.quiet import require_tensorflow

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

_API = ("FaceNet", "verify", "embed", "identify", "cluster", "calibrate")


def __getattr__(name: str):
    """The one-line API (``facenet_tf.api``), imported on first use so that ``import facenet_tf`` stays light;
    without TensorFlow, a ``ModuleNotFoundError`` saying which extra to install."""
    if name in _API:
        require_tensorflow()
        from facenet_tf import api

        return getattr(api, name)
    raise AttributeError(f"module 'facenet_tf' has no attribute {name!r}")
