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
