"""What each metric is, which decides its default test (:func:`repro.registry.default_method`).

- ``continuous``: a real-valued quantity with no bound nearby and no pile-up of equal values
  (a loss ratio far from 0, a silhouette, a cosine): the t-test on its mean.
- ``count``: an integer per seed (features represented, clusters found): seeds tie with each
  other and with an integer threshold, so the exact sign test on the median (ties count against).
- ``fraction``: a share, an accuracy, an AUROC, or a difference of them: bounded, often piled on
  0 or 1 and skewed near a bound, so the exact sign test.
- ``skewed``: positive and right-skewed (losses, MSEs, ratios): the t-test's size at n = 8 is
  several times alpha there (docs/statistics.md), so the exact sign test.

A claim may name its ``method`` explicitly; the default is what this table gives. Kept apart from
the experiments' modules so that a kind never changes an experiment's code version.
"""

from __future__ import annotations

from typing import Literal

MetricKind = Literal["continuous", "count", "fraction", "skewed"]

CALIBRATION: dict[str, MetricKind] = {"value": "continuous"}

TMS: dict[str, MetricKind] = {
    "n_represented": "count",
    "frobenius_sq": "continuous",
    "dims_per_feature": "continuous",
    "n_diag_learned": "count",
    "n_unlearned": "count",
    "n_unlearned_positive_bias": "count",
    "max_superposition": "fraction",
    "frac_represented_in_superposition": "fraction",
    "n_antipodal_pairs": "count",
    "frac_dims_near_half": "fraction",
    "loss": "skewed",
}

PHASE: dict[str, MetricKind] = {
    "model_class": "count",
    "theory_class": "count",
    "loss": "skewed",
    "agreement": "fraction",
    "agreement_far_from_boundary": "fraction",
    "agreement_far_paper_range": "fraction",
    "agreement_far_paper_range_plurality": "fraction",
    "antipodal_share": "fraction",
    "antipodal_share_sparse": "fraction",
    "antipodal_share_sparse_min": "fraction",
    "single_feature_share_sparse": "fraction",
}

SAE: dict[str, MetricKind] = {
    "classifier_accuracy": "fraction",
    "classifier_loss": "skewed",
    "zero_ablation_loss": "skewed",
    "dead_unit_fraction": "fraction",
    "dead_unit_fraction_layer": "fraction",
    "probe_accuracy_raw": "fraction",
    "probe_chance": "fraction",
    "latents": "count",
    "topk_k": "count",
    "spliced_accuracy": "fraction",
    "spliced_accuracy_drop": "fraction",  # points of accuracy: a difference of two fractions, often exactly 0
    "spliced_loss": "skewed",
    "fidelity": "skewed",  # a ratio of loss differences: heavy-tailed when the denominator is small
    "reconstruction_mse": "skewed",
    "fraction_variance_explained": "fraction",
    "l0": "continuous",  # a mean over thousands of inputs of the active-latent count
    "l0_fraction": "fraction",
    "dead_latent_fraction": "fraction",
    "probe_accuracy_codes": "fraction",
    "probe_gap": "fraction",
    "polysemantic_fraction": "fraction",
    "classes_spanned_mean": "continuous",
}

STALL: dict[str, MetricKind] = {
    "accuracy": "fraction",
    "silhouette_tsne": "continuous",
    "davies_bouldin_tsne": "skewed",
    "silhouette_raw": "continuous",
    "davies_bouldin_raw": "skewed",
    "cosine_source": "continuous",
    "cosine_uncentred": "continuous",
    "cosine_centred": "continuous",
    "labelled": "count",
    "sample_passes": "count",
    "most_queried_class": "count",
    "round_labelled": "count",
    "round_accuracy": "fraction",
    "round_silhouette_raw": "continuous",
    "round_davies_bouldin_raw": "skewed",
    "round_cosine_source": "continuous",
}

SUBNETWORKS: dict[str, MetricKind] = {
    "n_clusters_min": "count",
    "polysemantic_fraction": "fraction",
    "split_unit": "count",
    "n_clusters": "count",
    "cluster_size_a": "count",
    "cluster_size_b": "count",
    "kept_fraction": "fraction",
    "kept_fraction_a": "fraction",
    "kept_fraction_b": "fraction",
    "auroc_dense": "fraction",
    "auroc_mask_a": "fraction",
    "auroc_mask_b": "fraction",
    "auroc_own_min": "fraction",
    "auroc_gain_min": "fraction",
    "auroc_random_own_min": "fraction",
    "auroc_vs_random": "fraction",
    "preservation_cs": "fraction",
    "auroc_soft_own_min": "fraction",
    "undecided_fraction": "fraction",
    "auroc_own_min_snip": "fraction",
    "preservation_snip": "fraction",
    "auroc_own_min_force": "fraction",
    "preservation_force": "fraction",
    "auroc_own_min_actgrad": "fraction",
    "preservation_actgrad": "fraction",
    "auroc_cs_minus_heuristics": "fraction",
    "preservation_heuristics_minus_cs": "fraction",
    "overlap_ratio": "skewed",
    "overlap_ratio_random": "skewed",
    "overlap_excess_over_random": "skewed",
    "jaccard": "fraction",
    "jaccard_expected": "fraction",
    "overlap_ratio_layer": "skewed",
    "overlap_p_layer": "fraction",
    "jaccard_layer": "fraction",
}
