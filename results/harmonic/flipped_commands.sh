#!/usr/bin/env bash
# The paper's regime (its v2 is the better model): old = the nns2 trained alone on LFW minus View 1 test
# (runs/nns2_lfw_view1, 81.7% on View 1 test), new = the pretrained Inception-ResNet-v1, whose final projection
# (Bottleneck + batch norm) is re-initialised and trained alone with the harmonic loss (phase 1, the paper's
# first step). Same training identities, batches and loss settings as the nns2 runs. View 1 test report:
# results/harmonic/table_flipped.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=".venv/bin/python"
STEPS=${1:-300}
$PY experiments/train.py --workdir=runs/hv1_flip_p1 --model=inception_resnet_v1 --identities_per_batch=30 \
  --faces_per_identity=4 --extra_negatives=60 --crop_fraction=0.56 --reduction=mean_over_pairs --checkpoint_every=50 \
  --harmonic_with=runs/nns2_lfw_view1 --init_from=inception_resnet_v1 --init_weights=msceleb \
  --harmonic_phase=embedding_layer --steps=$STEPS
$PY experiments/harmonic_report.py --pairs=view1 --old=runs/nns2_lfw_view1 --old_weights= --output_dir=results/harmonic \
  --tag=_flipped --new=irv1_p1=runs/hv1_flip_p1
