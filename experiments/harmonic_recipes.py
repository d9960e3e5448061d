"""The harmonic-embedding studies of results/ as named recipes: every training, report and probe command they run.

    .venv/bin/python experiments/harmonic_recipes.py --list                     # studies and their steps
    .venv/bin/python experiments/harmonic_recipes.py --list --study=aligned     # one study, with its description
    .venv/bin/python experiments/harmonic_recipes.py --study=aligned --step=view2 --args=A,1         # prints them
    .venv/bin/python experiments/harmonic_recipes.py --study=aligned --step=view2 --args=A,1 --run   # runs them

A study is one experiment (its results page says what it found); a step is a list of command templates and the
parameters it takes (`view2 H W`; `STEPS=300`: optional, with that default). A template is shell words with {NAME}
fields: the shared flag groups (SHARED), the study's own groups, the step's parameters, and `folds` for a View 2
half H (A: the identities of folds 1-5 never trained on, B: those of folds 6-10). A template that needs H in a step
without an H parameter stands for two commands, half A then half B. A step given as a string names other steps of
the study, run in order. A list is one command's literal argument list. Commands are relative to the repository
root; --run runs them there, in order, and stops at the first failure.
"""

import argparse
import itertools
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HALVES = {"A": "1-5", "B": "6-10"}
GPU_VARIANTS = {  # harmonic_jax.py phase-2 variants (all Adam, 2,000 steps, x0.1 at step 1,600)
    "old_w1_lr1e-4": "--candidates=old --same_image_weight=1 --learning_rate=1e-4",
    "both_w0_lr1e-4": "--candidates=both --same_image_weight=0 --learning_rate=1e-4",
    "old_w1_lr1e-3": "--candidates=old --same_image_weight=1 --learning_rate=1e-3",
}
CHOICES = {"H": ("folds", HALVES), "VARIANT": ("variant_flags", GPU_VARIANTS)}  # parameter: (derived field, values)

SHARED = dict(
    TRAIN=".venv/bin/python experiments/train.py",
    REPORT=".venv/bin/python experiments/harmonic_report.py",
    PROBE=".venv/bin/python experiments/harmonic_probe.py",
    JAX=".venv/bin/python experiments/harmonic_jax.py",
    BATCHES="--identities_per_batch=30 --faces_per_identity=4 --extra_negatives=60",
    OLD_IRV1="--harmonic_with=inception_resnet_v1 --harmonic_weights=msceleb",
    NNS2="--model=nns2 {BATCHES} --crop_fraction=0.56 --reduction=mean_over_pairs",
    V1="{NNS2} --checkpoint_every=100 {OLD_IRV1}",  # the View 1 recipe selection on runs/nns2_lfw_view1
    ADAM="{OLD_IRV1} --harmonic_candidates=old --optimizer=adam --learning_rate=0.001 --harmonic_phase=all",
    ALIGNED="--model=nns2 {BATCHES} --reduction=mean_over_pairs --checkpoint_every=200 {ADAM} --steps=2000 "
            "--lr_decay_steps=1600 --harmonic_fit_alignment=detect",
    HALF="--config=nns2_lfw_view1 --exclude_pairs=view2:folds={folds}",
    IRV1_NEW="--model=inception_resnet_v1 {BATCHES} --crop_fraction=0.56 --reduction=mean_over_pairs "
             "--checkpoint_every=50",
    IRV1_P1="--init_from=inception_resnet_v1 --init_weights=msceleb --harmonic_phase=embedding_layer",
    FROM_ALONE="--harmonic_phase=embedding_layer --init_from=runs/nns2_lfw_view1",  # phase 1 from the nns2 alone
    SPLIT="--pairs=view2 --split_folds=5",
    OLD_NNS2_V1="--old=runs/nns2_lfw_view1 --old_weights=",
    OLD_NNS2_V2="{SPLIT} --old=runs/v2A_alone|runs/v2B_alone --old_weights= --output_dir=results/harmonic_view2",
)


def _both(pairs):
    """A --new value of one run per View 2 half: 'label=run ...' -> 'label=runs/v2A_<run>|runs/v2B_<run>,...'."""
    return ",".join(f"{label}=runs/v2A_{run}|runs/v2B_{run}" for label, run in (p.split("=") for p in pairs.split()))


WARM_VIEWS = """\
import logging
from facenet_tf.harmonic.old_embeddings import precompute_old_view_embeddings
from facenet_tf.train import TrainConfig
from facenet_tf.paths import lfw_dir
from facenet_tf.train.loop import split_identities
logging.basicConfig(level=logging.INFO)
root = lfw_dir()
for pairs in (("view1_test",), ("view2:folds=1-5",), ("view2:folds=6-10",)):
    config = TrainConfig.from_flags(workdir="runs/_warm", model="nns2", harmonic_with="inception_resnet_v1",
                                    harmonic_weights="msceleb", harmonic_fit_alignment="detect", harmonic_views=8,
                                    jitter=0.2, exclude_pairs=pairs)
    index, _, _ = split_identities(config, root)
    print(pairs, precompute_old_view_embeddings(config, index).shape, flush=True)
"""

STUDIES = {
    "two_phase": dict(doc="""\
        The first two-phase recipe on LFW View 1 (results/harmonic_lfw.md): phase 1 trains only the re-initialised
        embedding_fc of the trained nns2 runs/nns2_lfw_view1 with the harmonic loss against the pretrained
        Inception-ResNet-v1, phase 2 the whole network at lr 0.01. phase1: 200 steps; phase2: 200 steps from it;
        resume600: phase 1 resumed to 600 steps, then phase 2 (200 steps) from it. Run under nice -n 10.""",
        groups=dict(P="nice -n 10 {TRAIN}", P1="--checkpoint_every=100 {OLD_IRV1} {FROM_ALONE}",
                    P2="--checkpoint_every=100 --learning_rate=0.01 {OLD_IRV1} --harmonic_phase=all "
                       "--init_from=runs/harmonic_p1"),
        steps=dict(
            phase1=("", ["{P} --workdir=runs/harmonic_p1 {NNS2} --steps=200 {P1}"]),
            phase2=("", ["{P} --workdir=runs/harmonic_p2 {NNS2} --steps=200 {P2}"]),
            resume600=("", ["{P} --workdir=runs/harmonic_p1 {NNS2} --steps=600 {P1}",
                            "{P} --workdir=runs/harmonic_p2_from600 {NNS2} --steps=200 {P2}"]),
            all=("", "phase1 phase2 resume600"))),
    "explore_long_phase1": dict(doc="""\
        Recipe selection on LFW View 1 (new model runs/nns2_lfw_view1, trained without the View 1 test
        identities): a longer phase 1 (2,000 steps) and two phase-2 learning rates (0.05, 0.02; 600 steps each),
        evaluated on View 1 test (results/harmonic/table_explore.md).""",
        steps=dict(
            phase1=("", ["{TRAIN} --workdir=runs/hv1_p1_2000 {V1} --steps=2000 {FROM_ALONE}"]),
            phase2=("", [f"{{TRAIN}} --workdir=runs/hv1_p2_lr{lr} {{V1}} --steps=600 --learning_rate={lr} "
                         "--harmonic_phase=all --init_from=runs/hv1_p1_2000" for lr in ("0.05", "0.02")]),
            report=("", ["{REPORT} --pairs=view1 --output_dir=results/harmonic --tag=_explore "
                         "--new=p1_2000=runs/hv1_p1_2000,p2_lr0.05=runs/hv1_p2_lr0.05,p2_lr0.02=runs/hv1_p2_lr0.02"]),
            all=("", "phase1 phase2 report"))),
    "explore_old_candidates": dict(doc="""\
        Recipe selection on LFW View 1: --harmonic_candidates=old (every triplet: new anchor, old positive, old
        negative), phase 1 (600 steps) and phase 2 (400 steps, lr 0.02) from runs/nns2_lfw_view1, each reported on
        View 1 test (results/harmonic/table_explore_old.md); resume1000 keeps the 400-step phase-2 model as
        runs/hv1_old_p2_400.keras and resumes phase 2 to 1,000 steps.""",
        groups=dict(C="{V1} --harmonic_candidates=old", P2="{TRAIN} --workdir=runs/hv1_old_p2 {C}",
                    A2="--learning_rate=0.02 --harmonic_phase=all --init_from=runs/hv1_old_p1",
                    R="{REPORT} --pairs=view1 --output_dir=results/harmonic --tag=_explore_old "
                      "--new=old_p1_600=runs/hv1_old_p1"),
        steps=dict(
            phase1=("", ["{TRAIN} --workdir=runs/hv1_old_p1 {C} --steps=600 {FROM_ALONE}", "{R}"]),
            phase2=("", ["{P2} --steps=400 {A2}", "{R},old_p2_400=runs/hv1_old_p2"]),
            resume1000=("", ["cp runs/hv1_old_p2/embedding_model.keras runs/hv1_old_p2_400.keras",
                             "{P2} --steps=1000 {A2}",
                             "{R},old_p2_400=runs/hv1_old_p2_400.keras,old_p2_1000=runs/hv1_old_p2"]),
            all=("", "phase1 phase2 resume1000"))),
    "explore_margin": dict(doc="""\
        Recipe selection on LFW View 1: a larger margin M for the harmonic loss (candidates old; phase 1 600 steps
        + phase 2 400 steps at lr 0.02 from runs/nns2_lfw_view1). Diagnosis first: with margin 0.2 the View 1 model
        runs/hv1_old_p2 puts the same image only cos 0.24 from the old model's embedding (alone: 0.00) -- the hinge
        is met by a 0.1 cosine gap, so new embeddings stay far from the old space. A triplet is met when
        cos(a, p) - cos(a, n) > margin / 2; the old model itself leaves a wide gap, so a larger margin asks the new
        anchors to come much closer to their identity in the old space.""",
        groups=dict(C="{V1} --harmonic_candidates=old --margin={M}"),
        steps=dict(
            phase1=("M", ["{TRAIN} --workdir=runs/hv1_m{M}_p1 {C} --steps=600 {FROM_ALONE}"]),
            phase2=("M", ["{TRAIN} --workdir=runs/hv1_m{M}_p2 {C} --steps=400 --learning_rate=0.02 "
                          "--harmonic_phase=all --init_from=runs/hv1_m{M}_p1"]),
            all=("M", "phase1 phase2"))),
    "explore_anchors": dict(doc="""\
        Recipe selection on LFW View 1: old embeddings as anchors too (--harmonic_anchors=both) with positives and
        negatives from the other model (--harmonic_candidates=other): every triplet is new-old-old or old-new-new.
        Margin M; phase 1 600 steps + phase 2 P2 steps at lr 0.02 from runs/nns2_lfw_view1.""",
        groups=dict(C="{V1} --harmonic_candidates=other --harmonic_anchors=both --margin={M}"),
        steps=dict(
            phase1=("M", ["{TRAIN} --workdir=runs/hv1_ab_m{M}_p1 {C} --steps=600 {FROM_ALONE}"]),
            phase2=("M P2=400", ["{TRAIN} --workdir=runs/hv1_ab_m{M}_p2 {C} --steps={P2} --learning_rate=0.02 "
                                 "--harmonic_phase=all --init_from=runs/hv1_ab_m{M}_p1"]),
            all=("M P2=400", "phase1 phase2"))),
    "explore_same_image": dict(doc="""\
        Recipe selection on LFW View 1: the harmonic loss (candidates old, margin 0.2) plus
        --harmonic_same_image_weight=W (ours: + W * mean D(new_i, old_i)); phase 1 600 steps + phase 2 400 steps at
        lr 0.02 from runs/nns2_lfw_view1.""",
        groups=dict(C="{V1} --harmonic_candidates=old --harmonic_same_image_weight={W}"),
        steps=dict(
            phase1=("W", ["{TRAIN} --workdir=runs/hv1_si{W}_p1 {C} --steps=600 {FROM_ALONE}"]),
            phase2=("W", ["{TRAIN} --workdir=runs/hv1_si{W}_p2 {C} --steps=400 --learning_rate=0.02 "
                          "--harmonic_phase=all --init_from=runs/hv1_si{W}_p1"]),
            all=("W", "phase1 phase2"))),
    "explore_loss_variants": dict(doc="""\
        View 1 comparison of the loss variants (explore_margin 0.5 and 1.0, explore_anchors 1.0, explore_same_image
        1.0) next to the trained-alone model and the best earlier recipe (explore_old_candidates, phase 2 1,000
        steps). report: results/harmonic/table_explore_s3.md and diagnosis_explore_s3.md; report_margin: phase 1
        and phase 2 of the margin runs side by side (table_explore_margin.md).""",
        groups=dict(R="{REPORT} --pairs=view1 --output_dir=results/harmonic"),
        steps=dict(
            report=("", ["{R} --tag=_explore_s3 --new=alone=runs/nns2_lfw_view1,old_p2_1000=runs/hv1_old_p2,"
                         "m0.5_p2=runs/hv1_m0.5_p2,m1.0_p2=runs/hv1_m1.0_p2,ab_m1.0_p1=runs/hv1_ab_m1.0_p1,"
                         "ab_m1.0_p2=runs/hv1_ab_m1.0_p2,si1.0_p1=runs/hv1_si1.0_p1,si1.0_p2=runs/hv1_si1.0_p2"]),
            report_margin=("", ["{R} --tag=_explore_margin --new=m0.5_p1=runs/hv1_m0.5_p1,m0.5_p2=runs/hv1_m0.5_p2,"
                                "m1.0_p1=runs/hv1_m1.0_p1,m1.0_p2=runs/hv1_m1.0_p2"]),
            all=("", "report report_margin"))),
    "explore_adam_same_image": dict(doc="""\
        Recipe selection on LFW View 1: phase 2 with Adam (lr 1e-3) and the same-image pull
        (--harmonic_same_image_weight=W, ours), candidates old, from the candidates-old phase 1 model
        runs/hv1_old_p1 (explore_old_candidates). long W: 2,000 steps, lr x0.1 at step 1600 -> runs/hv1_adam_si<W>
        (reported for W = 1 and 3); short W: 600 steps, constant lr -> runs/hv1_adam600_si<W> (reported for W = 1);
        report: View 1 DevTest with 10-fold thresholds (--pairs=view1_test_cv: these models trained on DevTrain's
        identities, so DevTrain thresholds are biased for them).""",
        env="TF_ENABLE_ONEDNN_OPTS=1",
        groups=dict(C="{NNS2} --checkpoint_every=200 {ADAM} --init_from=runs/hv1_old_p1"),
        steps=dict(
            long=("W", ["{TRAIN} --workdir=runs/hv1_adam_si{W} {C} --harmonic_same_image_weight={W} --steps=2000 "
                        "--lr_decay_steps=1600"]),
            short=("W", ["{TRAIN} --workdir=runs/hv1_adam600_si{W} {C} --harmonic_same_image_weight={W} --steps=600"]),
            report=("", ["{REPORT} --pairs=view1_test_cv --output_dir=results/harmonic --tag=_explore_s4 "
                         "--new=alone=runs/nns2_lfw_view1,old_p2_1000=runs/hv1_old_p2,si1_p2=runs/hv1_si1.0_p2,"
                         "adam_si1=runs/hv1_adam_si1,adam_si3=runs/hv1_adam_si3,adam600_si1=runs/hv1_adam600_si1"]))),
    "flipped": dict(doc="""\
        The paper's regime (its v2 is the better model): old = the nns2 trained alone on LFW minus View 1 test
        (runs/nns2_lfw_view1, 81.7% on View 1 test), new = the pretrained Inception-ResNet-v1, whose final
        projection (Bottleneck + batch norm) is re-initialised and trained alone with the harmonic loss (phase 1,
        the paper's first step) for STEPS steps. Same training identities, batches and loss settings as the nns2
        runs. View 1 test report: results/harmonic/table_flipped.md.""",
        steps=dict(
            phase1=("STEPS=300", ["{TRAIN} --workdir=runs/hv1_flip_p1 {IRV1_NEW} --harmonic_with=runs/nns2_lfw_view1 "
                                  "{IRV1_P1} --steps={STEPS}"]),
            report=("", ["{REPORT} --pairs=view1 {OLD_NNS2_V1} --output_dir=results/harmonic --tag=_flipped "
                         "--new=irv1_p1=runs/hv1_flip_p1"]),
            all=("STEPS=300", "phase1 report"))),
    "view2": dict(doc="""\
        Harmonic embeddings on LFW View 2 with identity-disjoint new models (results/harmonic_view2.md). Two
        halves: model A never sees an identity of View 2 folds 1-5 and scores those folds; model B likewise for
        folds 6-10. Per half: alone: nns2 trained alone (a); phase1, phase2: harmonic phase 1 (embedding layer,
        600 steps) and phase 2 (all, 400 steps, lr 0.02) (b); report: table_view2.md.""",
        steps=dict(
            alone=("", ["{TRAIN} {HALF} --workdir=runs/v2{H}_alone"]),
            phase1=("", ["{TRAIN} {HALF} --workdir=runs/v2{H}_p1 --lr_decay_steps= --steps=600 {OLD_IRV1} "
                         "--harmonic_phase=embedding_layer --init_from=runs/v2{H}_alone"]),
            phase2=("", ["{TRAIN} {HALF} --workdir=runs/v2{H}_p2 --lr_decay_steps= --steps=400 --learning_rate=0.02 "
                         "{OLD_IRV1} --harmonic_phase=all --init_from=runs/v2{H}_p1"]),
            report=("", ["{REPORT} {SPLIT} --tag=_view2 --output_dir=results/harmonic_view2 --new="
                         + _both("alone=alone phase1=p1 phase2=p2")]),
            all=("", "alone phase1 phase2 report"))),
    "view2_old_candidates": dict(doc="""\
        View 2, the harmonic variant chosen on View 1 (explore_old_candidates, results/harmonic/table_explore_old.md):
        --harmonic_candidates=old (every triplet: new anchor, old positive, old negative). Same halves and alone
        models as the view2 study; report: table_view2_old.md.""",
        groups=dict(C="{OLD_IRV1} --harmonic_candidates=old"),
        steps=dict(
            phase1=("", ["{TRAIN} {HALF} --workdir=runs/v2{H}_old_p1 --lr_decay_steps= --steps=600 {C} "
                         "--harmonic_phase=embedding_layer --init_from=runs/v2{H}_alone"]),
            phase2=("", ["{TRAIN} {HALF} --workdir=runs/v2{H}_old_p2 --lr_decay_steps= --steps=400 "
                         "--learning_rate=0.02 {C} --harmonic_phase=all --init_from=runs/v2{H}_old_p1"]),
            report=("", ["{REPORT} {SPLIT} --tag=_view2_old --output_dir=results/harmonic_view2 --new="
                         + _both("alone=alone old_phase1=old_p1 old_phase2=old_p2")]),
            all=("", "phase1 phase2 report"))),
    "view2_adam_same_image": dict(doc="""\
        View 2, the explore_adam_same_image recipe chosen on View 1 (results/harmonic/table_explore_s4.md): from
        each half's candidates-old phase 1 model (runs/v2A_old_p1, runs/v2B_old_p1: view2_old_candidates), phase 2
        with Adam (lr 1e-3, x0.1 at step 1600) for 2,000 steps, candidates old, plus the same-image pull of weight W
        (ours). train W: both halves; report W: table_view2_s4.md.""",
        env="TF_ENABLE_ONEDNN_OPTS=1",
        steps=dict(
            train=("W", ["{TRAIN} {HALF} --workdir=runs/v2{H}_adam_si{W} --reduction=mean_over_pairs "
                         "--checkpoint_every=200 --steps=2000 --optimizer=adam --learning_rate=0.001 "
                         "--lr_decay_steps=1600 {OLD_IRV1} --harmonic_candidates=old --harmonic_same_image_weight={W} "
                         "--harmonic_phase=all --init_from=runs/v2{H}_old_p1"]),
            report=("W", ["{REPORT} {SPLIT} --tag=_view2_s4 --output_dir=results/harmonic_view2 --new="
                          + _both("alone=alone old_phase2=old_p2 adam_si{W}=adam_si{W}")]),
            all=("W", "train report"))),
    "view2_flipped": dict(doc="""\
        View 2 in the paper's regime (its v2 is the better model): old = the nns2 trained alone per half of View 2
        (runs/v2A_alone, runs/v2B_alone from the view2 study), new = the pretrained Inception-ResNet-v1 with its
        final projection (Bottleneck + batch norm) re-initialised and trained alone with the harmonic loss (the
        paper's phase 1) for STEPS steps, on the same training identities as that half's old model. Each pair is
        scored by the old/new models of its half (table_view2_flipped.md).""",
        steps=dict(
            phase1=("STEPS=300", ["{TRAIN} --workdir=runs/v2{H}_flip_p1 {IRV1_NEW} --exclude_pairs=view2:folds={folds} "
                                  "--harmonic_with=runs/v2{H}_alone {IRV1_P1} --steps={STEPS}"]),
            report=("", ["{REPORT} {OLD_NNS2_V2} --tag=_view2_flipped --new=irv1_pretrained=inception_resnet_v1@msceleb"
                         "|inception_resnet_v1@msceleb," + _both("irv1_harmonic_p1=flip_p1")]),
            all=("STEPS=300", "phase1 report"))),
    "view2_gpu": dict(doc="""\
        Harmonic phase 2 of Inception-ResNet-v1 (the paper's regime: old = nns2, new = IRv1) on a GPU machine with
        JAX and no TensorFlow (experiments/harmonic_jax.py), from the phase-1 models of flipped and view2_flipped.
        pack (here): stage the View 1 and View 2 data; train STAGE RUN VARIANT OUT (on the GPU machine); unpack
        TRAINED (here): the trained weights, TRAINED/<RUN>_<VARIANT>, -> runs/; report: View 1 (selection) and View
        2 tables, ROC. Variants (Adam, 2,000 steps, rate x0.1 at step 1,600, batches 30x4+60, margin 0.2, seed 0):
        old_w1_lr1e-4 and old_w1_lr1e-3 (candidates old + same-image pull W = 1, lr 1e-4 / 1e-3), both_w0_lr1e-4
        (candidates both, no pull: the paper's loss, lr 1e-4; selected on View 1). A stage larger than one 64 MiB
        transfer goes over in parts (weights + old embeddings + manifest, images_0 + images_1, images_2).""",
        groups=dict(U="{JAX} --mode=unpack --stage_dir=.device_stage", UV1="{JAX} --mode=unpack "
                    "--stage_dir=.device_stage_v1 --run=V1 --trained_dir={TRAINED}/V1_"),
        steps=dict(
            pack=("", ["{JAX} --mode=pack --runs=A=runs/v2A_flip_p1,B=runs/v2B_flip_p1 --stage_dir=.device_stage "
                       "--jpeg_quality=88 --image_parts=3",
                       "{JAX} --mode=pack --runs=V1=runs/hv1_flip_p1 --stage_dir=.device_stage_v1 --jpeg_quality=88 "
                       "--image_parts=3"]),
            train=("STAGE RUN VARIANT OUT", [
                "KERAS_BACKEND=jax python3 experiments/harmonic_jax.py --mode=train --stage_dir={STAGE} --run={RUN} "
                "--steps=2000 --lr_decay_steps=1600 --log_every=100 {variant_flags} --output_dir={OUT}"]),
            unpack=("TRAINED", [f"{{UV1}}{v} --workdir=runs/hv1_flip_p2gpu_V1_{v}" for v in GPU_VARIANTS] + [
                f"{{U}} --run={h} --trained_dir={{TRAINED}}/{h}_{v} --workdir=runs/v2{h}_flip_p2{w}"
                for h in HALVES for v, w in (("old_w1_lr1e-4", "_gpu"), ("both_w0_lr1e-4", "gpu_both"))]),
            report=("", [
                "{REPORT} --pairs=view1_test_cv {OLD_NNS2_V1} --output_dir=results/harmonic --tag=_flipped_gpu "
                "--new=irv1_p1=runs/hv1_flip_p1," + ",".join(
                    f"p2_{v}=runs/hv1_flip_p2gpu_V1_{v}" for v in GPU_VARIANTS),
                "{REPORT} {OLD_NNS2_V2} --tag=_view2_gpu --new="
                + _both("irv1_harmonic_p1=flip_p1 p2_old_w1_lr1e-4=flip_p2_gpu p2_both_w0_lr1e-4=flip_p2gpu_both")]))),
    "view2_lstsq": dict(doc="""\
        Harmonic phase 1 solved in closed form (--harmonic_solver=least_squares, ours): the final projection of the
        pretrained Inception-ResNet-v1 (new) set to the ridge regression of the old nns2 model's embeddings on its
        1,792 pooled features, over the training identities' centre crops and their mirror images; RIDGE 0.3 was
        selected on View 1 by the probe (results/harmonic/probe/table.md). probe: experiments/harmonic_probe.py on
        View 1 (target and ridge strength), and in the issue's regime (old = Inception-ResNet-v1, new = nns2's
        features). view1: the library path (train.py) on View 1's training identities, against the harmonic-loss
        phase 1 and phase 2 (view2_gpu) models on DevTest (p1_lstsq_detect: the model the detect step saves).
        view2: one run per half of View 2, against that half's old model. detect: the fit on the MTCNN-aligned
        crops that evaluation uses (the probe, saving the fitted models), View 1 then View 2, and the View 2 report.
        aligned: the library path on aligned crops (--harmonic_fit_alignment=detect), View 2 and View 1.""",
        groups=dict(C="{IRV1_NEW} {IRV1_P1} --harmonic_solver=least_squares --harmonic_ridge={RIDGE} --steps=0",
                    SAVED="runs/v2_flip_lstsq_detect/image_ridge{RIDGE}"),
        steps=dict(
            probe=("", ["{PROBE} --ridge=0.0001,0.001,0.01,0.1,0.3,1,3 --output_dir=results/harmonic/probe",
                        "{PROBE} --old=inception_resnet_v1@msceleb --features=runs/nns2_lfw_view1:auto "
                        "--ridge=0.001,0.01,0.1,0.3,1,3 --output_dir=results/harmonic/probe --tag=_nns2"]),
            view1=("RIDGE=0.3", [
                "{TRAIN} --workdir=runs/hv1_flip_lstsq {C} --harmonic_with=runs/nns2_lfw_view1",
                "{REPORT} --pairs=view1_test_cv {OLD_NNS2_V1} --output_dir=results/harmonic --tag=_lstsq "
                "--new=p1_triplet=runs/hv1_flip_p1,p2_gpu_both_w0=runs/hv1_flip_p2gpu_V1_both_w0_lr1e-4,"
                "p1_lstsq=runs/hv1_flip_lstsq,p1_lstsq_detect=runs/hv1_flip_lstsq_detect/image_ridge{RIDGE}_1.keras"]),
            view2=("RIDGE=0.3", [
                "{TRAIN} --workdir=runs/v2{H}_flip_lstsq {C} --exclude_pairs=view2:folds={folds} "
                "--harmonic_with=runs/v2{H}_alone",
                "{REPORT} {OLD_NNS2_V2} --tag=_view2_lstsq --new="
                + _both("p1_triplet=flip_p1 p2_gpu_both_w0=flip_p2gpu_both p1_lstsq=flip_lstsq")]),
            detect=("RIDGE=0.3", [
                "{PROBE} --features=inception_resnet_v1@msceleb:auto --ridge={RIDGE} --targets=image "
                "--output_dir=results/harmonic/probe --tag=_saved --save_dir=runs/hv1_flip_lstsq_detect",
                "{PROBE} --features=inception_resnet_v1@msceleb:auto --old=runs/v2A_alone|runs/v2B_alone "
                "--exclude=view2:folds=1-5|view2:folds=6-10 {SPLIT} --ridge={RIDGE} --targets=image "
                "--output_dir=results/harmonic_view2/probe --tag=_view2 --save_dir=runs/v2_flip_lstsq_detect",
                "{REPORT} {OLD_NNS2_V2} --tag=_view2_lstsq_detect "
                "--new=p1_lstsq_detect={SAVED}_1.keras|{SAVED}_2.keras"]),
            aligned=("RIDGE=0.3", [
                "{TRAIN} --workdir=runs/v2{H}_flip_lstsq_aligned {C} --harmonic_fit_alignment=detect "
                "--exclude_pairs=view2:folds={folds} --harmonic_with=runs/v2{H}_alone",
                "{REPORT} {OLD_NNS2_V2} --tag=_view2_lstsq_aligned --new="
                + _both("p1_lstsq_aligned=flip_lstsq_aligned"),
                "{TRAIN} --workdir=runs/hv1_flip_lstsq_aligned {C} --harmonic_fit_alignment=detect "
                "--harmonic_with=runs/nns2_lfw_view1",
                "{REPORT} --pairs=view1_test_cv {OLD_NNS2_V1} --output_dir=results/harmonic --tag=_lstsq_aligned "
                "--new=p1_lstsq_aligned=runs/hv1_flip_lstsq_aligned"]))),
    "aligned": dict(doc="""\
        Harmonic embeddings in the issue's regime (old = pretrained Inception-ResNet-v1, new = nns2), the new network
        trained on crops aligned as evaluation aligns them (--harmonic_fit_alignment=detect: MTCNN crops for both
        models, old embeddings of the old model's aligned crops); otherwise the explore_adam_same_image recipe: whole
        network, Adam 1e-3 (x0.1 at step 1,600), 2,000 steps, candidates old, same-image pull W, from the
        candidates-old phase 1 model (results/harmonic_aligned.md). view1 W: View 1 training identities; view2 H W:
        half H; report1: View 1 DevTest, 10-fold thresholds (table_view1.md); report2: View 2, each pair scored by
        the models that never saw its people (table_view2.md); probe1: the final projection of runs/hv1_al_si1
        re-solved in closed form (ridge, aligned crops, experiments/harmonic_probe.py) per ridge strength, View 1.""",
        env="TF_ENABLE_ONEDNN_OPTS=1",
        steps=dict(
            view1=("W", ["{TRAIN} --workdir=runs/hv1_al_si{W} {ALIGNED} --harmonic_same_image_weight={W} "
                         "--init_from=runs/hv1_old_p1"]),
            report1=("", ["{REPORT} --pairs=view1_test_cv --output_dir=results/harmonic_aligned --tag=_view1 "
                          "--new=alone=runs/nns2_lfw_view1,centre_si1=runs/hv1_adam_si1,centre_si3=runs/hv1_adam_si3,"
                          "aligned_si1=runs/hv1_al_si1,aligned_si3=runs/hv1_al_si3"]),
            view2=("H W", ["{TRAIN} --workdir=runs/v2{H}_al_si{W} {ALIGNED} --harmonic_same_image_weight={W} "
                           "--exclude_pairs=view2:folds={folds} --init_from=runs/v2{H}_old_p1"]),
            report2=("", ["{REPORT} {SPLIT} --output_dir=results/harmonic_aligned --tag=_view2 --new="
                          + _both("alone=alone centre_si1=adam_si1 aligned_si1=al_si1 aligned_si3=al_si3")]),
            probe1=("", ["{PROBE} --old=inception_resnet_v1@msceleb --features=runs/hv1_al_si1:auto "
                         "--ridge=0.01,0.1,0.3,1,3 --targets=image --output_dir=results/harmonic_aligned "
                         "--tag=_probe_view1"]))),
    "views": dict(doc="""\
        Harmonic embeddings in the issue's regime (old = pretrained Inception-ResNet-v1, new = nns2) with exact
        targets for augmented views (--harmonic_views=8 --jitter=0.2): the old model embeds 8 fixed views of each
        aligned training crop (the crop, its mirror, six zoom-ins of up to 20 % shifted by up to 10 % and mirrored
        at random) and each step shows the new model one view per image with that view's old embedding; otherwise
        the aligned recipe with W = 1 (results/harmonic_views.md). warm: the old embeddings of every view of every
        training image of View 1 and both View 2 halves (cached; training would compute them otherwise); view1,
        view2 H: train; report1: View 1 DevTest, 10-fold thresholds; report2: View 2, each pair scored by the models
        that never saw its people.""",
        env="TF_ENABLE_ONEDNN_OPTS=1",
        groups=dict(C="{ALIGNED} --harmonic_same_image_weight=1 --harmonic_views=8 --jitter=0.2"),
        steps=dict(
            warm=("", [[".venv/bin/python", "-c", WARM_VIEWS]]),
            view1=("", ["{TRAIN} --workdir=runs/hv1_views8 {C} --init_from=runs/hv1_old_p1"]),
            view2=("H", ["{TRAIN} --workdir=runs/v2{H}_views8 {C} --exclude_pairs=view2:folds={folds} "
                         "--init_from=runs/v2{H}_old_p1"]),
            report1=("", ["{REPORT} --pairs=view1_test_cv --output_dir=results/harmonic_views --tag=_view1 "
                          "--new=alone=runs/nns2_lfw_view1,aligned_si1=runs/hv1_al_si1,views8=runs/hv1_views8"]),
            report2=("", ["{REPORT} {SPLIT} --output_dir=results/harmonic_views --tag=_view2 --new="
                          + _both("alone=alone aligned_si1=al_si1 views8=views8")]))),
}


def _fill(template, fields):
    """The template with every {NAME} replaced (groups may hold fields themselves)."""
    text = template
    for _ in range(8):
        if "{" not in text:
            return text
        text = text.format(**fields)
    raise ValueError(f"unresolved fields in {template!r}")


def _commands(template, fields):
    """One template's argument lists: one, or one per View 2 half where it needs H and the step has none."""
    if isinstance(template, list):
        return [list(template)]
    try:
        return [shlex.split(_fill(template, fields))]
    except KeyError as missing:
        if missing.args[0] not in ("H", "folds") or "H" in fields:
            raise
    return [shlex.split(_fill(template, {**fields, "H": h, "folds": f})) for h, f in HALVES.items()]


def expand(study, step, args=()):
    """The argument lists of `step` of `study` with parameters `args`, in order (leading NAME=value: environment)."""
    if study not in STUDIES or step not in STUDIES[study]["steps"]:
        raise ValueError(f"no step {step!r} in study {study!r} (--list names them)")
    spec = STUDIES[study]
    params, body = spec["steps"][step]
    names = params.split()
    if not sum("=" not in n for n in names) <= len(args) <= len(names):
        raise ValueError(f"{study} {step} takes {params or 'no arguments'}, not {','.join(args)!r}")
    fields = {**SHARED, **spec.get("groups", {})}
    for name, value in itertools.zip_longest(names, args):
        name, _, default = name.partition("=")
        value = default if value is None else value
        if not value or re.search(r"[{}]", value):
            raise ValueError(f"{name}: not a value: {value!r}")
        fields[name] = shlex.quote(value)
        if name in CHOICES:
            field, table = CHOICES[name]
            if value not in table:
                raise ValueError(f"{name} is one of {', '.join(table)}, not {value!r}")
            fields[field] = table[value]
    templates = [t for s in body.split() for t in spec["steps"][s][1]] if isinstance(body, str) else body
    env = shlex.split(spec.get("env", ""))
    return [env + command for template in templates for command in _commands(template, fields)]


def run(command):
    """Runs one argument list (leading NAME=value words set the environment) from the repository root."""
    n = next(i for i, word in enumerate(command + [""]) if not re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", word))
    env = {**os.environ, **dict(word.split("=", 1) for word in command[:n])}
    return subprocess.run(command[n:], cwd=ROOT, env=env).returncode


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="the studies (or --study) and their steps")
    parser.add_argument("--study", help="a study name (--list names them)")
    parser.add_argument("--step", help="a step of --study")
    parser.add_argument("--args", default="", help="the step's parameters, comma-separated (e.g. A,1)")
    parser.add_argument("--run", action="store_true", help="run the commands, stopping at the first failure")
    a = parser.parse_args(argv)
    if a.study is not None and a.study not in STUDIES:
        parser.error(f"no study {a.study!r}; --list names them")
    if a.list or a.step is None:
        for name in [a.study] if a.study else STUDIES:
            print(name)
            if a.study:
                print(textwrap.indent(textwrap.fill(textwrap.dedent(STUDIES[name]["doc"]), 112), "    "))
            for step, (params, _) in STUDIES[name]["steps"].items():
                shown = " ".join(f"[{p}]" if "=" in p else p for p in params.split())
                print(f"  {step} {shown}".rstrip())
        return 0
    if a.study is None:
        parser.error("--step needs --study")
    try:
        commands = expand(a.study, a.step, a.args.split(",") if a.args else [])
    except ValueError as error:
        parser.error(str(error))
    for command in commands:
        print(shlex.join(command), flush=True)
        if a.run and (status := run(command)):
            print(f"harmonic_recipes.py: error: exit status {status}: {shlex.join(command)}", file=sys.stderr)
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
