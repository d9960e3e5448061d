#!/usr/bin/env bash
# Session 6: harmonic phase 1 solved in closed form (--harmonic_solver=least_squares, ours): the final projection of
# the pretrained Inception-ResNet-v1 (new) set to the ridge regression of the old nns2 model's embeddings on its
# 1,792 pooled features, over the training identities' centre crops and their mirror images.
#   probe  : experiments/harmonic_probe.py on View 1 (selects the target and the ridge strength), and the same
#            probe in the issue's regime (old = Inception-ResNet-v1, new = nns2's features).
#   view1  : the library path (experiments/train.py) on View 1's training identities, compared on DevTest with the
#            harmonic-loss phase 1 (runs/hv1_flip_p1) and phase 2 (GPU) models.
#   view2  : one run per half of View 2 (each on that half's training identities, against that half's old model),
#            reported with the earlier View 2 models.
#   detect : the same least-squares projection fitted on the MTCNN-aligned crops that evaluation uses (the probe,
#            saving the fitted models), View 1 then View 2 (selected target and ridge), and the View 2 report.
#   aligned: the library path on aligned crops (train.py --harmonic_fit_alignment=detect), View 1 and View 2.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=".venv/bin/python"
RIDGE=${RIDGE:-0.3}   # selected on View 1 by the probe (results/harmonic/probe/table.md)
COMMON=(--model=inception_resnet_v1 --identities_per_batch=30 --faces_per_identity=4 --extra_negatives=60
        --crop_fraction=0.56 --reduction=mean_over_pairs --checkpoint_every=50 --init_from=inception_resnet_v1
        --init_weights=msceleb --harmonic_phase=embedding_layer --harmonic_solver=least_squares
        --harmonic_ridge=$RIDGE --steps=0)
case "${1:-}" in
  probe)
    $PY experiments/harmonic_probe.py --ridge=0.0001,0.001,0.01,0.1,0.3,1,3 --output_dir=results/harmonic/probe
    $PY experiments/harmonic_probe.py --old=inception_resnet_v1@msceleb --features=runs/nns2_lfw_view1:auto \
      --ridge=0.001,0.01,0.1,0.3,1,3 --output_dir=results/harmonic/probe --tag=_nns2
    ;;
  view1)
    $PY experiments/train.py --workdir=runs/hv1_flip_lstsq "${COMMON[@]}" --harmonic_with=runs/nns2_lfw_view1
    # (p1_lstsq_detect: the model saved by the 'detect' stage; leave it out if that has not run yet)
    $PY experiments/harmonic_report.py --pairs=view1_test_cv --old=runs/nns2_lfw_view1 --old_weights= \
      --output_dir=results/harmonic --tag=_lstsq \
      --new=p1_triplet=runs/hv1_flip_p1,p2_gpu_both_w0=runs/hv1_flip_p2gpu_V1_both_w0_lr1e-4,p1_lstsq=runs/hv1_flip_lstsq,p1_lstsq_detect=runs/hv1_flip_lstsq_detect/image_ridge${RIDGE}_1.keras
    ;;
  view2)
    for half in A:1-5 B:6-10; do
      name=${half%%:*}; folds=${half#*:}
      $PY experiments/train.py --workdir=runs/v2${name}_flip_lstsq "${COMMON[@]}" --exclude_pairs=view2:folds=$folds \
        --harmonic_with=runs/v2${name}_alone
    done
    $PY experiments/harmonic_report.py --pairs=view2 --split_folds=5 --old="runs/v2A_alone|runs/v2B_alone" \
      --old_weights= --output_dir=results/harmonic_view2 --tag=_view2_lstsq \
      --new="p1_triplet=runs/v2A_flip_p1|runs/v2B_flip_p1,p2_gpu_both_w0=runs/v2A_flip_p2gpu_both|runs/v2B_flip_p2gpu_both,p1_lstsq=runs/v2A_flip_lstsq|runs/v2B_flip_lstsq"
    ;;
  detect)
    $PY experiments/harmonic_probe.py --features=inception_resnet_v1@msceleb:auto --ridge=$RIDGE --targets=image \
      --output_dir=results/harmonic/probe --tag=_saved --save_dir=runs/hv1_flip_lstsq_detect
    $PY experiments/harmonic_probe.py --features=inception_resnet_v1@msceleb:auto --old='runs/v2A_alone|runs/v2B_alone' \
      --exclude='view2:folds=1-5|view2:folds=6-10' --pairs=view2 --split_folds=5 --ridge=$RIDGE --targets=image \
      --output_dir=results/harmonic_view2/probe --tag=_view2 --save_dir=runs/v2_flip_lstsq_detect
    $PY experiments/harmonic_report.py --pairs=view2 --split_folds=5 --old="runs/v2A_alone|runs/v2B_alone" \
      --old_weights= --output_dir=results/harmonic_view2 --tag=_view2_lstsq_detect \
      --new="p1_lstsq_detect=runs/v2_flip_lstsq_detect/image_ridge${RIDGE}_1.keras|runs/v2_flip_lstsq_detect/image_ridge${RIDGE}_2.keras"
    ;;
  aligned)
    for half in A:1-5 B:6-10; do
      name=${half%%:*}; folds=${half#*:}
      $PY experiments/train.py --workdir=runs/v2${name}_flip_lstsq_aligned "${COMMON[@]}" \
        --harmonic_fit_alignment=detect --exclude_pairs=view2:folds=$folds --harmonic_with=runs/v2${name}_alone
    done
    $PY experiments/harmonic_report.py --pairs=view2 --split_folds=5 --old="runs/v2A_alone|runs/v2B_alone" \
      --old_weights= --output_dir=results/harmonic_view2 --tag=_view2_lstsq_aligned \
      --new="p1_lstsq_aligned=runs/v2A_flip_lstsq_aligned|runs/v2B_flip_lstsq_aligned"
    $PY experiments/train.py --workdir=runs/hv1_flip_lstsq_aligned "${COMMON[@]}" --harmonic_fit_alignment=detect \
      --harmonic_with=runs/nns2_lfw_view1
    $PY experiments/harmonic_report.py --pairs=view1_test_cv --old=runs/nns2_lfw_view1 --old_weights= \
      --output_dir=results/harmonic --tag=_lstsq_aligned --new=p1_lstsq_aligned=runs/hv1_flip_lstsq_aligned
    ;;
  *) echo "usage: $0 probe|view1|view2|detect|aligned" >&2; exit 2 ;;
esac
