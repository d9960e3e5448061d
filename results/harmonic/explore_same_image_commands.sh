#!/usr/bin/env bash
# Harmonic recipe selection on LFW View 1 (session 3): the harmonic loss (candidates old, margin 0.2) plus
# --harmonic_same_image_weight=W (ours: + W * mean D(new_i, old_i)). Usage: explore_same_image_commands.sh W
# (phase 1 600 steps + phase 2 400 steps at lr 0.02 from runs/nns2_lfw_view1).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=".venv/bin/python"
W=$1
COMMON="--model=nns2 --identities_per_batch=30 --faces_per_identity=4 --extra_negatives=60 --crop_fraction=0.56 \
  --reduction=mean_over_pairs --checkpoint_every=100 --harmonic_with=inception_resnet_v1 --harmonic_weights=msceleb \
  --harmonic_candidates=old --harmonic_same_image_weight=$W"
$PY experiments/train.py --workdir=runs/hv1_si${W}_p1 $COMMON --steps=600 --harmonic_phase=embedding_layer \
  --init_from=runs/nns2_lfw_view1
$PY experiments/train.py --workdir=runs/hv1_si${W}_p2 $COMMON --steps=400 --learning_rate=0.02 --harmonic_phase=all \
  --init_from=runs/hv1_si${W}_p1
