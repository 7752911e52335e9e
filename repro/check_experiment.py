"""``repro check-experiment NAME``: does an experiment keep the contract the rest of the package relies on?

scikit-learn's ``check_estimator`` is the model: each check runs the experiment (on its
``check_params``, a tiny setting, on a CPU) and says what it found. The contract
(docs/writing-an-experiment.md):

- the params model refuses unknown fields (a misspelt claim param must be an error, not a default);
- the same seed gives the same metrics, call after call;
- a seed's result does not depend on which other seeds share its call (batched experiments);
- it returns one result per seed asked, in order, with that seed;
- every declared metric is produced, finite, a number or a list as long as the sweep; no undeclared one;
- ``code_version`` (which keys cached results) is the same in a fresh process;
- registering the same experiment object again is harmless; a different one under its name is refused.
"""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from repro import numerics, registry
from repro.errors import ExperimentRegistrationError
from repro.registry import Experiment, SeedResult

__all__ = ["Check", "check_experiment"]

#: Seeds of the checks: two in one call, then each alone.
SEEDS = (11, 12)


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


def _params(experiment: Experiment, overrides: Mapping[str, Any] | None) -> BaseModel:
    return experiment.params.model_validate({**experiment.check_params, **(overrides or {})})


def _unknown_fields_refused(experiment: Experiment, params: BaseModel) -> Check:
    probe = "__not_a_param__"
    try:
        experiment.params.model_validate({**params.model_dump(), probe: 1})
    except ValidationError:
        return Check("params refuse unknown fields", True, f"{experiment.params.__name__} refuses '{probe}'")
    return Check(
        "params refuse unknown fields",
        False,
        f"{experiment.params.__name__} accepted an unknown field '{probe}': a misspelt claim param would silently "
        "fall back to its default; set model_config = ConfigDict(extra='forbid')",
    )


def _shape_problems(experiment: Experiment, result: SeedResult) -> list[str]:
    problems = []
    produced, declared = set(result.metrics), set(experiment.metrics)
    if declared - produced:
        problems.append(f"seed {result.seed}: declared metric(s) not produced: {sorted(declared - produced)}")
    if produced - declared:
        problems.append(f"seed {result.seed}: undeclared metric(s) produced: {sorted(produced - declared)}")
    lengths = {len(v) for v in result.sweep.values()} if result.sweep else set()
    if len(lengths) > 1:
        problems.append(f"seed {result.seed}: sweep axes of different lengths {sorted(lengths)}")
    for name in sorted(produced & declared):
        value = result.metrics[name]
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list):
            if not lengths:
                problems.append(f"seed {result.seed}: metric '{name}' is a list but the result declares no sweep")
            elif len(value) not in lengths:
                problems.append(
                    f"seed {result.seed}: metric '{name}' has {len(value)} values for a sweep of {min(lengths)} points"
                )
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int | float):
                problems.append(f"seed {result.seed}: metric '{name}' holds {type(v).__name__}, not a number")
                break
            if not math.isfinite(v):
                problems.append(f"seed {result.seed}: metric '{name}' is not finite ({v})")
                break
    return problems


def _equal(a: Any, b: Any) -> bool:
    """Exactly equal (NaN equals NaN: a non-finite value is the shape check's finding, not this one's)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def _same(a: SeedResult, b: SeedResult) -> list[str]:
    """Metric names whose values differ between two results of one seed (bitwise: floats compare exactly)."""
    names = sorted(set(a.metrics) | set(b.metrics))
    differ = [name for name in names if not _equal(a.metrics.get(name), b.metrics.get(name))]
    if a.sweep != b.sweep:
        differ.append("(sweep)")
    return differ


def _run(experiment: Experiment, params: BaseModel, seeds: Sequence[int], device: str) -> list[SeedResult]:
    with numerics.computing(1, device):
        return list(experiment.run(params, list(seeds), device))


def _runs(experiment: Experiment, params: BaseModel, device: str) -> list[Check]:
    checks = []
    try:
        both = _run(experiment, params, SEEDS, device)
        alone = [_run(experiment, params, [seed], device) for seed in SEEDS]
        again = _run(experiment, params, SEEDS[:1], device)
    except Exception as exc:  # the check reports a crash; it does not raise it
        return [Check("runs on the check setting", False, f"run raised {type(exc).__name__}: {exc}")]
    checks.append(Check("runs on the check setting", True, f"seeds {list(SEEDS)} in one call and each alone"))
    returned = [r.seed for r in both], [[r.seed for r in rs] for rs in alone]
    ok = returned[0] == list(SEEDS) and returned[1] == [[s] for s in SEEDS] and len(again) == 1
    checks.append(
        Check(
            "one result per seed, in order",
            ok,
            "as asked" if ok else f"asked {list(SEEDS)}, got {returned[0]} (together) and {returned[1]} (alone)",
        )
    )
    if not ok:
        return checks
    problems = [p for r in (*both, *alone[0], *alone[1]) for p in _shape_problems(experiment, r)]
    checks.append(
        Check(
            "declared metrics, finite, sweep-shaped",
            not problems,
            "; ".join(problems[:6]) or f"{len(experiment.metrics)} metric(s) as declared",
        )
    )
    repeat = _same(alone[0][0], again[0])
    checks.append(
        Check(
            "same seed, same metrics",
            not repeat,
            f"seed {SEEDS[0]} run twice differs in {repeat}" if repeat else f"seed {SEEDS[0]} twice: identical",
        )
    )
    batch = [(s, _same(b, a[0])) for s, b, a in zip(SEEDS, both, alone, strict=True)]
    moved = [f"seed {s}: {names}" for s, names in batch if names]
    checks.append(
        Check(
            "a seed does not depend on the seeds sharing its call",
            not moved,
            "; ".join(moved) + " (alone vs with the other seed)" if moved else "each seed alone = together",
        )
    )
    return checks


def _code_version(experiment: Experiment, fresh: Callable[[str], str] | None) -> Check:
    here = experiment.code_version
    if fresh is None:
        return Check("code_version in a fresh process", True, "not checked (the experiment is not registered)")
    try:
        there = fresh(experiment.name)
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        return Check("code_version in a fresh process", False, f"a fresh process could not load it: {exc}")
    if there != here:
        return Check(
            "code_version in a fresh process",
            False,
            f"{here} here, {there} in a fresh process: cached results would never be found again "
            "(is the run module importable by name, and its source free of run-time values?)",
        )
    return Check("code_version in a fresh process", True, here)


def _fresh_code_version(name: str) -> str:
    script = "import sys\nfrom repro import registry\nprint(registry.get(sys.argv[1]).code_version)\n"
    done = subprocess.run(
        [sys.executable, "-c", script, name], capture_output=True, text=True, timeout=300, env=dict(os.environ)
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
    return done.stdout.strip().splitlines()[-1]


def _registration(experiment: Experiment) -> Check:
    """Against a scratch copy of the registry: the same object twice passes, a different one is refused."""
    saved = dict(registry._REGISTRY), dict(registry._ORIGINS)
    try:
        registry._REGISTRY.pop(experiment.name, None)
        registry.register(experiment)
        registry.register(experiment)
        other = dataclasses.replace(experiment, run=lambda params, seeds, device: [])
        try:
            registry.register(other)
        except ExperimentRegistrationError:
            return Check("registration", True, "the same object twice: harmless; a different one: refused")
        return Check("registration", False, "a different experiment under the same name was accepted")
    except ExperimentRegistrationError as exc:
        return Check("registration", False, str(exc))
    finally:
        registry._REGISTRY.clear()
        registry._REGISTRY.update(saved[0])
        registry._ORIGINS.clear()
        registry._ORIGINS.update(saved[1])


def check_experiment(
    experiment: Experiment | str,
    *,
    params: Mapping[str, Any] | None = None,
    device: str = "cpu",
    fresh_process: bool = True,
) -> list[Check]:
    """Every check of the contract, in order; an experiment passes when every check passed."""
    if isinstance(experiment, str):
        experiment = registry.get(experiment)
        registered = True
    else:
        registered = experiment.name in registry.names()
    try:
        chosen = _params(experiment, params)
    except ValidationError as exc:
        return [Check("check setting is valid params", False, f"check_params / --param: {exc.errors()[:3]}")]
    checks = [_unknown_fields_refused(experiment, chosen), *_runs(experiment, chosen, device)]
    fresh = _fresh_code_version if (fresh_process and registered) else None
    checks.append(_code_version(experiment, fresh))
    checks.append(_registration(experiment))
    return checks
