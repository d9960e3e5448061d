"""Triplet losses and online triplet mining (paper, "Triplet loss and selection"): pure functions on tensors.

``pairwise_squared_distances`` gives the paper's D; ``mine_triplets`` chooses a negative for every
anchor-positive pair; ``triplet_loss`` / ``triplet_loss_with_metrics`` mine inside the batch (``semi_hard``,
``hardest``, ``batch_all``, ``random_violating``) in O(B^2) memory; ``TripletLoss`` is the thin
``keras.losses.Loss`` wrapper (serialisable under the package name ``facenet_tf``); ``harmonic_triplet_loss`` mixes a
new model's embeddings with a fixed old model's (appendix "Harmonic embeddings"); ``select_triplets`` is the paper's
offline selection on a subset's embeddings (numpy) and ``offline_triplet_loss_with_metrics`` the loss over its
triplets (``offline``).
"""

from facenet_tf.losses.distances import pairwise_squared_distances
from facenet_tf.losses.harmonic import harmonic_triplet_loss, harmonic_triplet_loss_with_metrics
from facenet_tf.losses.mining import FALLBACKS, STRATEGIES, MinedTriplets, mine_triplets
from facenet_tf.losses.offline import OfflineSelection, offline_triplet_loss_with_metrics, select_triplets
from facenet_tf.losses.triplet import (METRIC_NAMES, REDUCTIONS, TripletLoss, triplet_loss,
                                       triplet_loss_with_metrics)

__all__ = ["FALLBACKS", "harmonic_triplet_loss", "harmonic_triplet_loss_with_metrics", "METRIC_NAMES", "MinedTriplets", "OfflineSelection", "REDUCTIONS", "STRATEGIES", "TripletLoss",
           "mine_triplets", "offline_triplet_loss_with_metrics", "pairwise_squared_distances", "select_triplets",
           "triplet_loss", "triplet_loss_with_metrics"]
