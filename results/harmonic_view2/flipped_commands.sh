#!/usr/bin/env bash
# View 2 in the paper's regime (its v2 is the better model): old = the nns2 trained alone per half of View 2
# (runs/v2A_alone, runs/v2B_alone from commands.sh), new = the pretrained Inception-ResNet-v1 with its final
# projection (Bottleneck + batch norm) re-initialised and trained alone with the harmonic loss (the paper's phase 1),
# on the same training identities as that half's old model. Each pair is scored by the old/new models of its half.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=".venv/bin/python"
STEPS=${1:-300}
for half in A:1-5 B:6-10; do
  name=${half%%:*}; folds=${half#*:}
  $PY experiments/train.py --workdir=runs/v2${name}_flip_p1 --model=inception_resnet_v1 --identities_per_batch=30 \
    --faces_per_identity=4 --extra_negatives=60 --crop_fraction=0.56 --reduction=mean_over_pairs \
    --checkpoint_every=50 --exclude_pairs=view2:folds=$folds --harmonic_with=runs/v2${name}_alone \
    --init_from=inception_resnet_v1 --init_weights=msceleb --harmonic_phase=embedding_layer --steps=$STEPS
done
$PY experiments/harmonic_report.py --pairs=view2 --split_folds=5 --old="runs/v2A_alone|runs/v2B_alone" --old_weights= \
  --output_dir=results/harmonic_view2 --tag=_view2_flipped \
  --new="irv1_pretrained=inception_resnet_v1@msceleb|inception_resnet_v1@msceleb,irv1_harmonic_p1=runs/v2A_flip_p1|runs/v2B_flip_p1"
