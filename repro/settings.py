"""Each source's own setting as data, and the check that a claim runs in it or says where it does not.

A verdict is a statement about somebody's paper only when the claim runs in that paper's setting. A
``[setting.NAME]`` table (:class:`repro.claim.Setting`) writes down, field by field, what a source ran
for one experiment (optimizer, learning rate, batch, steps, init, loss reduction, grid ranges, data,
the procedure that reads the result), each field traced to SOURCES.md or the source's file and line.

:func:`departures` compares a claim's resolved params (the experiment's defaults included, so a claim
that overrides nothing still inherits somebody's setting) with its source's setting, at each scale
and arm. A difference is allowed only where the claim declares it: in ``departures`` (every scale) or
in ``scales.<scale>.departures`` (the downsizing), each with its reason. :func:`problems` turns every
undeclared difference, and every declared one that departs from nothing, into a loader message.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from repro import registry
from repro.claim import SCALES, Claim, Setting
from repro.errors import UnknownExperimentError

__all__ = ["Departure", "departures", "find", "problems", "setting_problems"]


@dataclass(frozen=True)
class Departure:
    """One field where a claim's params at one scale differ from its source's setting."""

    field: str
    scale: str
    source_value: Any
    claim_value: Any
    arms: tuple[str, ...]
    why: str | None  # None: undeclared
    declared_at: str | None  # "departures" or "scales.<scale>.departures"
    substitute: bool


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b and type(a) is type(b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _canonical(params_model: type[BaseModel], name: str, value: Any) -> Any:
    """A setting's value as the params model stores it (e.g. a number read as a one-point sweep)."""
    dumped = params_model.model_validate({name: value}).model_dump(mode="json")
    return dumped[name]


def setting_problems(name: str, setting: Setting) -> list[str]:
    """A setting names a registered experiment, and each field a param of it with a value it accepts."""
    try:
        experiment = registry.get(setting.experiment)
    except UnknownExperimentError:
        return [
            f"field 'experiment': unknown experiment '{setting.experiment}' (registered: {', '.join(registry.names())})"
        ]
    fields = experiment.params.model_fields
    out = []
    for field, entry in setting.fields.items():
        if field not in fields:
            close = difflib.get_close_matches(field, list(fields), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            out.append(
                f"field 'fields.{field}': not a param of {setting.experiment}{hint} (it takes: "
                f"{', '.join(sorted(fields))}); what the experiment cannot set goes in the setting's 'departures'"
            )
            continue
        try:
            _canonical(experiment.params, field, entry.value)
        except ValidationError as exc:
            out.append(f"field 'fields.{field}.value': {exc.errors()[0]['msg']} (got {entry.value!r})")
    return out


def find(claim: Claim, settings: Mapping[str, Setting]) -> tuple[str | None, str | None]:
    """(name of the claim's setting, problem): its named setting (any source's, for the same experiment: a
    claim of this package's own that varies a source's procedure names the setting it varies), or else
    the one setting of its source and experiment."""
    if claim.setting is not None:
        setting = settings.get(claim.setting)
        if setting is None:
            return (
                None,
                f"field 'setting': no setting '{claim.setting}' (declared: {', '.join(sorted(settings)) or 'none'})",
            )
        if setting.experiment != claim.experiment:
            return None, (
                f"field 'setting': '{claim.setting}' is {setting.source}'s setting of {setting.experiment}, "
                f"not of the claim's experiment {claim.experiment}"
            )
        return claim.setting, None  # a claim of this package's own may run in a source's setting, named
    matching = sorted(n for n, s in settings.items() if (s.source, s.experiment) == (claim.source, claim.experiment))
    if len(matching) > 1:
        return None, (
            f"field 'setting': source '{claim.source}' has {len(matching)} settings of {claim.experiment} "
            f"({', '.join(matching)}): name the one this claim runs in"
        )
    return (matching[0] if matching else None), None


def departures(claim: Claim, setting: Setting) -> list[Departure]:
    """Every field where the claim's resolved params differ from the setting, by scale (full, then ci)."""
    experiment = registry.get(claim.experiment)
    out: list[Departure] = []
    for scale in SCALES:
        if claim.skipped(scale) and scale != "full":
            continue
        resolved = {
            arm: experiment.params.model_validate(claim.raw_params(scale, arm)).model_dump(mode="json")
            for arm in claim.arm_names()
        }
        scale_declared = claim.scale(scale).departures
        for field, entry in setting.fields.items():
            wanted = _canonical(experiment.params, field, entry.value)
            differ = [arm for arm, params in resolved.items() if not _same(params[field], wanted)]
            if not differ:
                continue
            got = resolved[differ[0]][field]
            if field in claim.departures:
                why, where = claim.departures[field], "departures"
            elif field in scale_declared:
                why, where = scale_declared[field], f"scales.{scale}.departures"
            else:
                why, where = None, None
            out.append(
                Departure(
                    field=field, scale=scale, source_value=wanted, claim_value=got,
                    arms=tuple(differ) if claim.arms else (), why=why, declared_at=where,
                    substitute=entry.substitute,
                )
            )  # fmt: skip
    return out


def problems(claim: Claim, name: str, setting: Setting) -> list[str]:
    """Loader messages: each undeclared departure, and each declared one that departs from nothing."""
    found = departures(claim, setting)
    full = {d.field: d for d in found if d.scale == "full" and d.why is None}
    out = []
    for d in found:
        if d.why is None:
            if d.scale != "full" and d.field in full and _same(full[d.field].claim_value, d.claim_value):
                continue  # the same undeclared value as at full: said once, there
            every = d.scale == "full" and any(
                e.scale != "full" and e.field == d.field and e.why is None and _same(e.claim_value, d.claim_value)
                for e in found
            )
            where = "at every scale" if every else f"at scale {d.scale}"
            where += f", arm {', '.join(d.arms)}" if d.arms else ""
            place = "departures" if d.scale == "full" else f"scales.{d.scale}.departures"
            out.append(
                f"field 'params.{d.field}': departs from {claim.source}'s setting '{name}' {where}: the source ran "
                f"{d.field} = {d.source_value!r} ({setting.fields[d.field].trace}), the claim runs {d.claim_value!r}; "
                f'use the source\'s value, or declare it with its reason in {place} = {{ {d.field} = "why" }}'
            )
    departed = {(d.field, d.scale) for d in found}
    for field in claim.departures:
        if field not in setting.fields:
            out.append(f"field 'departures.{field}': not a field of setting '{name}' ({', '.join(setting.fields)})")
        elif not any((field, scale) in departed for scale in SCALES):
            out.append(
                f"field 'departures.{field}': the claim runs the source's own {field} "
                f"({setting.fields[field].value!r}) at every scale: remove the stale departure"
            )
    for scale in SCALES:
        for field in claim.scale(scale).departures:
            if field not in setting.fields:
                out.append(
                    f"field 'scales.{scale}.departures.{field}': not a field of setting '{name}' "
                    f"({', '.join(setting.fields)})"
                )
            elif (field, scale) not in departed:
                out.append(
                    f"field 'scales.{scale}.departures.{field}': the claim runs the source's own {field} "
                    f"({setting.fields[field].value!r}) at scale {scale}: remove the stale departure"
                )
            elif field in claim.departures:
                out.append(f"field 'scales.{scale}.departures.{field}': already declared in 'departures'")
    return out
