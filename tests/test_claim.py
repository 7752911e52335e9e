from __future__ import annotations

import tomllib

import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from repro.claim import Assertion, Claim

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
        "seeds": draw(st.integers(1, 10_000)),
        "seed": draw(st.integers(0, 2**62)),
        "params": {"steps": draw(st.integers(1, 10_000)), "feature_probability": [draw(st.floats(0.001, 1.0))]},
        "scales": {"ci": {"seeds": draw(st.integers(1, 100)), "steps": draw(st.integers(1, 100))}},
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
        "metric": "m", "seeds": 3, "assertion": {"test": "greater", "threshold": 1}, "scales": scales,
    }  # fmt: skip


def test_claims_are_frozen():
    claim = Claim.model_validate(_minimal({"ci": {}}))
    with pytest.raises(ValidationError):
        claim.seeds = 4


def test_ci_scale_is_required():
    with pytest.raises(ValidationError, match="scales.ci"):
        Claim.model_validate(_minimal({"full": {}}))
