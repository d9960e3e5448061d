"""Named training configurations (flag values), each stating how to run it, what it costs and what to expect.

    .venv/bin/python experiments/train.py --config=nns2_lfw_view1 --workdir=runs/nns2_lfw_view1
    .venv/bin/python experiments/train.py --config=nns2_lfw_view1 --quick --workdir=runs/smoke   # minutes

Explicit flags override a config's values. Expected figures are the ones measured in results/ (see
results/training_nns2_lfw.md for the command that produced them); runtimes are for the 2-core reference CPU.
"""

CONFIGS = {
    # nns2 (the paper's phone network) from scratch on LFW minus every View 1 test identity (4,786 identities,
    # 10,492 images, 1,262 identities with >= 2 images), then evaluated on View 1 test (never seen identities).
    # Crops: the centre 56% of the 250 px deep-funneled thumbnail (~140 px high), as eval's --crop_size=140.
    "nns2_lfw_view1": dict(
        model="nns2", exclude_pairs=["view1_test"], identities_per_batch=30, faces_per_identity=4,
        extra_negatives=60, crop_fraction=0.56, jitter=0.1, batch_norm=True, optimizer="adagrad",
        learning_rate=0.05, steps=1000, checkpoint_every=100, lr_decay_steps=[800],
        quick=dict(steps=40, checkpoint_every=20, lr_decay_steps=[]),
    ),
    # nn4 (96x96, 289M multiply-adds): the same data, ~14x the compute of nns2 per image.
    "nn4_lfw_view1": dict(
        model="nn4", exclude_pairs=["view1_test"], identities_per_batch=30, faces_per_identity=4,
        extra_negatives=60, crop_fraction=0.56, jitter=0.1, batch_norm=True, optimizer="adagrad",
        learning_rate=0.05, steps=600, checkpoint_every=50, lr_decay_steps=[500],
        quick=dict(steps=20, checkpoint_every=10, lr_decay_steps=[]),
    ),
}

# nns2_lfw_view1 with the paper's offline triplet selection instead of online semi-hard mining: every 50 steps
# the latest weights embed 1,800 training images (the paper's batch scale; 10 batches' worth, drawn like a batch)
# and each anchor takes its hard positive (argmax D(a,p)) and its semi-hard negative; the 50 steps after train on
# 60 of those triplets per batch (180 images, as nns2_lfw_view1). Same data, network, optimizer and steps, so the
# two compare (the paper found offline + online "inconclusive": add --strategy=semi_hard to mine the offline
# batches online too). A selection costs ~8% on top of its 50 steps (--quick: 0.8 s to embed 360
# images and select, ~1 s a step).
CONFIGS["nns2_lfw_view1_offline"] = dict(
    CONFIGS["nns2_lfw_view1"], strategy="offline", offline_every=50, offline_subset=1800, offline_negative="semi_hard",
    quick=dict(CONFIGS["nns2_lfw_view1"]["quick"], offline_every=10, offline_subset=360),
)

# ---------------------------------------------------------------------------------------------------------------------
# The training ablation (issue "The trainer, proven on the paper's claims"): experiments/ablation.py trains and scores
# each row below for each seed; results/training_claims.md puts the paper's claims beside what the rows find.
#     .venv/bin/python experiments/ablation.py                                 # every row, seeds 0 and 1
#     .venv/bin/python experiments/ablation.py --rows=semi_hard,hardest --seeds=0,1,2
#     .venv/bin/python experiments/train.py --config=nns2_lfw_view1_hardest --seed=1 --workdir=runs/ablation/hardest_s1
# Every row is nns2 from scratch on LFW minus the View 1 test identities (4,786 identities, 10,492 images), the
# nns2_lfw_view1 recipe with one thing changed, scored on View 1 (DevTrain thresholds -> DevTest, centre crop 140 px,
# squared L2: as results/training_nns2_lfw.md). Budget: ABLATION_IMAGES = 180,000 images seen (1,000 steps x 180);
# a row with another batch size gets its steps, checkpoint interval and decay step scaled to it
# (facenet_tf.data.sampling.equal_images_schedule), its --quick variant to QUICK_IMAGES (40 steps x 180). Seed s (the
# runner's --seeds, default 0,1; train.py's --seed) draws the weights, the batches, the augmentation and, for the
# data rows, the identity subset. ~25 min a row and seed on the 2-core reference CPU (nns2_lfw_view1's 1,531 s).
ABLATION_IMAGES = 1000 * 180
QUICK_IMAGES = 40 * 180
ABLATION_SEEDS = (0, 1)


def _batch_images(values: dict) -> int:
    batch = values["identities_per_batch"] * values["faces_per_identity"] + values["extra_negatives"]
    return 3 * (batch // 3) if values.get("offline_every") else batch  # offline: whole triplets


def _equal_images(values: dict) -> dict:
    """``values`` with its schedule (and its quick variant's) scaled to the ablation's images-seen budgets."""
    from facenet_tf.data.sampling import equal_images_schedule

    def scaled(schedule: dict, images: int) -> dict:
        steps, every, decays = equal_images_schedule(schedule["steps"], schedule["checkpoint_every"],
                                                     schedule["lr_decay_steps"], _batch_images(values), images)
        return dict(steps=steps, checkpoint_every=every, lr_decay_steps=list(decays))

    quick = dict(values["quick"])
    quick.update(scaled({**values, **quick}, QUICK_IMAGES))
    return {**values, **scaled(values, ABLATION_IMAGES), "quick": quick}


def _variant(base: str, **changes) -> dict:
    return _equal_images({**CONFIGS[base], **changes})


# Mining (paper: semi-hard negatives; hardest ones "can lead to a collapsed model"; offline selection, alone or with
# online mining, "inconclusive").
CONFIGS["nns2_lfw_view1_hardest"] = _variant("nns2_lfw_view1", strategy="hardest")
CONFIGS["nns2_lfw_view1_batch_all"] = _variant("nns2_lfw_view1", strategy="batch_all")  # hinge mean over active ones
CONFIGS["nns2_lfw_view1_random_violating"] = _variant("nns2_lfw_view1", strategy="random_violating")
CONFIGS["nns2_lfw_view1_offline_semi_hard"] = _variant("nns2_lfw_view1_offline", strategy="semi_hard")
# Batch composition (paper: ~40 faces per identity). LFW cannot give 40: of the 4,786 training identities 98 have
# >= 12 images (3,160 images), 71 >= 15, 47 >= 20, 15 >= 40. K = 12 is the largest K that leaves ~100 identities,
# 6.5x P = 15, so a batch draws 15% of them (K = 15: 4.7x P; K = 20: 3x P; K = 40: every batch the same 15 people).
# --complete_groups takes the groups only from those identities: without it the sampler tops up short identities
# and a nominal 15x12 batch holds ~46 identities of ~4 faces, hardly different from 30x4's ~42 of ~2.9. Batch
# 15x12+60 = 240 images: 750 steps (checkpoints every 75, decay at 600). The 30x4 control draws complete groups
# from the 453 identities with >= 4 images, so that K is what differs between the two.
CONFIGS["nns2_lfw_view1_15x12_complete"] = _variant("nns2_lfw_view1", identities_per_batch=15,
                                                    faces_per_identity=12, complete_groups=True)
CONFIGS["nns2_lfw_view1_30x4_complete"] = _variant("nns2_lfw_view1", complete_groups=True)
# Embedding size (paper Table 5, NN1: 64 / 128 / 256 / 512 -> 86.8 / 87.9 / 87.7 / 85.6% VAL, within its noise).
for _dim in (64, 256, 512):
    CONFIGS[f"nns2_lfw_view1_dim{_dim}"] = _variant("nns2_lfw_view1", embedding_dim=_dim)
# Training-set size (paper Table 6: 2.6M -> 260M images, 76.3 -> 86.2% VAL): a seeded, nested share of the
# training identities (--identity_fraction; the seed draws the subset).
for _share in (25, 50):
    CONFIGS[f"nns2_lfw_view1_ids{_share}"] = _variant("nns2_lfw_view1", identity_fraction=_share / 100)

#: row -> its config, what it changes against the baseline row (semi_hard = nns2_lfw_view1) and its groups.
ABLATION = {
    "semi_hard": dict(config="nns2_lfw_view1", change="baseline: online semi-hard (the paper), 30x4+60, 128-D, "
                      "100% of the identities", groups=("mining", "batch", "embedding", "data")),
    "hardest": dict(config="nns2_lfw_view1_hardest", change="hardest negative per pair", groups=("mining",)),
    "batch_all": dict(config="nns2_lfw_view1_batch_all", change="every violating triplet (batch all)",
                      groups=("mining",)),
    "random_violating": dict(config="nns2_lfw_view1_random_violating", change="a random negative inside the margin",
                             groups=("mining",)),
    "offline": dict(config="nns2_lfw_view1_offline", change="offline selection (1,800 images every 50 steps), no "
                    "online mining", groups=("mining",)),
    "offline_semi_hard": dict(config="nns2_lfw_view1_offline_semi_hard", change="offline selection + online "
                              "semi-hard", groups=("mining",)),
    "30x4_complete": dict(config="nns2_lfw_view1_30x4_complete", change="30x4+60, complete groups (453 identities)",
                          groups=("batch",)),
    "15x12_complete": dict(config="nns2_lfw_view1_15x12_complete", change="15x12+60, complete groups (98 "
                           "identities), 750 steps", groups=("batch",)),
    "dim64": dict(config="nns2_lfw_view1_dim64", change="64-D embedding", groups=("embedding",)),
    "dim256": dict(config="nns2_lfw_view1_dim256", change="256-D embedding", groups=("embedding",)),
    "dim512": dict(config="nns2_lfw_view1_dim512", change="512-D embedding", groups=("embedding",)),
    "ids25": dict(config="nns2_lfw_view1_ids25", change="25% of the training identities", groups=("data",)),
    "ids50": dict(config="nns2_lfw_view1_ids50", change="50% of the training identities", groups=("data",)),
}
ABLATION_BASELINE = "semi_hard"
