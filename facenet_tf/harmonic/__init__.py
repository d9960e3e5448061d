"""Harmonic embeddings (paper, appendix "Harmonic embeddings"): a new model (v2) trained so that its embeddings can
be compared with those of a fixed old model (v1), with ``facenet_tf.losses.harmonic_triplet_loss``; and the
evaluation of the two models together.

The package sits above ``facenet_tf.train`` and ``facenet_tf.evaluation`` (tests/test_layering.py); neither imports
it. Its modules (import the one you need; this file imports nothing, so ``jax_runner`` loads without TensorFlow):

* ``training``: ``HarmonicTripletModel``, ``build_harmonic_model``, ``harmonic_training_dataset``, ``HarmonicHook``
  (what ``facenet_tf.train.loop.train`` calls for a harmonic ``TrainConfig``) and ``train``;
* ``models``: ``load_old_model``, the final projection of a network (``head_layers``, ``set_head_linear``);
* ``old_embeddings``: precomputed, cached old embeddings; ``crops``: ``AlignedCropLoader`` and the fixed views;
* ``least_squares``: phase 1 in closed form (``solve_head_least_squares``) and the ridge solve it shares with
  experiments/harmonic_probe.py;
* ``cross_model``: old-old / new-new / old-new verification and ``harmonic_diagnosis``;
* ``stage``, ``jax_runner``, ``packing``: phase 2 on a GPU machine with JAX and no TensorFlow
  (experiments/harmonic_jax.py).

The settings are ``facenet_tf.train.config.HarmonicConfig`` (``TrainConfig.harmonic``).

Two ways to get the old model's embeddings of a training batch (``HarmonicConfig.old_embeddings``):

* ``precomputed`` (default, the faster; results/harmonic_lfw.md has the timing table): the old model embeds every
  training image once, un-augmented (the centred ``crop_fraction`` crop resized to the old model's input size),
  cached per image on disk (``<cache>/harmonic/<key>.npz``, shared by runs on other splits), and the input
  pipeline hands each batch its rows.
  The new model still sees augmented crops (random crop, flip), the old embedding is that of the centre crop.
  With ``fit_alignment`` (``detect``, ``landmarks``, ``center``) both models see the training
  images aligned as evaluation aligns them (``facenet_tf.align``, each model at its own input size, crops cached
  on disk and held in memory for training): the old embeddings are of the old model's aligned crops, the new
  model trains on its aligned crops (``AlignedCropLoader``; random crop and flip as usual).
  With ``views`` = K > 1 the old model embeds K fixed augmented views of each aligned crop
  (``view_boxes``: the crop, its mirror, zoomed/shifted/mirrored variants) and every training step shows the new
  model one of them per image together with *that view's* old embedding: exact targets for augmented inputs, at K
  times the one-off cost, instead of the plain crop's embedding for every augmentation.
* ``in_step``: the old model runs inside every training step on the new model's augmented batch, resized to the
  old model's input size (aspect ratio not preserved); slow, since the old model is typically much larger.

Phases (``HarmonicConfig.phase``), as the paper: ``embedding_layer`` starts from an independently trained new
model (``init_from``: a training workdir, a ``.keras`` file or a zoo name with ``init_weights``, e.g. the pretrained
``inception_resnet_v1``), re-initialises its final projection randomly (``embedding_fc``; for
Inception-ResNet-v1 ``Bottleneck`` and its batch norm) and trains only that (every other layer frozen, batch norm
in inference mode); ``all`` trains the whole network (normally ``init_from`` = the phase-1 workdir).
"""
