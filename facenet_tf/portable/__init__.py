"""Pieces of facenet-tf written in ``keras.ops`` and NumPy only, importable without TensorFlow, for training under
another Keras 3 backend (JAX on a GPU machine without TensorFlow: ``facenet_tf.harmonic.jax_runner``,
``experiments/harmonic_jax.py``).

Import the submodule you need (``from facenet_tf.portable import losses``). The model zoo
(``facenet_tf.models``) is backend-agnostic too.
"""
