"""Claims as data: the declaration of what a source says and how it is checked.

A :class:`Claim` is pure data (scikit-learn's rule: a declaration holds no logic and never changes
at run time). What a run derives lives in :mod:`repro.store` results and :class:`repro.stats.Verdict`.

TOML shape (one file per source, any number of ``[[claim]]`` tables)::

    [[claim]]
    id = "tms.relu.sparse-superposition"
    source = "elhage2022"
    statement = "..."
    evidence = "..."
    experiment = "tms.train"
    metric = "n_represented"
    seeds = 10
    assertion = { test = "greater", threshold = 5, alpha = 0.01 }
    [claim.params]          # the experiment's params at full scale (the source's setting)
    ...
    [claim.scales.ci]       # documented downsizing: param overrides plus seeds / expect
    steps = 3000
    seeds = 8
"""

from __future__ import annotations

import datetime
import math
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

__all__ = [
    "ALPHA_DEFAULT",
    "SCALES",
    "Assertion",
    "Change",
    "Claim",
    "Difference",
    "Equivalent",
    "Expectation",
    "Greater",
    "Less",
    "Outcome",
    "Predicate",
    "Proportion",
    "Adjudication",
    "Scale",
    "Sequential",
    "Setting",
    "SettingField",
    "Source",
    "Trend",
    "binomial_min_seeds",
    "is_sign_test",
    "min_seeds",
]

Outcome = Literal["reproduced", "not_reproduced", "inconclusive", "error"]
#: What a claim may expect: never "error" (a crash must never pass).
Expectation = Literal["reproduced", "not_reproduced", "inconclusive"]
ScaleName = Literal["ci", "full"]
SCALES: tuple[str, ...] = ("ci", "full")
ALPHA_DEFAULT = 0.01

#: Stable dotted names, as TransformerLens names hooks: they are API.
ID_PATTERN = r"^[a-z0-9][a-z0-9_\-]*(\.[a-z0-9][a-z0-9_\-]*)*$"

Alpha = Annotated[float, Field(gt=0.0, le=0.2, description="Significance level of the claim's test.")]


def min_seeds(alpha: float) -> int:
    """The one minimum number of seeds for a decision, for every assertion kind.

    The smallest n at which the exact sign test can reach alpha (0.5**n < alpha): 7 at alpha 0.01,
    5 at 0.05. Below it the distribution-free tests cannot decide at all and the parametric ones
    would decide on their assumptions alone, so no kind decides on fewer seeds.
    """
    return math.floor(-math.log2(alpha) + 1e-12) + 1


def binomial_min_seeds(min_fraction: float, alpha: float) -> int:
    """Fewest seeds whose exact binomial test over seeds can reach alpha: min_fraction**n < alpha."""
    if min_fraction == 0.0:
        return 1
    return max(1, math.floor(math.log(alpha) / math.log(min_fraction) + 1e-12) + 1)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """A bibliographic entry that claims point to by key (``claims/sources.toml``)."""

    title: str = Field(min_length=1)
    authors: str = Field(min_length=1)
    year: int = Field(ge=1900, le=2100)
    url: str = Field(min_length=1, description="Paper, write-up or repository address.")
    note: str | None = Field(None, description="Snapshot commit or anything a reader should know.")


class SettingField(_Strict):
    """One field of a source's own setting: the value the source ran, and where that is written."""

    value: Any = Field(description="The source's value, in the experiment param's own units and spelling.")
    trace: str = Field(min_length=3, description="Where the value is read: SOURCES.md section, or file and line.")
    substitute: bool = Field(
        False, description="The field chooses the data or model: a scale that departs from it runs on a substitute."
    )


#: A departure's reason must say something.
Reason = Annotated[str, Field(min_length=10)]


class Setting(_Strict):
    """A source's own setting for one experiment (``[setting.NAME]`` in a claims file), field by field.

    Every claim of ``source`` on ``experiment`` runs in it at full scale: the loader compares the
    claim's resolved params (defaults included) with each field and refuses a difference the claim
    does not declare in its ``departures``. ``departures`` here are what the experiment cannot express
    of the source's procedure (each claim on the setting inherits them, and the report shows them).
    """

    source: str = Field(min_length=1, description="Key into the sources table.")
    experiment: str = Field(min_length=1, description="Registered experiment name.")
    title: str = Field(min_length=3, description="Which run of the source this is, e.g. 'the paper's phase diagram'.")
    fields: dict[str, SettingField] = Field(min_length=1)
    departures: dict[str, Reason] = Field(
        default_factory=dict,
        description="What the experiment cannot set as the source did (name -> the source's procedure, ours, why).",
    )


class Adjudication(_Strict):
    """Why a "not reproduced" or "inconclusive" is a finding about the source and not about this package."""

    date: datetime.date
    setting: str = Field(
        min_length=10, description="(a) The claim runs in the source's setting: its departures, each with why."
    )
    side_by_side: str = Field(
        min_length=10,
        description="(b) The source's own code and this package's experiment on one small setting, both numbers; "
        "or why the source has no runnable code.",
    )
    readings: str = Field(min_length=10, description="(c) The readings of an ambiguous procedure that were tried.")


class Predicate(_Strict):
    """A comparison applied to each observed value, e.g. ``{ op = "==", value = 5 }``."""

    op: Literal[">", ">=", "<", "<=", "==", "!="]
    value: float = Field(allow_inf_nan=False)
    tolerance: float = Field(1e-9, ge=0.0, description="Absolute tolerance for '==' and '!=' (counts compare exactly).")


class Greater(_Strict):
    """The metric's location across seeds exceeds ``threshold``."""

    test: Literal["greater"]
    threshold: float = Field(allow_inf_nan=False)
    alpha: Alpha = ALPHA_DEFAULT
    method: Literal["t", "wilcoxon", "sign"] | None = Field(
        None,
        description="t: scipy ttest_1samp on the mean; wilcoxon: exact signed-rank test of symmetry about "
        "the threshold; sign: exact binomial test that more than half the seeds lie strictly beyond "
        "the threshold (seeds on it count against the claim). Unset: the metric's kind decides "
        "(t for a continuous metric; sign for a count, a fraction or a skewed metric).",
    )


class Less(_Strict):
    """The metric's location across seeds is below ``threshold``."""

    test: Literal["less"]
    threshold: float = Field(allow_inf_nan=False)
    alpha: Alpha = ALPHA_DEFAULT
    method: Literal["t", "wilcoxon", "sign"] | None = None


class Proportion(_Strict):
    """More than ``min_fraction`` of the seeds satisfy a predicate.

    With one value per seed: the exact binomial test over seeds. With several sweep cells per seed
    the seed stays the unit: each seed's fraction of cells that satisfy the predicate, and the exact
    sign test that more than half the seeds have a fraction above ``min_fraction``.
    """

    test: Literal["proportion"]
    predicate: Predicate
    min_fraction: float = Field(ge=0.0, lt=1.0)
    alpha: Alpha = ALPHA_DEFAULT


class Trend(_Strict):
    """The metric rises (or falls) along the experiment's sweep axis, seed by seed."""

    test: Literal["trend"]
    direction: Literal["increasing", "decreasing"]
    min_rho: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="More than half the seeds must have a Spearman rho along the sweep (signed by direction) "
        "strictly above min_rho: the exact sign test on the per-seed rhos (0: the metric rises in most seeds).",
    )
    alpha: Alpha = ALPHA_DEFAULT


class Difference(_Strict):
    """Arm ``a`` minus arm ``b`` (paired by seed) is above (greater) or below (less) ``margin``."""

    test: Literal["difference"]
    a: str = Field(min_length=1, description="Arm name (a key of the claim's [arms]).")
    b: str = Field(min_length=1)
    direction: Literal["greater", "less"]
    margin: float = Field(0.0, allow_inf_nan=False)
    paired: bool = True
    method: Literal["t", "permutation", "sign"] | None = Field(
        None,
        description="t: paired or Welch t-test; permutation: exact or Monte Carlo permutation test; sign: exact "
        "sign test of the paired differences against the margin (paired only). Unset: t for a continuous "
        "metric, sign (paired) or permutation (unpaired) for a count, fraction or skewed one.",
    )
    alpha: Alpha = ALPHA_DEFAULT


class Equivalent(_Strict):
    """Arms ``a`` and ``b`` agree within +-``margin`` (two one-sided tests)."""

    test: Literal["equivalent"]
    a: str = Field(min_length=1)
    b: str = Field(min_length=1)
    margin: float = Field(gt=0.0, allow_inf_nan=False)
    paired: bool = True
    method: Literal["t", "sign"] | None = Field(
        None,
        description="t: TOST on the mean difference (paired t, or Welch unpaired); sign: two exact sign tests "
        "that more than half the paired differences lie strictly inside each margin (the median; paired only). "
        "Unset: t for a continuous metric, sign for a count, fraction or skewed one (t when unpaired).",
    )
    alpha: Alpha = ALPHA_DEFAULT

    @model_validator(mode="after")
    def _sign_is_paired(self) -> Equivalent:
        if self.method == "sign" and not self.paired:
            raise ValueError("method 'sign' tests paired differences: set paired = true or method = 't'")
        return self


Assertion = Annotated[Greater | Less | Proportion | Trend | Difference | Equivalent, Field(discriminator="test")]


class Sequential(_Strict):
    """Seeds on demand: the claim's seeds are computed ``batch`` at a time until it is decided.

    Each scale's ``seeds`` is then the most the run may spend (``max_seeds``). After each batch an
    anytime-valid test (an e-process, :mod:`repro.sequential`) is updated, and the run stops as soon
    as the claim is reproduced or refuted at its alpha (within its family), or when the seeds are
    spent (inconclusive). The seeds stay the prefix of the same SeedSequence spawn, so every seed
    computed is reused by later runs and by other claims.

    ``method`` states the test's assumption, which the claim must be able to defend: ``sign`` (none:
    the exact law of "a seed lies strictly beyond the threshold"; the median's confidence sequence),
    ``betting`` (the metric lies in ``bounds``; the mean), ``subgaussian`` (one seed's metric is
    sub-Gaussian with scale ``sigma``; the mean).
    """

    batch: int = Field(ge=1, le=1000, description="Seeds computed between two looks.")
    method: Literal["sign", "betting", "subgaussian"] = "sign"
    bounds: tuple[float, float] | None = Field(
        None, description="betting: the range every seed's metric lies in (the claim's stated assumption)."
    )
    sigma: float | None = Field(
        None, gt=0.0, allow_inf_nan=False, description="subgaussian: the sub-Gaussian scale of one seed's metric."
    )

    @model_validator(mode="after")
    def _assumptions(self) -> Sequential:
        if self.method == "betting":
            if self.bounds is None:
                raise ValueError("method 'betting' needs 'bounds = [low, high]', the range the metric lies in")
            low, high = self.bounds
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(f"bounds must be finite with low < high, got {list(self.bounds)}")
        elif self.bounds is not None:
            raise ValueError(f"'bounds' is the assumption of method 'betting', not of '{self.method}'")
        if self.method == "subgaussian" and self.sigma is None:
            raise ValueError("method 'subgaussian' needs 'sigma', the sub-Gaussian scale of one seed's metric")
        if self.method != "subgaussian" and self.sigma is not None:
            raise ValueError(f"'sigma' is the assumption of method 'subgaussian', not of '{self.method}'")
        return self


class Scale(BaseModel):
    """One scale of a claim. Known keys below; every other key overrides an experiment param.

    The param overrides are validated against the experiment's params model by the loader, so
    a misspelt key is refused there with the file, claim and field.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    seeds: int | None = Field(None, ge=1, le=10_000, description="Replicates at this scale.")
    expect: Expectation | None = Field(None, description="Verdict expected at this scale, if not the claim's.")
    finding: str | None = Field(None, description="Why this scale expects a different verdict.")
    skip: str | None = Field(
        None,
        min_length=10,
        description="The claim is not run at this scale, and why (e.g. no offline copy of its dataset exists). "
        "Reports and pytest show it as skipped with this reason; no verdict is claimed.",
    )
    departures: dict[str, Reason] = Field(
        default_factory=dict,
        description="Fields of the source's setting this scale sets otherwise (field -> why): the downsizing, "
        "declared field by field (the loader refuses an undeclared one).",
    )
    fragile: str | None = Field(
        None,
        min_length=10,
        description="The expected verdict at this scale stays fragile (one seed decides it: repro.fragility), and "
        "why it could not be made robust. Reports and a failing pytest item show it.",
    )

    @property
    def overrides(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _explain_expect(self) -> Scale:
        if self.expect is not None and not self.finding:
            raise ValueError("a scale that sets 'expect' must say why in 'finding'")
        if self.skip is not None and self.expect is not None:
            raise ValueError("a skipped scale expects no verdict: set 'skip' or 'expect', not both")
        return self


class Change(_Strict):
    """A dated note for every change of a claim's threshold, margin, alpha, seeds or expect.

    An expectation is evidence only if it was fixed before the result was seen: each change says
    what moved, why, and what the result was before it, and the report shows it beside the verdict.
    """

    date: datetime.date
    what: str = Field(min_length=3, description="The fields that changed, old -> new.")
    why: str = Field(min_length=10)
    before: str = Field(min_length=3, description="The verdict (and estimate) before the change.")
    fields: dict[str, tuple[Any, Any]] | None = Field(
        None,
        description="Machine-readable: each declared field the note changes, by its path in the baseline's "
        "'declared' (e.g. 'seeds.ci', 'assertion.method', 'family', 'params.ci.batch'), with [before, after]. "
        "Required for every change made since the committed baseline (repro.baseline.preregistration_problems).",
    )
    root_seed_kept: str | None = Field(
        None,
        min_length=10,
        description="Why a raised seed count keeps the root seed: the first seeds are then seeds the earlier run "
        "already looked at. Without it, a note that raises the seeds must also change the root seed.",
    )

    @field_validator("fields")
    @classmethod
    def _paths(cls, fields: dict[str, tuple[Any, Any]] | None) -> dict[str, tuple[Any, Any]] | None:
        for path, (before, after) in (fields or {}).items():
            if not path or any(not part for part in path.split(".")):
                raise ValueError(f"field path {path!r}: give a dotted path such as 'seeds.ci'")
            if before == after:
                raise ValueError(f"field {path!r}: before and after are equal ({before!r}): nothing changed")
        return fields


class Claim(_Strict):
    """One checkable sentence of a source, with the experiment and the test that decide it."""

    #: The claims file that declared it (set by the loader; not a field, so not part of its identity).
    _declared_in: str | None = PrivateAttr(default=None)

    @property
    def declared_in(self) -> str | None:
        return self._declared_in

    def mark_declared_in(self, path: str) -> None:
        """Record the claims file (the loader's; private state survives pickling to workers)."""
        self._declared_in = path

    id: str = Field(pattern=ID_PATTERN, max_length=120)
    source: str = Field(min_length=1, description="Key into the sources table.")
    statement: str = Field(min_length=10, description="The claim, as a sentence a paper would make.")
    evidence: str = Field(min_length=1, description="The source's own number or figure behind the threshold.")
    experiment: str = Field(min_length=1, description="Registered experiment name, e.g. 'tms.train'.")
    metric: str = Field(min_length=1, description="Per-seed metric the assertion reads.")
    at: float | None = Field(
        None, allow_inf_nan=False, description="Select one point of the experiment's sweep axis by its value."
    )
    seed: int = Field(0, ge=0, lt=2**63, description="Root seed; replicate seeds come from SeedSequence.spawn.")
    seeds: int = Field(ge=1, le=10_000, description="Replicates at full scale.")
    assertion: Assertion
    params: dict[str, Any] = Field(default_factory=dict, description="Experiment params at full scale.")
    arms: dict[str, dict[str, Any]] | None = Field(
        None, description="Named param overrides; each arm runs with the same seeds (paired)."
    )
    scales: dict[ScaleName, Scale]
    expect: Expectation = "reproduced"
    finding: str | None = Field(None, description="Required when expect is not 'reproduced'.")
    tags: tuple[str, ...] = ()
    setting: str | None = Field(
        None,
        description="The source's setting the claim runs in (a [setting.NAME] table); unset: the one setting "
        "declared for the claim's source and experiment, if any.",
    )
    departures: dict[str, Reason] = Field(
        default_factory=dict,
        description="Fields of the source's setting the claim sets otherwise at every scale (field -> why).",
    )
    adjudication: Adjudication | None = Field(
        None, description="For a finding (not reproduced or inconclusive): why it is about the source."
    )
    family: str | None = Field(
        None,
        pattern=ID_PATTERN,
        description="Multiple-comparison family: Holm's correction runs over the family's claims and the corrected "
        "p decides. Default: '<claims file name>.<source>', one source's claims in one file. Controls are never "
        "in a family.",
    )
    control: bool = Field(
        False, description="A known-answer or negative control: judged alone, outside every family's correction."
    )
    smallest_effect: float | None = Field(
        None,
        gt=0.0,
        allow_inf_nan=False,
        description="Smallest effect worth detecting, in the metric's units (beyond the threshold or margin); for "
        "a sign test (method 'sign', a trend, a proportion of cells per seed) the share of seeds beyond the "
        "threshold above one half (0 < smallest_effect < 0.5): `repro plan` sizes the seeds for it.",
    )
    changed: tuple[Change, ...] = Field(
        (), description="Dated notes for changes of threshold, margin, alpha, seeds or expect."
    )
    sequential: Sequential | None = Field(
        None,
        description="Seeds on demand: computed in batches until an anytime-valid test decides; each scale's "
        "seeds are then the most a run may spend.",
    )

    @field_validator("scales")
    @classmethod
    def _ci_required(cls, scales: dict[str, Scale]) -> dict[str, Scale]:
        if "ci" not in scales:
            raise ValueError("every claim declares a [claim.scales.ci] downsizing")
        return scales

    @field_validator("arms")
    @classmethod
    def _arm_names(cls, arms: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]] | None:
        if arms is not None and len(arms) < 2:
            raise ValueError("declare at least two arms, or none")
        return arms

    @model_validator(mode="after")
    def _consistent(self) -> Claim:
        if self.expect != "reproduced" and not self.finding:
            raise ValueError("a claim whose expect is not 'reproduced' must say why in 'finding'")
        comparative = isinstance(self.assertion, (Difference, Equivalent))
        if comparative:
            if not self.arms:
                raise ValueError(f"assertion '{self.assertion.test}' compares arms: declare [claim.arms]")
            for side in ("a", "b"):
                arm = getattr(self.assertion, side)
                if arm not in self.arms:
                    raise ValueError(f"assertion.{side} names arm '{arm}', not one of {sorted(self.arms)}")
        elif self.arms:
            raise ValueError(f"assertion '{self.assertion.test}' reads one arm; arms need difference/equivalent")
        if self.at is not None and not math.isfinite(self.at):
            raise ValueError("at must be finite")
        if self.sequential is not None:
            if isinstance(self.assertion, (Difference, Equivalent)) and not self.assertion.paired:
                raise ValueError("sequential seeds need paired arms: set assertion.paired = true")
            if isinstance(self.assertion, (Proportion, Trend)) and self.sequential.method != "sign":
                raise ValueError(
                    f"a {self.assertion.test} claim is decided by signs of per-seed values: sequential.method 'sign'"
                )
        needed = min_seeds(self.assertion.alpha)
        for scale in SCALES:
            if self.skipped(scale):
                continue
            if self.n_seeds(scale) < needed:
                raise ValueError(
                    f"{self.n_seeds(scale)} seeds at scale {scale} cannot decide at alpha {self.assertion.alpha:g}: "
                    f"every kind needs at least {needed} (the exact sign test's floor, 0.5**n < alpha)"
                )
            if isinstance(self.assertion, Proportion) and self.at is not None:  # one value per seed
                p0, n = self.assertion.min_fraction, self.n_seeds(scale)
                if n < binomial_min_seeds(p0, self.assertion.alpha):
                    raise ValueError(
                        f"{n} seeds at scale {scale} cannot decide: the exact binomial test's smallest p is "
                        f"min_fraction**seeds = {p0**n:.3g}, not below alpha {self.assertion.alpha:g}"
                    )
        return self

    # -- derived views (no state is stored twice) -------------------------------------------------
    def scale(self, name: str) -> Scale:
        return cast("dict[str, Scale]", self.scales).get(name) or Scale()  # any other name finds none

    def n_seeds(self, scale: str) -> int:
        return self.scale(scale).seeds or self.seeds

    def skipped(self, scale: str) -> str | None:
        """Why the claim is not run at this scale, or None when it is."""
        return self.scale(scale).skip

    def expected(self, scale: str) -> Outcome:
        return self.scale(scale).expect or self.expect

    def fragile(self, scale: str) -> str | None:
        """Why the expected verdict stays fragile at this scale (declared), or None."""
        return self.scale(scale).fragile

    def arm_names(self) -> tuple[str, ...]:
        return tuple(self.arms) if self.arms else ("main",)

    def raw_params(self, scale: str, arm: str = "main") -> dict[str, Any]:
        """Full-scale params, then the scale's overrides, then the arm's (unvalidated)."""
        merged = dict(self.params)
        merged.update(self.scale(scale).overrides)
        if self.arms:
            merged.update(self.arms[arm])
        return merged


def is_sign_test(claim: Claim) -> bool:
    """Whether the claim is decided by a sign test over seeds (``method = "sign"`` or a trend's per-seed rho).

    Its ``smallest_effect`` is then on the probability scale, q - 1/2 with q the chance a seed lies
    strictly beyond the threshold (see :mod:`repro.plan`). The method must be resolved first
    (:func:`repro.load.with_default_method`).
    """
    a = claim.assertion
    return isinstance(a, Trend) or getattr(a, "method", None) == "sign"
