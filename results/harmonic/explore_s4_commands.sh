#!/usr/bin/env bash
# Harmonic recipe selection on LFW View 1 (session 4): phase 2 with Adam (lr 1e-3) and the same-image pull
# (--harmonic_same_image_weight=W, ours), candidates old, from the candidates-old phase 1 model runs/hv1_old_p1
# (results/harmonic/explore_old_commands.sh).
#   explore_s4_commands.sh long W    2,000 steps, lr x0.1 at step 1600  -> runs/hv1_adam_si$W   (W = 1 and 3 run)
#   explore_s4_commands.sh short W   600 steps, constant lr             -> runs/hv1_adam600_si$W (W = 1 run)
#   explore_s4_commands.sh report    View 1 DevTest with 10-fold thresholds (--pairs=view1_test_cv: these models
#                                    trained on DevTrain's identities, so DevTrain thresholds are biased for them)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=".venv/bin/python"
export TF_ENABLE_ONEDNN_OPTS=1
COMMON="--model=nns2 --identities_per_batch=30 --faces_per_identity=4 --extra_negatives=60 --crop_fraction=0.56 \
  --reduction=mean_over_pairs --checkpoint_every=200 --harmonic_with=inception_resnet_v1 --harmonic_weights=msceleb \
  --harmonic_candidates=old --optimizer=adam --learning_rate=0.001 --harmonic_phase=all --init_from=runs/hv1_old_p1"
case "$1" in
  long) $PY experiments/train.py --workdir=runs/hv1_adam_si$2 $COMMON --harmonic_same_image_weight=$2 --steps=2000 \
          --lr_decay_steps=1600 ;;
  short) $PY experiments/train.py --workdir=runs/hv1_adam600_si$2 $COMMON --harmonic_same_image_weight=$2 \
           --steps=600 ;;
  report) $PY experiments/harmonic_report.py --pairs=view1_test_cv --output_dir=results/harmonic --tag=_explore_s4 \
            --new=alone=runs/nns2_lfw_view1,old_p2_1000=runs/hv1_old_p2,si1_p2=runs/hv1_si1.0_p2,adam_si1=runs/hv1_adam_si1,adam_si3=runs/hv1_adam_si3,adam600_si1=runs/hv1_adam600_si1 ;;
  *) echo "usage: $0 long W | short W | report" >&2; exit 2 ;;
esac
