from __future__ import annotations

import dataclasses
import textwrap

import pytest
import torch  # imported before pytester's sys.modules snapshot: torch cannot be imported twice in a process

from repro import registry

from .helpers import SOURCES, claim_text, skipped_claim_text


@pytest.fixture
def claims_dir(pytester):
    folder = pytester.mkdir("claims")
    (folder / "sources.toml").write_text(textwrap.dedent(SOURCES))
    return folder


def test_two_items_per_claim_and_full_needs_gpu_where_its_experiment_does(pytester, claims_dir, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    calibration = registry.get("calibration.normal")
    monkeypatch.setitem(registry._REGISTRY, calibration.name, dataclasses.replace(calibration, devices=("cuda",)))
    (claims_dir / "demo.toml").write_text(claim_text())
    result = pytester.runpytest_inprocess("claims", "-v", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*demo.mean-positive?ci? PASSED*", "*full scale*runs it on cuda*no CUDA device*"])


def test_full_items_of_a_cpu_experiment_run_on_the_cpu(pytester, claims_dir, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert registry.get("calibration.normal").devices == ("cpu",)
    (claims_dir / "demo.toml").write_text(claim_text())
    result = pytester.runpytest_inprocess("claims", "-v", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*demo.mean-positive?ci? PASSED*", "*demo.mean-positive?full? PASSED*"])


def test_not_gpu_deselects_full(pytester, claims_dir):
    (claims_dir / "demo.toml").write_text(claim_text())
    result = pytester.runpytest_inprocess("claims", "-m", "not gpu", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, deselected=1)


def test_failure_text_says_what_was_found(pytester, claims_dir):
    # Draws with mean -1 cannot have a mean above 0: expecting "reproduced" must fail, with the evidence.
    (claims_dir / "demo.toml").write_text(claim_text(mean=-1.0))
    result = pytester.runpytest_inprocess("claims", "-m", "not gpu", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, deselected=1)
    result.stdout.fnmatch_lines(
        [
            "*expected reproduced, got not_reproduced*",
            "*statement: Draws with mean 1 have a mean above 0*",
            "*estimate:*CI*threshold 0.0*",
            "*test:*scipy.stats.ttest_1samp*p = *",
        ]
    )


def test_negative_control_passes_when_not_reproduced(pytester, claims_dir):
    (claims_dir / "demo.toml").write_text(claim_text(mean=-1.0, expect="not_reproduced"))
    result = pytester.runpytest_inprocess("claims", "-m", "not gpu", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, deselected=1)


def test_malformed_file_is_a_collection_error_naming_the_field(pytester, claims_dir):
    (claims_dir / "demo.toml").write_text(claim_text().replace("seeds = 12", "seeds = -1"))
    result = pytester.runpytest_inprocess("claims", "-p", "no:cacheprovider")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*demo.toml: claim 'demo.mean-positive': field 'seeds'*"])


def test_other_toml_files_are_ignored(pytester):
    pytester.makefile(".toml", other='[tool]\nname = "x"\n')
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_a_skipped_scale_is_a_pytest_skip_with_its_reason(pytester, claims_dir):
    (claims_dir / "demo.toml").write_text(skipped_claim_text("no offline copy of this dataset exists"))
    result = pytester.runpytest_inprocess("claims", "-m", "not gpu", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1, deselected=1)
    result.stdout.fnmatch_lines(["*not run at ci scale: no offline copy of this dataset exists*"])


def test_a_failure_gives_the_decision_margin_and_a_declared_fragility(pytester, claims_dir):
    text = claim_text(mean=-1.0).replace("[claim.scales.ci]\nseeds = 10\n", "[claim.scales.ci]\nseeds = 10\n"
                                         'fragile = "declared here: the test reads the reason back"\n')  # fmt: skip
    (claims_dir / "demo.toml").write_text(text)
    result = pytester.runpytest_subprocess("claims", "-m", "not gpu", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, deselected=1)
    result.stdout.fnmatch_lines(
        [
            "*margin:*robust: more than 3 seeds decide (leaving one seed out moves it for 0 of 10)*",
            "*declared fragile at ci: declared here: the test reads the reason back*",
        ]  # fmt: skip
    )
