#!/usr/bin/env bash
# Harmonic recipe selection on LFW View 1 (new model: runs/nns2_lfw_view1, trained without View 1 test identities):
# a longer phase 1 and two phase-2 learning rates; evaluated on View 1 test (results/harmonic/table_explore.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=".venv/bin/python"
COMMON="--model=nns2 --identities_per_batch=30 --faces_per_identity=4 --extra_negatives=60 --crop_fraction=0.56 \
  --reduction=mean_over_pairs --checkpoint_every=100 --harmonic_with=inception_resnet_v1 --harmonic_weights=msceleb"
$PY experiments/train.py --workdir=runs/hv1_p1_2000 $COMMON --steps=2000 --harmonic_phase=embedding_layer \
  --init_from=runs/nns2_lfw_view1
for lr in 0.05 0.02; do
  $PY experiments/train.py --workdir=runs/hv1_p2_lr${lr} $COMMON --steps=600 --learning_rate=$lr \
    --harmonic_phase=all --init_from=runs/hv1_p1_2000
done
$PY experiments/harmonic_report.py --pairs=view1 --output_dir=results/harmonic --tag=_explore \
  --new=p1_2000=runs/hv1_p1_2000,p2_lr0.05=runs/hv1_p2_lr0.05,p2_lr0.02=runs/hv1_p2_lr0.02
