#!/usr/bin/env bash
# Session 3 View 1 comparison of the harmonic recipes (explore_margin_commands.sh 0.5 / 1.0,
# explore_anchors_commands.sh 1.0, explore_same_image_commands.sh 1.0) next to the trained-alone model and the
# best earlier recipe (candidates old, phase 2 1,000 steps); also writes diagnosis_explore_s3.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/python experiments/harmonic_report.py --pairs=view1 --output_dir=results/harmonic --tag=_explore_s3 \
  --new=alone=runs/nns2_lfw_view1,old_p2_1000=runs/hv1_old_p2,m0.5_p2=runs/hv1_m0.5_p2,m1.0_p2=runs/hv1_m1.0_p2,ab_m1.0_p1=runs/hv1_ab_m1.0_p1,ab_m1.0_p2=runs/hv1_ab_m1.0_p2,si1.0_p1=runs/hv1_si1.0_p1,si1.0_p2=runs/hv1_si1.0_p2
# phase 1 and phase 2 of the margin runs side by side (table_explore_margin.md)
.venv/bin/python experiments/harmonic_report.py --pairs=view1 --output_dir=results/harmonic --tag=_explore_margin \
  --new=m0.5_p1=runs/hv1_m0.5_p1,m0.5_p2=runs/hv1_m0.5_p2,m1.0_p1=runs/hv1_m1.0_p1,m1.0_p2=runs/hv1_m1.0_p2
