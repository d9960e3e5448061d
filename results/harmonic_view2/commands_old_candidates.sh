#!/usr/bin/env bash
# View 2, harmonic variant chosen on View 1 (results/harmonic/table_explore_old.md): --harmonic_candidates=old
# (every triplet: new anchor, old positive, old negative). Same halves and alone models as commands.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=".venv/bin/python"
HARMONIC="--harmonic_with=inception_resnet_v1 --harmonic_weights=msceleb --harmonic_candidates=old"
for half in A:1-5 B:6-10; do
  name=${half%%:*}; folds=${half#*:}
  $PY experiments/train.py --config=nns2_lfw_view1 --exclude_pairs=view2:folds=$folds --workdir=runs/v2${name}_old_p1 \
    --lr_decay_steps= --steps=600 $HARMONIC --harmonic_phase=embedding_layer --init_from=runs/v2${name}_alone
done
for half in A:1-5 B:6-10; do
  name=${half%%:*}; folds=${half#*:}
  $PY experiments/train.py --config=nns2_lfw_view1 --exclude_pairs=view2:folds=$folds --workdir=runs/v2${name}_old_p2 \
    --lr_decay_steps= --steps=400 --learning_rate=0.02 $HARMONIC --harmonic_phase=all --init_from=runs/v2${name}_old_p1
done
$PY experiments/harmonic_report.py --pairs=view2 --split_folds=5 --tag=_view2_old --output_dir=results/harmonic_view2 \
  --new="alone=runs/v2A_alone|runs/v2B_alone,old_phase1=runs/v2A_old_p1|runs/v2B_old_p1,old_phase2=runs/v2A_old_p2|runs/v2B_old_p2"
