#!/usr/bin/env bash
# Harmonic phase 2 of Inception-ResNet-v1 (the paper's regime: old = nns2, new = IRv1) trained on a GPU machine with
# JAX and no TensorFlow (experiments/harmonic_jax.py), session 5. Steps:
#   results/harmonic_view2/gpu/commands.sh pack          # here: stage View 1 and View 2 data (.device_stage*)
#   results/harmonic_view2/gpu/commands.sh train STAGE RUN VARIANT OUT   # on the GPU machine (KERAS_BACKEND=jax)
#   results/harmonic_view2/gpu/commands.sh unpack        # here: trained weights (under $TRAINED/<call>) -> runs/
#   results/harmonic_view2/gpu/commands.sh report        # here: View 1 (selection) and View 2 tables, ROC
# Variants (all Adam, 2,000 steps, rate x0.1 at step 1,600, batches 30x4+60, margin 0.2, seed 0):
#   old_w1_lr1e-4  candidates old + same-image pull W = 1, lr 1e-4
#   both_w0_lr1e-4 candidates both, no pull (the paper's loss), lr 1e-4   <- selected on View 1
#   old_w1_lr1e-3  candidates old + same-image pull W = 1, lr 1e-3
# The device tool carries at most 64 MiB per call: the stage went over in three calls (weights + old embeddings +
# manifest, images_0 + images_1, images_2) into /tmp/stage on the machine; each training call returned one model.
set -euo pipefail
cd "$(dirname "$0")/../../.."
PY=".venv/bin/python"
declare -A FLAGS=([old_w1_lr1e-4]="--candidates=old --same_image_weight=1 --learning_rate=1e-4"
                  [both_w0_lr1e-4]="--candidates=both --same_image_weight=0 --learning_rate=1e-4"
                  [old_w1_lr1e-3]="--candidates=old --same_image_weight=1 --learning_rate=1e-3")
case "${1:-}" in
  pack)
    $PY experiments/harmonic_jax.py --mode=pack --runs=A=runs/v2A_flip_p1,B=runs/v2B_flip_p1 \
      --stage_dir=.device_stage --jpeg_quality=88 --image_parts=3
    $PY experiments/harmonic_jax.py --mode=pack --runs=V1=runs/hv1_flip_p1 --stage_dir=.device_stage_v1 \
      --jpeg_quality=88 --image_parts=3 ;;
  train)  # STAGE RUN VARIANT OUT, on the GPU machine
    KERAS_BACKEND=jax python3 experiments/harmonic_jax.py --mode=train --stage_dir="$2" --run="$3" --steps=2000 \
      --lr_decay_steps=1600 --log_every=100 ${FLAGS[$4]} --output_dir="$5" ;;
  unpack)  # TRAINED=<folder with one sub-folder per trained model, named RUN_VARIANT>
    for v in old_w1_lr1e-4 both_w0_lr1e-4 old_w1_lr1e-3; do
      $PY experiments/harmonic_jax.py --mode=unpack --stage_dir=.device_stage_v1 --run=V1 \
        --trained_dir="$TRAINED/V1_$v" --workdir=runs/hv1_flip_p2gpu_V1_$v
    done
    for half in A B; do
      $PY experiments/harmonic_jax.py --mode=unpack --stage_dir=.device_stage --run=$half \
        --trained_dir="$TRAINED/${half}_old_w1_lr1e-4" --workdir=runs/v2${half}_flip_p2_gpu
      $PY experiments/harmonic_jax.py --mode=unpack --stage_dir=.device_stage --run=$half \
        --trained_dir="$TRAINED/${half}_both_w0_lr1e-4" --workdir=runs/v2${half}_flip_p2gpu_both
    done ;;
  report)
    $PY experiments/harmonic_report.py --pairs=view1_test_cv --old=runs/nns2_lfw_view1 --old_weights= \
      --output_dir=results/harmonic --tag=_flipped_gpu \
      --new="irv1_p1=runs/hv1_flip_p1,p2_old_w1_lr1e-4=runs/hv1_flip_p2gpu_V1_old_w1_lr1e-4,p2_both_w0_lr1e-4=runs/hv1_flip_p2gpu_V1_both_w0_lr1e-4,p2_old_w1_lr1e-3=runs/hv1_flip_p2gpu_V1_old_w1_lr1e-3"
    $PY experiments/harmonic_report.py --pairs=view2 --split_folds=5 --old="runs/v2A_alone|runs/v2B_alone" \
      --old_weights= --output_dir=results/harmonic_view2 --tag=_view2_gpu \
      --new="irv1_harmonic_p1=runs/v2A_flip_p1|runs/v2B_flip_p1,p2_old_w1_lr1e-4=runs/v2A_flip_p2_gpu|runs/v2B_flip_p2_gpu,p2_both_w0_lr1e-4=runs/v2A_flip_p2gpu_both|runs/v2B_flip_p2gpu_both" ;;
  *) echo "usage: $0 pack | train STAGE RUN VARIANT OUT | unpack | report" >&2; exit 2 ;;
esac
