#!/usr/bin/env bash
# Harmonic embeddings on LFW View 2 with identity-disjoint new models (results/harmonic_view2.md).
# Two halves: model "A" never sees an identity of View 2 folds 1-5 and scores those folds; model "B" likewise for
# folds 6-10. Per half: nns2 trained alone (a), then harmonic phase 1 (embedding layer) and phase 2 (all) (b).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=".venv/bin/python"
HARMONIC="--harmonic_with=inception_resnet_v1 --harmonic_weights=msceleb"
for half in A:1-5 B:6-10; do
  name=${half%%:*}; folds=${half#*:}
  $PY experiments/train.py --config=nns2_lfw_view1 --exclude_pairs=view2:folds=$folds --workdir=runs/v2${name}_alone
done
for half in A:1-5 B:6-10; do
  name=${half%%:*}; folds=${half#*:}
  $PY experiments/train.py --config=nns2_lfw_view1 --exclude_pairs=view2:folds=$folds --workdir=runs/v2${name}_p1 \
    --lr_decay_steps= --steps=600 $HARMONIC --harmonic_phase=embedding_layer --init_from=runs/v2${name}_alone
done
for half in A:1-5 B:6-10; do
  name=${half%%:*}; folds=${half#*:}
  $PY experiments/train.py --config=nns2_lfw_view1 --exclude_pairs=view2:folds=$folds --workdir=runs/v2${name}_p2 \
    --lr_decay_steps= --steps=400 --learning_rate=0.02 $HARMONIC --harmonic_phase=all --init_from=runs/v2${name}_p1
done
$PY experiments/harmonic_report.py --pairs=view2 --split_folds=5 --tag=_view2 --output_dir=results/harmonic_view2 \
  --new="alone=runs/v2A_alone|runs/v2B_alone,phase1=runs/v2A_p1|runs/v2B_p1,phase2=runs/v2A_p2|runs/v2B_p2"
