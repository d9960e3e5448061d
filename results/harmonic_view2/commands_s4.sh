#!/usr/bin/env bash
# View 2, the session-4 harmonic recipe chosen on View 1 (results/harmonic/table_explore_s4.md): from each half's
# candidates-old phase 1 model (runs/v2{A,B}_old_p1, commands_old_candidates.sh), phase 2 with Adam (lr 1e-3,
# x0.1 at step 1600) for 2,000 steps, candidates old, plus the same-image pull of weight W (ours).
# Usage: commands_s4.sh W   (train both halves, then the report)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=".venv/bin/python"
export TF_ENABLE_ONEDNN_OPTS=1
W=$1
HARMONIC="--harmonic_with=inception_resnet_v1 --harmonic_weights=msceleb --harmonic_candidates=old \
  --harmonic_same_image_weight=$W"
for half in A:1-5 B:6-10; do
  name=${half%%:*}; folds=${half#*:}
  $PY experiments/train.py --config=nns2_lfw_view1 --exclude_pairs=view2:folds=$folds --workdir=runs/v2${name}_adam_si${W} \
    --reduction=mean_over_pairs --checkpoint_every=200 --steps=2000 --optimizer=adam --learning_rate=0.001 --lr_decay_steps=1600 $HARMONIC \
    --harmonic_phase=all --init_from=runs/v2${name}_old_p1
done
$PY experiments/harmonic_report.py --pairs=view2 --split_folds=5 --tag=_view2_s4 --output_dir=results/harmonic_view2 \
  --new="alone=runs/v2A_alone|runs/v2B_alone,old_phase2=runs/v2A_old_p2|runs/v2B_old_p2,adam_si${W}=runs/v2A_adam_si${W}|runs/v2B_adam_si${W}"
