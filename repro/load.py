"""claims/*.toml -> validated claims. Every problem names the file, the claim id and the field.

A claims file holds ``[[claim]]`` tables and, optionally, ``[source.KEY]`` tables. A folder is read
whole (``*.toml``, sorted); a single file is read with the ``sources.toml`` beside it, so a user can
keep claims of their own anywhere. Nothing runs until every file has validated: a bad file is
refused before any experiment starts. Reading a file and the checks against hostile input that
come before any validation (unreadable files, encodings, values no parser after tomllib can use)
are in :mod:`repro.load_checks`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from repro import registry
from repro import settings as setting_checks
from repro.claim import (
    SCALES,
    Change,
    Claim,
    Difference,
    Equivalent,
    Greater,
    Less,
    Proportion,
    Setting,
    Source,
    Trend,
    binomial_min_seeds,
    is_sign_test,
    min_seeds,
)
from repro.errors import ClaimFileError, UnknownClaimError, UnknownExperimentError
from repro.load_checks import (
    _check_values,
    _did_you_mean,
    _display,
    _files,
    _format,
    _label,
    _name,
    _read_toml,
    _show,
)

__all__ = ["HISTORY_FOLDER", "ClaimSet", "history_file", "load_claims", "resolve_params", "with_default_method"]

_TOP_LEVEL_KEYS = {"claim", "source", "setting"}
#: Beside each claims file ``X.toml``, ``HISTORY_FOLDER/X.toml`` holds its claims' change notes as
#: ``[[change]]`` tables (``claim = "ID"`` and the fields of :class:`repro.claim.Change`), so that a
#: claims file stays its claims' current declarations; the loader appends them to each claim's ``changed``.
HISTORY_FOLDER = "history"


def history_file(claims_file: Path) -> Path:
    """Where the change notes of ``claims_file``'s claims live."""
    return claims_file.parent / HISTORY_FOLDER / claims_file.name


def _history(file: Path, ids: set[str], problems: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The change notes of ``file``'s claims from its history file (claim id -> notes, in file order)."""
    path = history_file(file)
    if not path.is_file():
        return {}
    where = _display(path)
    try:
        data = _read_toml(path)
    except ClaimFileError as exc:
        problems.extend(exc.problems)
        return {}
    if value_problems := _check_values(data):
        problems.extend(f"{where}: {p}" for p in value_problems)
        return {}
    for key in sorted(set(data) - {"change"}):
        problems.append(f"{where}: unknown top-level key '{_name(key)}' (a history file holds [[change]] tables)")
    entries = data.get("change", [])
    if not isinstance(entries, list):
        problems.append(f"{where}: 'change' must be an array of tables: write [[change]] (got {_show(entries)})")
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    for index, entry in enumerate(entries):
        label = f"change #{index + 1}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: {label} must be a table: write [[change]] (got {_show(entry)})")
            continue
        note = dict(entry)
        claim_id = note.pop("claim", None)
        if not isinstance(claim_id, str) or claim_id not in ids:
            problems.append(f"{where}: {label}: field 'claim': {_show(claim_id)} names no claim of {_display(file)}")
            continue
        try:
            Change.model_validate(note)
        except ValidationError as exc:
            problems.extend(f"{where}: {label} (claim '{claim_id}'): {_format(e)}" for e in exc.errors())
            continue
        out.setdefault(claim_id, []).append(note)
    return out


@dataclass(frozen=True)
class ClaimSet:
    """Claims in file order, the sources they cite, the sources' settings, and where each claim was declared."""

    claims: tuple[Claim, ...]
    sources: dict[str, Source]
    files: dict[str, Path]
    settings: dict[str, Setting] = field(default_factory=dict)

    def __iter__(self):
        return iter(self.claims)

    def __len__(self) -> int:
        return len(self.claims)

    def get(self, claim_id: str) -> Claim:
        for claim in self.claims:
            if claim.id == claim_id:
                return claim
        hint = _did_you_mean(claim_id, (c.id for c in self.claims))
        raise UnknownClaimError(
            f"no claim '{_name(claim_id)}' in {', '.join(self._file_names())}{hint} (`repro list` lists them)"
        )

    def select(self, ids: Iterable[str]) -> list[Claim]:
        """Claims by id, or by prefix ('tms.' selects a family); unknown names are an error."""
        chosen: list[Claim] = []
        for wanted in ids:
            matches = [c for c in self.claims if c.id == wanted or c.id.startswith(wanted.rstrip(".") + ".")]
            if not matches:
                # A mistyped prefix is closest to a prefix, not to a whole id: offer both.
                prefixes = {c.id.rsplit(".", k)[0] for c in self.claims for k in range(c.id.count(".") + 1)}
                raise UnknownClaimError(
                    f"no claim id or id prefix matches '{_name(wanted)}' in {', '.join(self._file_names())}"
                    f"{_did_you_mean(wanted, prefixes)} (`repro list` lists them)"
                )
            chosen.extend(m for m in matches if m not in chosen)
        return chosen

    def _file_names(self) -> list[str]:
        return sorted({_display(path) for path in self.files.values()}) or ["(no claims declared)"]

    def setting_of(self, claim: Claim) -> tuple[str, Setting] | None:
        """The source's setting the claim runs in (validated at load), or None where its source declares none."""
        name, _ = setting_checks.find(claim, self.settings)
        return None if name is None else (name, self.settings[name])

    def departures(self, claim: Claim) -> list[setting_checks.Departure]:
        """The claim's declared departures from its source's setting, by scale (none without a setting)."""
        found = self.setting_of(claim)
        return [] if found is None else setting_checks.departures(claim, found[1])

    def family(self, claim: Claim) -> str | None:
        """The claim's Holm family: its ``family``, or '<claims file name>.<source>'; None for a control."""
        if claim.control:
            return None
        if claim.family:
            return claim.family
        file = self.files.get(claim.id)
        return f"{file.stem if file is not None else 'claims'}.{claim.source}"

    def family_size(self, claim: Claim, scale: str) -> int:
        """Claims corrected together with ``claim`` at ``scale`` (1 for a control or a skipped scale)."""
        family = self.family(claim)
        if family is None or claim.skipped(scale):
            return 1
        return sum(1 for c in self.claims if not c.skipped(scale) and self.family(c) == family)


def resolve_params(claim: Claim, scale: str, arm: str = "main") -> BaseModel:
    """The experiment's validated params for one claim, scale and arm."""
    experiment = registry.get(claim.experiment)
    return experiment.params.model_validate(claim.raw_params(scale, arm))


def with_default_method(claim: Claim) -> Claim:
    """The claim with its assertion's ``method`` filled in from the metric's kind when it names none.

    Resolved once, here, so that the verdict, `repro show`, the report and the baseline all name
    the test that actually decides.
    """
    assertion = claim.assertion
    if getattr(assertion, "method", "unset") is not None:
        return claim
    kind = registry.get(claim.experiment).metric_kinds[claim.metric]
    paired = getattr(assertion, "paired", True)
    method = registry.default_method(kind, paired=paired)  # unpaired: "t" (Welch), the kinds that allow it
    if method is None:  # an unpaired comparison the loader refuses (_check_against_experiment says why)
        return claim
    return claim.model_copy(update={"assertion": assertion.model_copy(update={"method": method})})


def _check_against_experiment(claim: Claim) -> list[str]:
    """Problems that need the registry: experiment name, metric name, params at every scale and arm."""
    try:
        experiment = registry.get(claim.experiment)
    except UnknownExperimentError as exc:  # its message lists the registered names, the nearest first
        return [f"field 'experiment': {exc}"]
    problems = []
    if claim.metric not in experiment.metrics:
        problems.append(
            f"field 'metric': '{_name(claim.metric)}' is not a metric of {experiment.name}"
            f"{_did_you_mean(claim.metric, experiment.metrics)} (it has: {', '.join(experiment.metrics)})"
        )
    elif getattr(claim.assertion, "paired", True) is False and not registry.unpaired_allowed(
        kind := experiment.metric_kinds[claim.metric]
    ):
        problems.append(
            f"field 'assertion.paired': '{claim.metric}' is a {kind} metric, and no unpaired test holds its size "
            f"on {kind} arms of different shape at a few seeds (the studentized permutation test: up to 0.095 "
            "false reproductions at alpha 0.01, docs/statistics.md, 'Unpaired counts and fractions'): compare "
            "the arms paired, seed by seed (paired = true, the default)"
        )
    model_fields = set(experiment.params.model_fields)
    for scale in SCALES:
        for arm in claim.arm_names():
            try:
                experiment.params.model_validate(claim.raw_params(scale, arm))
            except ValidationError as exc:
                for error in exc.errors():
                    # Name the layer a bad key came from: the arm's overrides, the scale's, or params.
                    key = error["loc"][0] if error["loc"] else None
                    if claim.arms and key in claim.arms[arm]:
                        where = f"arms.{arm}"
                    elif key in claim.scale(scale).overrides:
                        where = f"scales.{scale}"
                    else:
                        where = "params"
                    if error["type"] == "extra_forbidden":
                        hint = _did_you_mean(str(key), model_fields) or _axis_hint(experiment.name, str(key))
                        takes = f"{experiment.name} takes: {', '.join(sorted(model_fields))}"
                        hint += f" ({takes})" if hint else f"; {takes}"
                        problems.append(_format(error, (where,)).replace("(got", "(value") + hint)
                    else:
                        problems.append(_format(error, (where,)))
    return sorted(set(problems), key=problems.index)


def load_claims(path: str | Path) -> ClaimSet:
    """Read, validate and cross-check every claim under ``path``; raise ClaimFileError listing all problems."""
    root = Path(path)
    claim_files, source_only = _files(root)
    problems: list[str] = []
    sources: dict[str, Source] = {}
    raw_claims: list[tuple[Path, int, dict[str, Any]]] = []
    all_settings: dict[str, Setting] = {}
    setting_files: dict[str, str] = {}

    for file in claim_files + source_only:
        where = _display(file)
        try:
            data = _read_toml(file)
        except ClaimFileError as exc:
            problems.extend(exc.problems)
            continue
        if value_problems := _check_values(data):
            problems.extend(f"{where}: {p}" for p in value_problems)
            continue
        for key in sorted(set(data) - _TOP_LEVEL_KEYS):
            problems.append(
                f"{where}: unknown top-level key '{_name(key)}' (a claims file holds [[claim]] and [source.KEY])"
            )
        table = data.get("source", {})
        if not isinstance(table, dict):
            problems.append(f"{where}: 'source' must be a table of sources: write [source.KEY] (got {_show(table)})")
            table = {}
        for key, entry in table.items():
            if not isinstance(entry, dict):
                problems.append(
                    f"{where}: source '{_name(key)}' must be a table with title, authors, year and url: "
                    f"write [source.{_name(key)}] (got {_show(entry)})"
                )
                continue
            try:
                source = Source.model_validate(entry)
            except ValidationError as exc:
                problems.extend(f"{where}: source '{_name(key)}': {_format(e)}" for e in exc.errors())
                continue
            if key in sources:
                problems.append(f"{where}: source '{_name(key)}' is declared twice")
            sources[key] = source
        table = data.get("setting", {})
        if not isinstance(table, dict):
            problems.append(
                f"{where}: 'setting' must be a table of settings: write [setting.NAME] (got {_show(table)})"
            )
            table = {}
        for key, entry in table.items():
            if not isinstance(entry, dict):
                problems.append(f"{where}: setting '{_name(key)}' must be a table: write [setting.{_name(key)}]")
                continue
            try:
                setting = Setting.model_validate(entry)
            except ValidationError as exc:
                problems.extend(f"{where}: setting '{_name(key)}': {_format(e)}" for e in exc.errors())
                continue
            if key in all_settings:
                problems.append(f"{where}: setting '{_name(key)}' is declared twice")
            found = setting_checks.setting_problems(key, setting)
            problems.extend(f"{where}: setting '{_name(key)}': {p}" for p in found)
            setting_files[key] = where
            if not found:
                all_settings[key] = setting
        if file in claim_files:
            entries = data.get("claim", [])
            if not isinstance(entries, list):
                problems.append(f"{where}: 'claim' must be an array of tables: write [[claim]] (got {_show(entries)})")
                continue
            ids = {entry["id"] for entry in entries if isinstance(entry, dict) and isinstance(entry.get("id"), str)}
            notes = _history(file, ids, problems)
            for index, entry in enumerate(entries):
                if isinstance(entry, dict):
                    claim_id = entry.get("id")
                    inline = entry.get("changed", [])
                    if isinstance(claim_id, str) and claim_id in notes and isinstance(inline, list):
                        entry = {**entry, "changed": [*inline, *notes[claim_id]]}
                    raw_claims.append((file, index, entry))
                else:
                    problems.append(
                        f"{where}: claim #{index + 1} must be a table: write [[claim]] (got {_show(entry)})"
                    )

    claims: list[Claim] = []
    files: dict[str, Path] = {}
    for file, index, entry in raw_claims:
        where, label = _display(file), _label(entry, index)
        try:
            claim = Claim.model_validate(entry)
        except ValidationError as exc:
            problems.extend(f"{where}: {label}: {_format(e)}" for e in exc.errors())
            continue
        except ArithmeticError as exc:  # a validator's arithmetic on an extreme value, e.g. alpha = 1e-310
            problems.append(f"{where}: {label}: a number is too extreme to check ({exc}): use an ordinary value")
            continue
        if claim.id in files:
            problems.append(f"{where}: {label}: field 'id': duplicate of the claim in {_display(files[claim.id])}")
            continue
        if claim.source not in sources:
            known = ", ".join(_name(key) for key in sorted(sources)) or "none"
            problems.append(
                f"{where}: {label}: field 'source': unknown source '{_name(claim.source)}' (known: {known})"
            )
        found = _check_against_experiment(claim)
        problems.extend(f"{where}: {label}: {p}" for p in found)
        if not found:
            claim = with_default_method(claim)
            problems.extend(f"{where}: {label}: {p}" for p in _effect_scale(claim))
            problems.extend(f"{where}: {label}: {p}" for p in _check_sweep(claim))
            problems.extend(f"{where}: {label}: {p}" for p in _check_setting(claim, all_settings, setting_files))
        claim.mark_declared_in(str(file))  # where its results' provenance looks for the claims' git commit
        claims.append(claim)
        files[claim.id] = file

    if problems:
        raise ClaimFileError(problems)
    for key, setting in all_settings.items():
        if setting.source not in sources:
            problems.append(
                f"{setting_files[key]}: setting '{_name(key)}': field 'source': unknown source '{setting.source}'"
            )
    if problems:
        raise ClaimFileError(problems)
    claim_set = ClaimSet(claims=tuple(claims), sources=sources, files=files, settings=all_settings)
    problems = [f"{files[c.id]}: claim '{c.id}': {p}" for c in claim_set for p in _family_floor(claim_set, c)]
    if problems:
        raise ClaimFileError(problems)
    return claim_set


def _axis_hint(experiment: str, key: str) -> str:
    """'; 'x' names the sweep axis, whose points param 'sweep' sets' where an unknown param is an axis's name."""
    from repro.experiments.sweeps import AXES

    axis = registry.get(experiment).sweep or AXES.get(experiment)
    if axis is None or key != axis.name:
        return ""
    fields = " and ".join(f"'{f}'" for f in axis.fields)
    return f"; '{key}' names {experiment}'s sweep axis ({axis.meaning}): set its points with {fields}"


def _layer(claim: Claim, scale: str, arm: str, key: str) -> str | None:
    """Where the claim sets a param at this scale and arm: 'arms.A', 'scales.S' or 'params'; None: the default."""
    if claim.arms and key in claim.arms[arm]:
        return f"arms.{arm}"
    if key in claim.scale(scale).overrides:
        return f"scales.{scale}"
    return "params" if key in claim.params else None


def _points_text(points: list[float]) -> str:
    shown = ", ".join(f"{x:g}" for x in points[:8])
    return f"[{shown}]" if len(points) <= 8 else f"[{shown}, ...] ({len(points)} points)"


def _check_sweep(claim: Claim) -> list[str]:
    """What the assertion reads along the experiment's sweep axis exists in every run the claim makes.

    ``at`` picks one point of the axis by its value, at every scale and arm (:func:`repro.judge._select`);
    a trend reads the metric along the axis; greater, less, difference and equivalent read one value per
    seed. Each is checked against the axis the resolved params give, defaults included
    (:mod:`repro.experiments.sweeps`): a point the run never computes, a one-point trend, an ``at`` that
    the metric would silently ignore, or a metric left with one value per point would otherwise cost the
    whole run and end in an error verdict. An experiment not in the table is not checked; one whose
    points are known only at run time (subnetworks.split) has its metrics checked, not its points.
    """
    from repro.experiments.sweeps import AXES

    axis = registry.get(claim.experiment).sweep or AXES.get(claim.experiment)
    if axis is None:
        return []
    name, metric, assertion = claim.experiment, claim.metric, claim.assertion
    along = ", ".join(sorted(axis.per_point))
    if metric not in axis.per_point:
        if claim.at is not None:
            return [
                f"field 'at': metric '{metric}' of {name} holds one value per seed, not one per point of its sweep "
                f"axis '{axis.name}', so 'at' would be ignored: remove 'at' (metrics along the axis: {along})"
            ]
        if isinstance(assertion, Trend):
            return [
                f"field 'metric': a trend reads the metric along {name}'s sweep axis '{axis.name}', and "
                f"'{metric}' holds one value per seed (metrics along the axis: {along})"
            ]
        return []
    if claim.at is not None and isinstance(assertion, Trend):
        return [
            f"field 'at': a trend reads '{metric}' along the whole sweep axis '{axis.name}', and 'at' keeps one "
            "point of it: remove 'at'"
        ]
    if axis.points is None:  # known only at run time: see repro.experiments.sweeps
        return []
    experiment = registry.get(name)
    # (field, what is wrong, what the params give) -> the scales and arms where it is so
    found: dict[tuple[str, str, str], list[str]] = {}
    for scale in SCALES:
        if claim.skipped(scale):
            continue
        for arm in claim.arm_names():
            points = axis.points(experiment.params.model_validate(claim.raw_params(scale, arm)))
            layers = {f: _layer(claim, scale, arm, f) for f in axis.fields}
            set_by = [f"{layer}.{f}" for f, layer in layers.items() if layer is not None]
            if set_by:
                gives = f"{' and '.join(set_by)} give{'s' if len(set_by) == 1 else ''} {_points_text(points)}"
            else:
                unset = " or ".join(f"'{f}'" for f in axis.fields)
                gives = (
                    f"the claim sets no {unset} (in params, scales or arms), so {name}'s default "
                    f"{_points_text(points)} is used: set {unset} in [claim.params]"
                )
            problem = _sweep_problem(claim, axis.name, axis.meaning, points)
            if problem is not None:
                where = scale if arm == "main" else f"{scale} (arm '{arm}')"
                found.setdefault((*problem, gives), []).append(where)
    return [
        f"field '{field}': {what} at scale{'s' if len(wheres) > 1 else ''} {' and '.join(wheres)}: {gives}"
        for (field, what, gives), wheres in found.items()
    ]


def _sweep_problem(claim: Claim, axis: str, meaning: str, points: list[float]) -> tuple[str, str] | None:
    """(field, what is wrong) where the assertion cannot read the metric on these sweep points."""
    at, assertion = claim.at, claim.assertion
    if at is not None:
        # The judge's own comparison (repro.judge._select): exactly one point must match.
        matches = [x for x in points if math.isclose(x, at, rel_tol=1e-9, abs_tol=1e-12)]
        if len(matches) == 1:
            return None
        if matches:
            return "at", f"{at:g} is {len(matches)} points of the sweep axis '{axis}' ({meaning}), not one"
        nearest = min(points, key=lambda x: abs(x - at))
        return "at", f"{at:g} is not a point of the sweep axis '{axis}' ({meaning}; nearest: {nearest:g})"
    if isinstance(assertion, Trend):
        if len(set(points)) < 2:
            return "assertion", f"a trend needs at least two distinct points on the sweep axis '{axis}' ({meaning})"
        return None
    if isinstance(assertion, (Greater, Less, Difference, Equivalent)) and len(points) > 1:
        return "at", (
            f"a {assertion.test} test reads one value per seed, and '{claim.metric}' has one per point of the sweep "
            f"axis '{axis}' ({meaning}): pick one with 'at'"
        )
    return None


def _check_setting(claim: Claim, all_settings: dict[str, Setting], setting_files: dict[str, str]) -> list[str]:
    """The claim runs in its source's setting, or declares each field where it does not (repro.settings)."""
    name, problem = setting_checks.find(claim, all_settings)
    if problem is not None:
        if claim.setting in setting_files and claim.setting not in all_settings:
            return []  # the setting itself is broken, and said so
        return [problem]
    if name is None:
        declared = [f"departures.{f}" for f in claim.departures] + [
            f"scales.{scale}.departures.{f}" for scale in SCALES for f in claim.scale(scale).departures
        ]
        if declared:
            return [
                f"field '{declared[0]}': declares a departure, but source '{claim.source}' declares no setting of "
                f"{claim.experiment} to depart from (add a [setting.NAME] table)"
            ]
        return []
    return setting_checks.problems(claim, name, all_settings[name])


def _effect_scale(claim: Claim) -> list[str]:
    """A sign test's smallest_effect is a share of seeds above one half, so it must lie below 0.5."""
    delta = claim.smallest_effect
    if delta is None or delta < 0.5 or not is_sign_test(claim):
        return []
    return [
        f"field 'smallest_effect': {delta:g} is out of range for a sign test, where it is the share of seeds "
        "beyond the threshold above one half (0.4: nine seeds in ten beyond); give a value below 0.5"
    ]


def _family_floor(claim_set: ClaimSet, claim: Claim) -> list[str]:
    """Seeds too few for the claim ever to decide within its family.

    Holm's first step compares the smallest p of a family of m claims with alpha / m, and a claim
    whose seeds cannot reach that could never be decided whatever its family's results: the same
    rule as :func:`repro.claim.min_seeds`, at alpha / m (for a binomial claim on one value per seed,
    min_fraction ** seeds < alpha / m).
    """
    problems = []
    alpha = claim.assertion.alpha
    for scale in SCALES:
        m = claim_set.family_size(claim, scale)
        if m == 1 or claim.skipped(scale):
            continue
        n, needed = claim.n_seeds(scale), min_seeds(alpha / m)
        family = claim_set.family(claim)
        if n < needed:
            problems.append(
                f"field 'seeds': {n} seeds at scale {scale} cannot decide within family '{family}' ({m} claims): "
                f"Holm's first step tests at alpha / {m} = {alpha / m:.3g}, which needs at least {needed} seeds "
                "(0.5**seeds below it); raise the seeds or declare a smaller family"
            )
        elif isinstance(claim.assertion, Proportion) and claim.at is not None:
            p0 = claim.assertion.min_fraction
            needed = binomial_min_seeds(p0, alpha / m)
            if n < needed:
                problems.append(
                    f"field 'seeds': {n} seeds at scale {scale} cannot decide within family '{family}' ({m} claims): "
                    f"min_fraction**seeds = {p0**n:.3g} is not below alpha / {m} = {alpha / m:.3g}, which needs at "
                    f"least {needed} seeds"
                )
    return problems
