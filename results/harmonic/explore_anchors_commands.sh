#!/usr/bin/env bash
# Harmonic recipe selection on LFW View 1 (session 3): old embeddings as anchors too (--harmonic_anchors=both) with
# positives and negatives from the other model (--harmonic_candidates=other): every triplet is new-old-old or
# old-new-new. Usage: explore_anchors_commands.sh MARGIN [PHASE2_STEPS]
# (phase 1 600 steps + phase 2 at lr 0.02 from runs/nns2_lfw_view1).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=".venv/bin/python"
M=$1
P2=${2:-400}
COMMON="--model=nns2 --identities_per_batch=30 --faces_per_identity=4 --extra_negatives=60 --crop_fraction=0.56 \
  --reduction=mean_over_pairs --checkpoint_every=100 --harmonic_with=inception_resnet_v1 --harmonic_weights=msceleb \
  --harmonic_candidates=other --harmonic_anchors=both --margin=$M"
$PY experiments/train.py --workdir=runs/hv1_ab_m${M}_p1 $COMMON --steps=600 --harmonic_phase=embedding_layer \
  --init_from=runs/nns2_lfw_view1
$PY experiments/train.py --workdir=runs/hv1_ab_m${M}_p2 $COMMON --steps=$P2 --learning_rate=0.02 --harmonic_phase=all \
  --init_from=runs/hv1_ab_m${M}_p1
