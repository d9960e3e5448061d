#!/usr/bin/env bash
# Harmonic recipe selection on LFW View 1 (session 3): a larger margin for the harmonic loss.
# Diagnosis first: with margin 0.2 the View 1 model runs/hv1_old_p2 puts the same image only cos 0.24 from the old
# model's embedding (alone: 0.00) -- the hinge is met by a 0.1 cosine gap, so new embeddings stay far from the old
# space. A triplet is met when cos(a, p) - cos(a, n) > margin / 2; the old model itself leaves a wide gap, so a larger
# margin asks the new anchors to come much closer to their identity in the old space.
# Usage: explore_margin_commands.sh MARGIN   (phase 1 600 steps + phase 2 400 steps at lr 0.02, candidates old)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=".venv/bin/python"
M=$1
COMMON="--model=nns2 --identities_per_batch=30 --faces_per_identity=4 --extra_negatives=60 --crop_fraction=0.56 \
  --reduction=mean_over_pairs --checkpoint_every=100 --harmonic_with=inception_resnet_v1 --harmonic_weights=msceleb \
  --harmonic_candidates=old --margin=$M"
$PY experiments/train.py --workdir=runs/hv1_m${M}_p1 $COMMON --steps=600 --harmonic_phase=embedding_layer \
  --init_from=runs/nns2_lfw_view1
$PY experiments/train.py --workdir=runs/hv1_m${M}_p2 $COMMON --steps=400 --learning_rate=0.02 --harmonic_phase=all \
  --init_from=runs/hv1_m${M}_p1
