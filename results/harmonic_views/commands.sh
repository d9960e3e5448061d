#!/usr/bin/env bash
# Harmonic embeddings in the issue's regime (old = pretrained Inception-ResNet-v1, new = nns2), session 8: exact
# targets for augmented views (--harmonic_views=8 --jitter=0.2): the old model embeds 8 fixed views of each aligned
# training crop (the crop, its mirror, six zoom-ins of up to 20 % shifted by up to 10 % and mirrored at random) and
# each step shows the new model one view per image with that view's old embedding. Otherwise session 7's recipe
# (results/harmonic_aligned/commands.sh): aligned crops, whole network, Adam 1e-3 (x0.1 at step 1,600), 2,000
# steps, candidates old, same-image pull W = 1, from the candidates-old phase 1 model.
#   commands.sh warm          old embeddings of every view of every training image of View 1 and both View 2 halves
#                             (cached; the training runs would compute them otherwise)
#   commands.sh view1         View 1 training identities, from runs/hv1_old_p1 -> runs/hv1_views8
#   commands.sh view2 H       half H (A: folds 1-5 excluded, B: 6-10), from runs/v2${H}_old_p1 -> runs/v2${H}_views8
#   commands.sh report1       View 1 DevTest, 10-fold thresholds -> results/harmonic_views/table_view1.md
#   commands.sh report2       View 2, each pair scored by the models that never saw its people -> table_view2.md
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=".venv/bin/python"
export TF_ENABLE_ONEDNN_OPTS=1
COMMON="--model=nns2 --identities_per_batch=30 --faces_per_identity=4 --extra_negatives=60 \
  --reduction=mean_over_pairs --checkpoint_every=200 --harmonic_with=inception_resnet_v1 --harmonic_weights=msceleb \
  --harmonic_candidates=old --optimizer=adam --learning_rate=0.001 --harmonic_phase=all --steps=2000 \
  --lr_decay_steps=1600 --harmonic_fit_alignment=detect --harmonic_same_image_weight=1 --harmonic_views=8 --jitter=0.2"
case "$1" in
  warm) $PY - <<'PY'
import logging
from facenet_tf.train import TrainConfig
from facenet_tf.train.harmonic import precompute_old_view_embeddings
from facenet_tf.train.loop import split_identities
logging.basicConfig(level=logging.INFO)
for pairs in (("view1_test",), ("view2:folds=1-5",), ("view2:folds=6-10",)):
    config = TrainConfig(workdir="runs/_warm", model="nns2", harmonic_with="inception_resnet_v1",
                         harmonic_weights="msceleb", harmonic_fit_alignment="detect", harmonic_views=8, jitter=0.2,
                         exclude_pairs=pairs)
    index, _, _ = split_identities(config)
    print(pairs, precompute_old_view_embeddings(config, index).shape, flush=True)
PY
  ;;
  view1) $PY experiments/train.py --workdir=runs/hv1_views8 $COMMON --init_from=runs/hv1_old_p1 ;;
  view2) case "$2" in A) folds=1-5 ;; B) folds=6-10 ;; *) echo "half: A or B" >&2; exit 2 ;; esac
         $PY experiments/train.py --workdir=runs/v2$2_views8 $COMMON --exclude_pairs=view2:folds=$folds \
           --init_from=runs/v2$2_old_p1 ;;
  report1) $PY experiments/harmonic_report.py --pairs=view1_test_cv --output_dir=results/harmonic_views \
             --tag=_view1 --new=alone=runs/nns2_lfw_view1,aligned_si1=runs/hv1_al_si1,views8=runs/hv1_views8 ;;
  report2) $PY experiments/harmonic_report.py --pairs=view2 --split_folds=5 --output_dir=results/harmonic_views \
             --tag=_view2 --new="alone=runs/v2A_alone|runs/v2B_alone,aligned_si1=runs/v2A_al_si1|runs/v2B_al_si1,views8=runs/v2A_views8|runs/v2B_views8" ;;
  *) echo "usage: $0 warm | view1 | view2 A|B | report1 | report2" >&2; exit 2 ;;
esac
