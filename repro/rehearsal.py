"""The full-scale rehearsal: every full-scale claim's own code path, on a CPU, on fabricated data.

``repro run --scale full --rehearse`` (and the ``rehearsal`` test marker) runs each distinct
(experiment, full-scale params) of the claims with the full-scale params except the fields in
:data:`CUTS` (steps, epochs, rounds, image counts), on data fabricated in the real on-disk formats
(:mod:`repro.fabricate`: MNIST IDX, CIFAR-10 pickles, the Tiny ImageNet and ImageNet folders with a
corrupt-EXIF JPEG, AlexNet / sparse-AlexNet / ResNet-18 checkpoints with random values). For every
claim it then reads the metric exactly as a verdict would (:func:`repro.judge.observations`) and
checks that it is there, finite and of the shape the assertion needs.

It decides nothing and writes nothing the user keeps: no store is opened, the data live in a
temporary folder (``$REPRO_DATA`` and torch's hub folder point there for the duration), and the
results are dropped. Warnings (PIL's "Corrupt EXIF data", DataLoader's worker count) are recorded,
not raised, as a full-scale run records them in the result's provenance.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from repro import registry
from repro.claim import Claim, Trend
from repro.fabricate import fabricate
from repro.judge import observations, replicate_seeds
from repro.load import resolve_params

__all__ = ["CUTS", "GENERATED_DATA", "NONE_IS_OFF", "SEEDS", "Rehearsal", "rehearse", "rehearsal_params"]

#: experiment -> {param: the value it is cut to}. Only what makes a run long (optimizer steps, epochs,
#: active-learning rounds, image counts) is cut; widths, grids, models, data formats stay full scale.
#: A cut never raises a value: a claim already below it keeps its own. Image counts are also bounded by
#: the fabricated data (:class:`repro.fabricate.Sizes`: 200 train images per natural-image set).
CUTS: dict[str, dict[str, Any]] = {
    "calibration.normal": {},
    "tms.train": {"steps": 2},
    "phase.one_neuron": {"steps": 2},
    "sae.mnist": {"epochs": 1, "sae_epochs": 1},
    "stall.active_learning": {
        "loops": 2,  # one query between two rounds: the query path runs
        "epochs": 1,
        "initial_pool": 20,
        "query_size": 20,
        "tsne_max_iter": 250,  # scikit-learn's minimum
        # Tiny ImageNet's 224 px: half the side is a quarter of the pixels (its two arms went from 73 s
        # to about 20 s on one core); the resize on the device and the pixel-budgeted evaluation batch
        # still run. A claim that does not resize keeps None (NONE_IS_OFF).
        "resize": 112,
    },
    "subnetworks.split": {
        "n_images": 40,
        "top_k": 40,
        "min_cluster_size": 5,  # top_k / min_cluster_size stays >= 2, as the params require
        "epochs": 1,
        "force_iterations": 1,
        "cnn_epochs": 1,
        "cnn_train_images": 100,
    },
}
#: Experiments that generate their own data and read no checkpoint: rehearsing only these fabricates nothing.
GENERATED_DATA = frozenset({"calibration.normal", "tms.train", "phase.one_neuron"})
#: Params whose None means "off" rather than "all": a cut leaves None as it is instead of setting it.
NONE_IS_OFF = frozenset({"resize"})
#: experiment -> replicate seeds rehearsed (the claim's first ones). Two where the batched path trains
#: seeds together (their separation is part of what is rehearsed), one for the networks.
SEEDS: dict[str, int] = {"stall.active_learning": 1, "subnetworks.split": 1, "sae.mnist": 1, "phase.one_neuron": 1}


def rehearsal_params(claim: Claim, arm: str = "main", extra_cuts: dict[str, dict[str, Any]] | None = None) -> Any:
    """The claim's full-scale params with the experiment's cuts (and any ``extra_cuts``) applied, validated."""
    params = resolve_params(claim, "full", arm)
    cuts = CUTS.get(claim.experiment)
    if cuts is not None:
        cuts = {**cuts, **(extra_cuts or {}).get(claim.experiment, {})}
    if cuts is None:
        raise KeyError(f"experiment {claim.experiment} has no rehearsal cuts: add it to repro.rehearsal.CUTS")
    update = {}
    for name, cut in cuts.items():
        if name not in type(params).model_fields:
            raise KeyError(f"repro.rehearsal.CUTS[{claim.experiment!r}] names {name!r}, not a param of the experiment")
        value = getattr(params, name)
        if value is None and name in NONE_IS_OFF:
            continue
        update[name] = cut if value is None else min(value, cut)
    if claim.experiment == "subnetworks.split":  # lr drops past the cut epochs never happen; keep them in range
        from repro.experiments.subnetworks.experiment import SubnetworkParams  # loaded: the registry imports it

        assert isinstance(params, SubnetworkParams)
        update["lr_drops"] = [d for d in params.lr_drops if d < update.get("epochs", params.epochs)]
    return type(params).model_validate({**claim.raw_params("full", arm), **update})


@dataclass
class Arm:
    """One distinct (experiment, cut params) and the claims that read it."""

    experiment: str
    params: Any
    claims: list[tuple[Claim, str]] = field(default_factory=list)  # (claim, arm name)
    seeds: list[int] = field(default_factory=list)
    wall_s: float = 0.0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Rehearsal:
    arms: list[Arm]
    skipped: list[tuple[str, str]]  # (claim id, why not rehearsed)
    wall_s: float

    @property
    def ok(self) -> bool:
        return all(a.ok for a in self.arms)

    def table(self) -> str:
        lines = [f"{'experiment':<22} {'claims':>6} {'seeds':>5} {'wall s':>7}  result"]
        for a in self.arms:
            result = "ok" if a.ok else "FAILED: " + "; ".join(a.problems)
            if a.warnings:
                result += f" ({len(a.warnings)} warning(s): {a.warnings[0][:80]})"
            lines.append(f"{a.experiment:<22} {len(a.claims):>6} {len(a.seeds):>5} {a.wall_s:>7.1f}  {result}")
        for claim_id, why in self.skipped:
            lines.append(f"  not rehearsed: {claim_id}: {why}")
        n_claims = sum(len(a.claims) for a in self.arms)
        verdict = "every metric came out finite and of its shape" if self.ok else "FAILED"
        lines.append(f"rehearsed {n_claims} claim arms in {len(self.arms)} runs, {self.wall_s:.0f} s: {verdict}")
        return "\n".join(lines)


@contextlib.contextmanager
def _fabricated_environment(root: Path) -> Iterator[None]:
    """$REPRO_DATA and torch's hub folder point at ``root`` (nothing of the user's is read), restored after."""
    import torch

    saved = {k: os.environ.get(k) for k in ("REPRO_DATA", "TORCH_HOME")}
    hub = torch.hub.get_dir()
    os.environ["REPRO_DATA"] = str(root)
    os.environ["TORCH_HOME"] = str(root / "torch")
    torch.hub.set_dir(str(root / "torch" / "hub"))
    _clear_loader_caches()
    try:
        yield
    finally:
        _clear_loader_caches()
        torch.hub.set_dir(hub)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _clear_loader_caches() -> None:
    """The dataset loaders cache by path; drop what the fabricated data left (and nothing else is cached)."""
    from repro.data import images, mnist

    for module in (images, mnist):
        for value in vars(module).values():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()


def _check(claim: Claim, arm: str, results: list[Any], seeds: list[int]) -> list[str]:
    """What is wrong with the results as this claim's verdict would read them."""
    experiment = registry.get(claim.experiment)
    problems = []
    if [r.seed for r in results] != seeds:
        problems.append(f"seeds {[r.seed for r in results]} came back for {seeds}")
    for r in results:
        missing = [m for m in experiment.metrics if m not in r.metrics]
        if missing:
            problems.append(f"seed {r.seed} lacks metrics {missing}")
        for name, value in r.metrics.items():
            if isinstance(value, list):
                axes = [len(v) for v in r.sweep.values()]
                if len(axes) != 1 or len(value) != axes[0]:
                    problems.append(f"metric {name} has {len(value)} values for sweep {list(r.sweep)} of {axes}")
    if problems:
        return problems
    stored = [SimpleNamespace(metrics=r.metrics, sweep=r.sweep) for r in results]
    try:
        values, _ = observations(claim, {name: stored for name in claim.arm_names()})
    except (KeyError, ValueError) as exc:
        return [f"{claim.id} [{arm}]: {exc}"]
    array = values[arm]
    if array.shape[0] != len(seeds) or (isinstance(claim.assertion, Trend) and array.ndim != 2):
        problems.append(f"{claim.id} [{arm}]: {claim.metric} has shape {array.shape} for {len(seeds)} seeds")
    if not np.all(np.isfinite(array)):
        problems.append(f"{claim.id} [{arm}]: {claim.metric} is not finite: {array.ravel()[:6].tolist()}")
    return problems


def rehearse(
    claims: Iterable[Claim],
    *,
    data_root: Path | None = None,
    on_progress: Callable[[str], None] | None = None,
    all_seeds: bool = False,
    extra_cuts: dict[str, dict[str, Any]] | None = None,
    device: str = "cpu",
) -> Rehearsal:
    """Rehearse every claim of ``claims`` that runs at full scale; see the module docstring.

    ``data_root``: fabricated data already there (else a temporary folder is filled and removed).
    ``all_seeds``: every full-scale seed of the arm's claims instead of :data:`SEEDS` (for measuring
    memory: batched experiments hold all seeds at once). ``extra_cuts``: more cuts, per experiment.
    ``device``: where the experiments run (a CPU by default; "cuda" measures device memory).
    """
    import torch

    started = time.perf_counter()
    arms: dict[tuple[str, str], Arm] = {}
    skipped = []
    for claim in claims:
        why = claim.skipped("full")
        if why:
            skipped.append((claim.id, f"skipped at full scale: {why}"))
            continue
        if claim.experiment not in CUTS:  # a user's experiment: its full-scale data are not ours to fabricate
            skipped.append((claim.id, f"the rehearsal covers this package's families, and "
                                      f"{claim.experiment} has no cuts in repro.rehearsal.CUTS"))  # fmt: skip
            continue
        for arm_name in claim.arm_names():
            params = rehearsal_params(claim, arm_name, extra_cuts)
            key = (claim.experiment, params.model_dump_json())
            entry = arms.setdefault(key, Arm(claim.experiment, params))
            entry.claims.append((claim, arm_name))
    with contextlib.ExitStack() as stack:
        root = Path(data_root) if data_root else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="repro-")))
        # Nothing to rehearse (a user's experiments only), or only families that generate their data:
        # nothing to fabricate.
        if not data_root and any(experiment not in GENERATED_DATA for experiment, _ in arms):
            fabricate(root)
        stack.enter_context(_fabricated_environment(root))
        for arm in arms.values():
            first = arm.claims[0][0]
            n_seeds = max(c.n_seeds("full") for c, _ in arm.claims) if all_seeds else SEEDS.get(arm.experiment, 2)
            arm.seeds = replicate_seeds(first.seed, n_seeds)
            t0 = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    results = registry.get(arm.experiment).run(arm.params, arm.seeds, torch.device(device))
                except Exception as exc:  # the point: a traceback here instead of two hours into a GPU run
                    arm.problems.append(f"{type(exc).__name__}: {exc}")
                    arm.problems.append(traceback.format_exc(limit=-3).strip().splitlines()[-3])
                    results = None
            arm.wall_s = time.perf_counter() - t0
            arm.warnings = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
            if results is not None:
                for claim, arm_name in arm.claims:
                    arm.problems += _check(claim, arm_name, results, arm.seeds)
            if on_progress:
                on_progress(f"{arm.experiment}: {len(arm.claims)} claim arms, {arm.wall_s:.1f} s, "
                            f"{'ok' if arm.ok else 'FAILED'}")  # fmt: skip
    return Rehearsal(list(arms.values()), skipped, time.perf_counter() - started)
