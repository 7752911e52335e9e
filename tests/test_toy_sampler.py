"""The sparse CPU sampler of repro.experiments.toy: its law, its streams, and the run-wise CPU trainer.

The law tests are statistical, on fixed seeds (so they are deterministic): each computes a p-value
or z-score with a test that has power against a specific mistake, and each is paired with a negative
control that feeds the same check a deliberately wrong law and asserts that the check rejects it.
ALPHA is small because a check here runs on many cells at once (Bonferroni within a check).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from repro import numerics
from repro.experiments import toy, toy_sparse

ALPHA = 1e-4


def _sampler(seeds, p, batch, data="paper", method="sparse"):
    return toy.FeatureSampler(toy.make_generators(seeds, "cpu"), torch.as_tensor(p, dtype=torch.float32), batch,
                              data, method=method)  # fmt: skip


def _batches(sampler, calls):
    """(calls, G, K, B, n) numpy copy of ``calls`` consecutive batches."""
    G, K, B, n = len(sampler.generators), sampler.n_per_seed, sampler.batch, sampler.n_features
    return np.stack([sampler().numpy().reshape(G, K, B, n).copy() for _ in range(calls)])


# ---- the checks, each a function so that the negative controls run the very same code -------------


def presence_p_values(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Two-sided binomial p-value of each (instance, feature) cell's count of non-zero entries.

    x (..., K, B, n) with every axis but the last three pooled; p (K, n). Cells with p = 0 or 1 get
    1.0 when every entry is absent or present respectively, else 0.0.
    """
    present = (x != 0).reshape(-1, *x.shape[-3:])  # (N, K, B, n)
    counts = present.sum((0, 2))  # (K, n)
    trials = present.shape[0] * present.shape[2]
    out = np.empty(p.shape)
    for (k, i), q in np.ndenumerate(p):
        if q in (0.0, 1.0):
            out[k, i] = float(counts[k, i] == trials * q)
        else:
            out[k, i] = stats.binomtest(int(counts[k, i]), trials, float(q)).pvalue
    return out


def pooled_presence_p_value(x: np.ndarray, p: np.ndarray) -> float:
    """Two-sided p-value of the total count of non-zero entries against its expectation under p (normal
    approximation, fine for the thousands of entries here): decisive where a per-cell test is not."""
    present = (x != 0).reshape(-1, *x.shape[-3:])  # (N, K, B, n)
    trials = present.shape[0] * present.shape[2]  # per cell
    mean, var = trials * p.sum(), trials * (p * (1 - p)).sum()
    return float(2 * stats.norm.sf(abs(present.sum() - mean) / np.sqrt(var)))


def dispersion_p_value(x: np.ndarray, q: float) -> float:
    """Chi-square test that the per-(call, column) counts of present entries have Binomial(B, q) variance.

    Catches a law with the right mean but the wrong spread (e.g. a fixed count per column).
    """
    counts = (x != 0).sum(-2).reshape(-1).astype(float)  # over the rows of each column
    B = x.shape[-2]
    statistic = ((counts - B * q) ** 2).sum() / (B * q * (1 - q))  # ~ chi2(len(counts))
    df = counts.size
    return float(2 * min(stats.chi2.sf(statistic, df), stats.chi2.cdf(statistic, df)))


def uniform_p_value(x: np.ndarray) -> float:
    """Kolmogorov-Smirnov p-value of the non-zero values against U[0, 1]."""
    return float(stats.kstest(x[x != 0].astype(np.float64), "uniform").pvalue)


def independence_p_value(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest two-sided p-value, over the columns of a, b (N, C), of Fisher's exact test of independence
    of paired presence (the 2 x 2 table of a != 0 against b != 0), times C (Bonferroni).

    Exact, so it stays valid where presence is rare (a correlation's normal approximation does not:
    at p = 0.002 a single pair present in both gives |z| near 4).
    """
    a, b = a != 0, b != 0
    both, only_a, only_b = (a & b).sum(0), (a & ~b).sum(0), (~a & b).sum(0)
    neither = a.shape[0] - both - only_a - only_b
    p_values = [
        stats.fisher_exact([[int(both[c]), int(only_a[c])], [int(only_b[c]), int(neither[c])]]).pvalue
        for c in range(a.shape[1])
    ]
    return min(1.0, float(min(p_values)) * a.shape[1])


def row_pairs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows 0, 2, 4, ..., rows 1, 3, 5, ...) of every column, as (N, K n) pairs: neighbours in the stream.

    x (..., K, B, n). Each (instance, feature) column stays its own column of the pairs: pooling
    cells of different p would correlate the indicators by itself.
    """
    K, B, n = x.shape[-3:]
    x = np.swapaxes(x.reshape(-1, K, B, n), 1, 2).reshape(-1, B, K * n)  # (N, B, K n)
    return x[:, 0::2].reshape(-1, K * n), x[:, 1::2].reshape(-1, K * n)


# ---- the law --------------------------------------------------------------------------------------

P_BENCH = 0.05


@pytest.fixture(scope="module")
def bench_like() -> np.ndarray:
    """The benchmark's law (p = 0.05 everywhere), 2 seeds x 6 instances x 2048 rows x 20 features, 4 calls."""
    return _batches(_sampler([0, 1], np.full((6, 20), P_BENCH), 2048), 4)  # (4, 2, 6, 2048, 20)


def test_nonzero_fraction_matches_p(bench_like):
    p = np.full((6, 20), P_BENCH)
    assert presence_p_values(bench_like, p).min() > ALPHA / p.size
    assert pooled_presence_p_value(bench_like, p) > ALPHA


def test_negative_control_p_off_by_ten_percent_is_rejected(bench_like):
    """The data against a p 10 % higher, and data drawn at a p 10 % higher against the right p."""
    p = np.full((6, 20), P_BENCH)
    assert pooled_presence_p_value(bench_like, p * 1.1) <= ALPHA
    wrong = _batches(_sampler([0, 1], p * 1.1, 2048), 4)
    assert pooled_presence_p_value(wrong, p) <= ALPHA


def test_counts_per_column_have_binomial_spread(bench_like):
    assert dispersion_p_value(bench_like, P_BENCH) > ALPHA


def test_negative_control_fixed_count_per_column_is_rejected(bench_like):
    """Right mean, no spread: each column gets exactly round(B p) entries at random rows."""
    rng = np.random.default_rng(0)
    wrong = np.zeros_like(bench_like)
    B, per_column = bench_like.shape[-2], round(bench_like.shape[-2] * P_BENCH)
    flat = wrong.reshape(-1, B, bench_like.shape[-1])
    for c in range(flat.shape[0]):
        for i in range(flat.shape[2]):
            flat[c, rng.choice(B, per_column, replace=False), i] = rng.random(per_column)
    assert dispersion_p_value(wrong, P_BENCH) <= ALPHA


def test_values_are_uniform(bench_like):
    values = bench_like[bench_like != 0]
    assert values.min() > 0 and values.max() < 1
    assert uniform_p_value(bench_like) > ALPHA


def test_negative_control_non_uniform_values_are_rejected(bench_like):
    assert uniform_p_value(bench_like**1.1) <= ALPHA  # a slight skew of 100k values


def test_features_are_independent(bench_like):
    """Presence of every pair of features in the same row."""
    x = bench_like.reshape(-1, 20)
    pairs = [(i, j) for i in range(20) for j in range(i + 1, 20)]
    a = np.stack([x[:, i] for i, _ in pairs], 1)
    b = np.stack([x[:, j] for _, j in pairs], 1)
    assert independence_p_value(a, b) > ALPHA


def test_negative_control_correlated_features_are_rejected(bench_like):
    """Feature 1 copies feature 0 in one row in ten."""
    x = bench_like.reshape(-1, 20).copy()
    x[::10, 1] = x[::10, 0]
    pairs = [(i, j) for i in range(20) for j in range(i + 1, 20)]
    a = np.stack([x[:, i] for i, _ in pairs], 1)
    b = np.stack([x[:, j] for _, j in pairs], 1)
    assert independence_p_value(a, b) <= ALPHA


def test_rows_instances_seeds_and_steps_are_independent(bench_like):
    """Neighbouring rows (neighbours in the sampler's stream), instances, seeds and successive calls."""
    x = bench_like  # (calls, G, K, B, n)
    checks = [
        row_pairs(x),
        (x[:, :, :-1].reshape(-1, 20), x[:, :, 1:].reshape(-1, 20)),  # instance k and k + 1
        (x[:, 0].reshape(-1, 20), x[:, 1].reshape(-1, 20)),  # seed 0 and seed 1
        (x[:-1].reshape(-1, 20), x[1:].reshape(-1, 20)),  # call t and t + 1
    ]
    for a, b in checks:
        assert independence_p_value(a, b) > ALPHA / len(checks)


def test_negative_control_correlated_rows_are_rejected(bench_like):
    """Every fourth row repeats the row before it."""
    x = bench_like.copy()
    x[..., 1::4, :] = x[..., 0::4, :]
    assert independence_p_value(*row_pairs(x)) <= ALPHA


def test_per_instance_and_per_feature_probabilities_are_honoured():
    """A phase-diagram-like (K, n) grid: per-instance and per-feature p, including 0 and 1, over several runs."""
    rng = np.random.default_rng(1)
    p = np.exp(rng.uniform(np.log(1e-3), 0, size=(40, 3)))
    p[0] = [0.0, 1.0, 0.5]  # a column of p = 1 beside others
    p[1] = [1.0, 0.0, 0.0]
    p[2:4] = 1.0  # whole instances of p = 1: values drawn straight into x
    p[5:10] = 0.2  # equal p over several instances: one segment
    sampler = _sampler([4], p, 256)
    assert sampler._sparse.passes[0].runs[0].blocks and sampler._sparse.passes[0].runs[0].full_columns.size
    x = _batches(sampler, 40)  # (40, 1, 40, 256, 3)
    p32 = p.astype(np.float32).astype(np.float64)
    assert presence_p_values(x, p32).min() > ALPHA / p.size
    assert pooled_presence_p_value(x, p32) > ALPHA
    assert pooled_presence_p_value(x, np.minimum(p32 * 1.1, 1.0)) <= ALPHA  # the negative control
    assert uniform_p_value(x) > ALPHA


def test_seed002_values_are_uniform_below_p_then_rows_normalised():
    p = np.array([[0.3] * 5, [0.05] * 5])
    x = _batches(_sampler([0, 1], p, 20_000, data="seed002"), 1)[0]  # (G, K, B, n)
    norms = np.linalg.norm(x, axis=-1)
    assert np.all((np.abs(norms - 1) < 1e-5) | (norms == 0))
    assert presence_p_values(x[None], p).min() > ALPHA / p.size
    single = x[(x != 0).sum(-1) == 1]  # rows with one present feature: the value was normalised to 1
    assert np.allclose(single[single != 0], 1.0)
    # rows with two present features keep their ratio: u_i / u_j with u ~ U[0, p], as torch's path
    two = x[:, 0][(x[:, 0] != 0).sum(-1) == 2]
    a, b = two[two != 0].reshape(-1, 2).T
    ratio = np.minimum(a, b) / np.maximum(a, b)  # min / max of two U[0, p]: uniform on [0, 1]
    assert stats.kstest(ratio, "uniform").pvalue > ALPHA


def test_forced_top_ups_keep_the_law(monkeypatch):
    """A first round of one gap per segment: every segment takes the rare top-up path."""
    monkeypatch.setattr(toy_sparse, "_first_round", lambda length, p: 1)
    p = np.array([[0.05] * 10, [0.3] * 10, [0.002] * 10])
    x = _batches(_sampler([0, 1], p, 4096), 4)
    p32 = p.astype(np.float32).astype(np.float64)
    assert presence_p_values(x, p32).min() > ALPHA / p.size
    assert pooled_presence_p_value(x, p32) > ALPHA
    assert uniform_p_value(x) > ALPHA
    assert independence_p_value(*row_pairs(x)) > ALPHA


# ---- streams -------------------------------------------------------------------------------------


def test_same_seeds_give_the_same_batches():
    p = np.full((5, 20), 0.05)
    a, b = _batches(_sampler([7, 8], p, 1024), 3), _batches(_sampler([7, 8], p, 1024), 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a[0], a[1])  # and successive calls differ


def test_a_seeds_batches_do_not_depend_on_the_seeds_beside_it():
    p = np.full((30, 20), 0.05)  # 30 x 1024 x 20 entries a seed: several runs and passes
    alone = _batches(_sampler([3], p, 1024), 3)[:, 0]
    together = _batches(_sampler([1, 2, 3, 4], p, 1024), 3)[:, 2]
    assert np.array_equal(alone, together)


def test_batches_do_not_depend_on_threads_or_passes(monkeypatch):
    p = np.full((30, 20), 0.05)
    with numerics.computing(2):  # the seeds' draws spread over two threads
        reference = _batches(_sampler([5, 6], p, 1024), 2)
    with numerics.computing(1):
        one_thread = _batches(_sampler([5, 6], p, 1024), 2)
    monkeypatch.setattr(toy_sparse, "SPARSE_PASS_DRAWS", 2**10)  # many small passes
    small_passes = _sampler([5, 6], p, 1024)
    assert len(small_passes._sparse.passes) > 4
    assert np.array_equal(reference, one_thread)
    assert np.array_equal(reference, _batches(small_passes, 2))


def test_a_new_sampler_on_the_same_generators_draws_fresh_streams():
    """tms's sequential stages make one sampler per stage on the same generators."""
    gens = toy.make_generators([0], "cpu")
    p = torch.full((2, 20), 0.05)
    first = toy.FeatureSampler(gens, p, 512)().clone()
    second = toy.FeatureSampler(gens, p, 512)().clone()
    assert not torch.equal(first, second)


def test_defaults_and_the_reference_path():
    assert toy.default_method("cpu", "paper") == "sparse"
    assert toy.default_method("cpu", "seed002") == "sparse"
    assert toy.default_method("cpu", "batch_mask") == "torch"
    assert toy.default_method("cuda", "paper") == "torch"
    assert _sampler([0], np.full((2, 3), 0.05), 1024, method=None).method == "sparse"
    assert _sampler([0], [[1.0, 1.0, 0.3], [0.1, 0.1, 0.1]], 1024, method=None).method == "sparse"  # p = 1 is cheap
    assert _sampler([0], np.full((2, 3), 0.5), 1024, method=None).method == "torch"  # dense: torch's draw is faster
    assert _sampler([0], np.full((2, 3), 0.05), 8, method=None).method == "torch"  # tiny: fixed costs dominate
    with pytest.raises(ValueError, match="batch_mask"):
        _sampler([0], np.full((2, 3), 0.5), 8, data="batch_mask", method="sparse")
    torch_path = _batches(_sampler([0], np.full((4, 20), P_BENCH), 2048, method="torch"), 2)
    assert pooled_presence_p_value(torch_path, np.full((4, 20), P_BENCH)) > ALPHA


# ---- the run-wise CPU trainer ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["linear", "relu_tied", "relu_untied"])
@pytest.mark.parametrize(
    "seeds, per_seed, run_entries", [(1, 9, 2**19), (3, 4, 2**12), (5, 2, 2**19)], ids=["one", "parts", "whole"]
)
def test_run_gradients_match_whole_tensor_gradients(kind, seeds, per_seed, run_entries, monkeypatch):
    monkeypatch.setattr(toy._RunGradients, "RUN_ENTRIES", run_entries)
    n, m, B = 7, 3, 64
    gens = toy.make_generators(range(seeds), "cpu")
    models = toy.init_models(gens, per_seed, n, m, kind, bias_init="normal", bias_std=0.3)
    x = toy.FeatureSampler(gens, torch.full((per_seed, n), 0.4), B)().clone()
    weight = toy.loss_weight(torch.rand(per_seed, n), seeds, B, "mean")
    expected = toy.gradients(models, x, weight)
    threads = torch.get_num_threads()
    try:
        got = toy._RunGradients(models, B, weight, workers=2)(x)
    finally:
        torch.set_num_threads(threads)
    for mine, theirs in zip(got, expected, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)


def test_train_by_runs_matches_whole_tensors_and_restores_threads():
    threads = torch.get_num_threads()
    results = []
    for by_runs in (True, False):
        gens = toy.make_generators([0, 1], "cpu")
        models = toy.init_models(gens, 3, 20, 5, "relu_tied")
        sampler = toy.FeatureSampler(gens, torch.full((3, 20), 0.05), 256)
        toy.train(models, sampler, torch.ones(3, 20), toy.TrainSettings(steps=50, lr=1e-2), by_runs=by_runs)
        results.append(models.W.clone())
        assert torch.get_num_threads() == threads
    torch.testing.assert_close(results[0], results[1], rtol=1e-4, atol=1e-5)
