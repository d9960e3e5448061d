#!/usr/bin/env bash
# Harmonic embeddings in the issue's regime (old = pretrained Inception-ResNet-v1, new = nns2), session 7: the new
# network trained on crops aligned as evaluation aligns them (--harmonic_fit_alignment=detect: MTCNN crops for
# both models, old embeddings of the old model's aligned crops). Otherwise session 4's recipe
# (results/harmonic/explore_s4_commands.sh): whole network, Adam 1e-3 (x0.1 at step 1,600), 2,000 steps,
# candidates old, same-image pull W, from the candidates-old phase 1 model.
#   commands.sh view1 W      View 1 training identities, from runs/hv1_old_p1 -> runs/hv1_al_si$W
#   commands.sh report1      View 1 DevTest, 10-fold thresholds -> results/harmonic_aligned/table_view1.md
#   commands.sh view2 H W    half H (A: folds 1-5 excluded, B: 6-10), from runs/v2${H}_old_p1 -> runs/v2${H}_al_si$W
#   commands.sh report2      View 2, each pair scored by the models that never saw its people -> table_view2.md
#   commands.sh probe1       the final projection of runs/hv1_al_si1 re-solved in closed form (ridge, on aligned
#                            crops; experiments/harmonic_probe.py) per ridge strength -> table_probe_view1.md (View 1)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=".venv/bin/python"
export TF_ENABLE_ONEDNN_OPTS=1
COMMON="--model=nns2 --identities_per_batch=30 --faces_per_identity=4 --extra_negatives=60 \
  --reduction=mean_over_pairs --checkpoint_every=200 --harmonic_with=inception_resnet_v1 --harmonic_weights=msceleb \
  --harmonic_candidates=old --optimizer=adam --learning_rate=0.001 --harmonic_phase=all --steps=2000 \
  --lr_decay_steps=1600 --harmonic_fit_alignment=detect"
case "$1" in
  view1) $PY experiments/train.py --workdir=runs/hv1_al_si$2 $COMMON --harmonic_same_image_weight=$2 \
           --init_from=runs/hv1_old_p1 ;;
  report1) $PY experiments/harmonic_report.py --pairs=view1_test_cv --output_dir=results/harmonic_aligned \
             --tag=_view1 --new=alone=runs/nns2_lfw_view1,centre_si1=runs/hv1_adam_si1,centre_si3=runs/hv1_adam_si3,aligned_si1=runs/hv1_al_si1,aligned_si3=runs/hv1_al_si3 ;;
  view2) case "$2" in A) folds=1-5 ;; B) folds=6-10 ;; *) echo "half: A or B" >&2; exit 2 ;; esac
         $PY experiments/train.py --workdir=runs/v2$2_al_si$3 $COMMON --harmonic_same_image_weight=$3 \
           --exclude_pairs=view2:folds=$folds --init_from=runs/v2$2_old_p1 ;;
  report2) $PY experiments/harmonic_report.py --pairs=view2 --split_folds=5 --output_dir=results/harmonic_aligned \
             --tag=_view2 --new="alone=runs/v2A_alone|runs/v2B_alone,centre_si1=runs/v2A_adam_si1|runs/v2B_adam_si1,aligned_si1=runs/v2A_al_si1|runs/v2B_al_si1,aligned_si3=runs/v2A_al_si3|runs/v2B_al_si3" ;;
  probe1) $PY experiments/harmonic_probe.py --old=inception_resnet_v1@msceleb --features=runs/hv1_al_si1:auto \
            --ridge=0.01,0.1,0.3,1,3 --targets=image --output_dir=results/harmonic_aligned --tag=_probe_view1 ;;
  *) echo "usage: $0 view1 W | report1 | view2 A|B W | report2 | probe1" >&2; exit 2 ;;
esac
