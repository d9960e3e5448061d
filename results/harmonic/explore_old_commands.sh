#!/usr/bin/env bash
# Harmonic variant selection on LFW View 1: --harmonic_candidates=old (every triplet: new anchor, old positive, old
# negative), phase 1 (600 steps) and phase 2 (400 steps, lr 0.02) from runs/nns2_lfw_view1; View 1 test report in
# results/harmonic/table_explore_old.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=".venv/bin/python"
COMMON="--model=nns2 --identities_per_batch=30 --faces_per_identity=4 --extra_negatives=60 --crop_fraction=0.56 \
  --reduction=mean_over_pairs --checkpoint_every=100 --harmonic_with=inception_resnet_v1 --harmonic_weights=msceleb \
  --harmonic_candidates=old"
$PY experiments/train.py --workdir=runs/hv1_old_p1 $COMMON --steps=600 --harmonic_phase=embedding_layer \
  --init_from=runs/nns2_lfw_view1
$PY experiments/harmonic_report.py --pairs=view1 --output_dir=results/harmonic --tag=_explore_old \
  --new=old_p1_600=runs/hv1_old_p1
$PY experiments/train.py --workdir=runs/hv1_old_p2 $COMMON --steps=400 --learning_rate=0.02 --harmonic_phase=all \
  --init_from=runs/hv1_old_p1
$PY experiments/harmonic_report.py --pairs=view1 --output_dir=results/harmonic --tag=_explore_old \
  --new=old_p1_600=runs/hv1_old_p1,old_p2_400=runs/hv1_old_p2
# phase 2 resumed to 1000 steps (runs/hv1_old_p2 at step 400 copied first as runs/hv1_old_p2_400.keras)
cp runs/hv1_old_p2/embedding_model.keras runs/hv1_old_p2_400.keras
$PY experiments/train.py --workdir=runs/hv1_old_p2 $COMMON --steps=1000 --learning_rate=0.02 --harmonic_phase=all \
  --init_from=runs/hv1_old_p1
$PY experiments/harmonic_report.py --pairs=view1 --output_dir=results/harmonic --tag=_explore_old \
  --new=old_p1_600=runs/hv1_old_p1,old_p2_400=runs/hv1_old_p2_400.keras,old_p2_1000=runs/hv1_old_p2
