"""Each experiment's sweep axis, known from its params before anything runs.

An experiment's results name their axis in :attr:`repro.registry.SeedResult.sweep` (``{axis: points}``),
and the metrics listed in ``per_point`` hold one value per point; the rest hold one value per seed. A
claim's ``at`` picks one point of the axis by its value (:func:`repro.judge._select`) and a trend reads
the metric along it, so the loader checks both against this table (:func:`repro.load._check_sweep`): a
claim that would read a point its run never computes, or a trend over a one-point sweep, is refused at
load instead of costing a run.

The axis is not always a param of the same name: calibration's ``x`` is its ``sweep`` param, sae's
``dictionary`` is the index into ``dictionaries``, phase's ``cell`` the index of an ``n_r`` x
``n_density`` grid. Kept apart from the experiments' modules, as :mod:`repro.experiments.kinds` is,
so that this table never changes an experiment's code version; tests/test_load_hints.py checks the
names against the registry and the points against what the cheap experiments' runs return. A user's
experiment declares its own axis (``Experiment.sweep``); one that declares none is not checked.
"""

from __future__ import annotations

from repro.registry import SweepAxis

__all__ = ["AXES", "SweepAxis"]


def _indices(n: int) -> list[float]:
    return [float(k) for k in range(n)]


AXES: dict[str, SweepAxis] = {
    "calibration.normal": SweepAxis(
        "x", ("sweep",), "the values of param 'sweep'", lambda p: [float(v) for v in p.sweep], frozenset({"value"})
    ),
    "tms.train": SweepAxis(
        "feature_probability",
        ("feature_probability",),
        "the values of param 'feature_probability'",
        lambda p: [float(v) for v in p.feature_probability],
        frozenset(
            {
                "n_represented",
                "frobenius_sq",
                "dims_per_feature",
                "n_diag_learned",
                "n_unlearned",
                "n_unlearned_positive_bias",
                "max_superposition",
                "frac_represented_in_superposition",
                "n_antipodal_pairs",
                "frac_dims_near_half",
                "loss",
            }
        ),
    ),
    "phase.one_neuron": SweepAxis(
        "cell",
        ("n_r", "n_density"),
        "the cell index 0 .. n_r * n_density - 1",
        lambda p: _indices(p.n_r * p.n_density),
        frozenset({"model_class", "theory_class", "loss"}),
    ),
    "sae.mnist": SweepAxis(
        "dictionary",
        ("dictionaries",),
        "the index into param 'dictionaries'",
        lambda p: _indices(len(p.dictionaries)),
        frozenset(
            {
                "latents",
                "topk_k",
                "spliced_accuracy",
                "spliced_accuracy_drop",
                "spliced_loss",
                "fidelity",
                "reconstruction_mse",
                "fraction_variance_explained",
                "l0",
                "l0_fraction",
                "dead_latent_fraction",
                "probe_accuracy_codes",
                "probe_gap",
                "polysemantic_fraction",
                "classes_spanned_mean",
            }
        ),
    ),
    "stall.active_learning": SweepAxis(
        "round",
        ("loops", "strategy"),
        "the round index 0 .. loops - 1 (one round for strategy 'baseline')",
        lambda p: _indices(1 if p.strategy == "baseline" else p.loops),
        frozenset(
            {
                "round_labelled",
                "round_accuracy",
                "round_silhouette_raw",
                "round_davies_bouldin_raw",
                "round_cosine_source",
            }
        ),
    ),
    # The points are the indices of the model's conv modules up to param 'layer', read off the torch
    # model the run builds (methods.conv_indices): known only at run time, so only the axis's metrics
    # are checked (an 'at' on a per-seed metric, a trend on one), never the points.
    "subnetworks.split": SweepAxis(
        "layer",
        ("layer", "model"),
        "the index of each conv module up to param 'layer'",
        None,
        frozenset({"overlap_ratio_layer", "overlap_p_layer", "jaccard_layer"}),
    ),
}
