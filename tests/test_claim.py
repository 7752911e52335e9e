from __future__ import annotations

import tomllib

import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from repro.claim import Assertion, Claim, min_seeds

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
alpha = st.floats(min_value=1e-4, max_value=0.2)
words = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=10, max_size=80)
ident = st.from_regex(r"[a-z][a-z0-9]{0,6}(\.[a-z0-9][a-z0-9_-]{0,6}){0,3}", fullmatch=True)

single_arm = st.one_of(
    st.fixed_dictionaries(
        {
            "test": st.sampled_from(["greater", "less"]),
            "threshold": finite,
            "alpha": alpha,
            "method": st.sampled_from(["t", "wilcoxon", "sign"]),
        }
    ),
    st.fixed_dictionaries(
        {
            "test": st.just("proportion"),
            "min_fraction": st.floats(0, 0.99),
            "alpha": alpha,
            "predicate": st.fixed_dictionaries(
                {"op": st.sampled_from([">", ">=", "<", "<=", "==", "!="]), "value": finite}
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "test": st.just("trend"),
            "direction": st.sampled_from(["increasing", "decreasing"]),
            "min_rho": st.floats(0, 0.99),
            "alpha": alpha,
        }
    ),
)


@st.composite
def claims(draw):
    data = {
        "id": draw(ident),
        "source": draw(st.sampled_from(["elhage2022", "zroe1"])),
        "statement": draw(words),
        "evidence": draw(words),
        "experiment": "tms.train",
        "metric": draw(st.sampled_from(["n_represented", "frobenius_sq"])),
        "seeds": draw(st.integers(14, 10_000)),  # 14: the fewest seeds that can decide at alpha 1e-4
        "seed": draw(st.integers(0, 2**62)),
        "params": {"steps": draw(st.integers(1, 10_000)), "feature_probability": [draw(st.floats(0.001, 1.0))]},
        "scales": {"ci": {"seeds": draw(st.integers(14, 100)), "steps": draw(st.integers(1, 100))}},
    }
    if draw(st.booleans()):
        data["arms"] = {"a": {"model": "linear"}, "b": {"model": "relu_tied"}}
        data["assertion"] = draw(
            st.one_of(
                st.fixed_dictionaries(
                    {
                        "test": st.just("difference"),
                        "a": st.just("a"),
                        "b": st.just("b"),
                        "direction": st.sampled_from(["greater", "less"]),
                        "margin": finite,
                        "alpha": alpha,
                        "paired": st.booleans(),
                    }
                ),
                st.fixed_dictionaries(
                    {
                        "test": st.just("equivalent"),
                        "a": st.just("a"),
                        "b": st.just("b"),
                        "margin": st.floats(1e-3, 1e3),
                        "alpha": alpha,
                    }
                ),
            )
        )
    else:
        data["assertion"] = draw(single_arm)
    if draw(st.booleans()):
        data["expect"] = "not_reproduced"
        data["finding"] = draw(words)
    return data


@settings(max_examples=60, deadline=None)
@given(claims())
def test_valid_claim_round_trips_toml_model_json(data):
    claim = Claim.model_validate(data)
    through_toml = Claim.model_validate(tomllib.loads(tomli_w.dumps({"claim": [data]}))["claim"][0])
    assert through_toml == claim
    assert Claim.model_validate_json(claim.model_dump_json()) == claim


def test_assertion_union_is_discriminated_by_test():
    adapter = TypeAdapter(Assertion)
    assert type(adapter.validate_python({"test": "trend", "direction": "increasing"})).__name__ == "Trend"
    with pytest.raises(ValidationError):
        adapter.validate_python({"test": "greater", "threshold": 1, "margin": 3})  # extra field


def _minimal(scales: dict) -> dict:
    return {
        "id": "a.b", "source": "s", "statement": "a statement here", "evidence": "e", "experiment": "x",
        "metric": "m", "seeds": 7, "assertion": {"test": "greater", "threshold": 1}, "scales": scales,
    }  # fmt: skip


def test_claims_are_frozen():
    claim = Claim.model_validate(_minimal({"ci": {}}))
    with pytest.raises(ValidationError):
        claim.seeds = 4


def test_ci_scale_is_required():
    with pytest.raises(ValidationError, match="scales.ci"):
        Claim.model_validate(_minimal({"full": {}}))


def test_expect_error_is_refused_a_crash_never_passes():
    with pytest.raises(ValidationError, match="expect"):
        Claim.model_validate({**_minimal({"ci": {}}), "expect": "error", "finding": "a crash"})
    with pytest.raises(ValidationError, match="expect"):
        Claim.model_validate(_minimal({"ci": {"expect": "error", "finding": "a crash"}}))


@pytest.mark.parametrize(("alpha", "needed"), [(0.01, 7), (0.05, 5), (0.2, 3), (0.001, 10), (0.0078125, 8)])
def test_one_minimum_number_of_seeds_for_every_kind(alpha, needed):
    assert min_seeds(alpha) == needed
    assert 0.5**needed < alpha <= 0.5 ** (needed - 1)


@pytest.mark.parametrize("scale", ["ci", "full"])
def test_a_claim_whose_seeds_cannot_reach_its_alpha_is_refused_at_load(scale):
    data = _minimal({"ci": {"seeds": 6 if scale == "ci" else 7}})
    data["seeds"] = 6 if scale == "full" else 7
    with pytest.raises(ValidationError, match=f"6 seeds at scale {scale} cannot decide at alpha 0.01"):
        Claim.model_validate(data)
    skipped = _minimal({"ci": {"seeds": 2, "skip": "no offline copy of the data exists"}})
    assert Claim.model_validate(skipped).n_seeds("ci") == 2  # a scale that never runs decides nothing


def test_a_binomial_over_seeds_needs_min_fraction_to_the_seeds_below_alpha():
    data = {**_minimal({"ci": {"seeds": 10}}), "at": 0.1, "seeds": 30}
    data["assertion"] = {"test": "proportion", "predicate": {"op": ">", "value": 0}, "min_fraction": 0.8}
    with pytest.raises(ValidationError, match=r"min_fraction\*\*seeds = 0.107"):
        Claim.model_validate(data)
    data["scales"] = {"ci": {"seeds": 21}}  # 0.8**21 = 0.0092
    assert Claim.model_validate(data).n_seeds("ci") == 21


def test_changed_notes_are_dated_and_say_what_why_and_before():
    note = {
        "date": "2026-11-30",
        "what": "threshold 5 -> 6",
        "why": "the source's own figure is 6",
        "before": "ci reproduced",
    }
    claim = Claim.model_validate({**_minimal({"ci": {}}), "changed": [note]})
    assert claim.changed[0].date.isoformat() == "2026-11-30"
    with pytest.raises(ValidationError, match="why"):
        Claim.model_validate({**_minimal({"ci": {}}), "changed": [{**note, "why": ""}]})
