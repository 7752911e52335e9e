"""pytest -n N --dist loadgroup: the items that compute the same results run on one worker."""

from __future__ import annotations

import re
import textwrap

import pytest

from repro.pytest_xdist import _strip_group, claim_groups

from .helpers import SOURCES


def _claim(claim_id: str, threshold: float, mean: float, sd: float, control: bool = False) -> str:
    """One calibration.normal claim: draws N(mean, sd^2) have a mean above ``threshold``."""
    extra = 'control = true\nexpect = "not_reproduced"\nfinding = "a negative control"\n' if control else ""
    return f"""
[[claim]]
id = "{claim_id}"
source = "test"
statement = "Draws with mean {mean} have a mean above {threshold}"
evidence = "By construction"
experiment = "calibration.normal"
metric = "value"
seeds = 12
assertion = {{ test = "greater", threshold = {threshold}, alpha = 0.01 }}
params = {{ mean = {mean}, sd = {sd} }}
{extra}
[claim.scales.ci]
seeds = 10
"""


#: Six claims of one Holm family (source "test"), a control that reads the same results as fam.c0
#: (same params), and a control of its own. calibration.normal is instant, so only the scheduling is
#: tested.
CLAIMS = (
    "".join(_claim(f"fam.c{i}", i / 10, 1.0, 0.1 + i / 100) for i in range(6))
    + _claim("fam.shared.control", 2.0, 1.0, 0.1, control=True)
    + _claim("alone.control", 0.0, -1.0, 0.5, control=True)
)

IDS = [f"fam.c{i}" for i in range(6)] + ["fam.shared.control", "alone.control"]


def _write(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sources.toml").write_text(textwrap.dedent(SOURCES))
    path = folder / "demo.toml"
    path.write_text(CLAIMS)
    return path


def test_a_family_and_the_claims_sharing_its_results_form_one_group(tmp_path):
    path = _write(tmp_path / "claims")
    groups = claim_groups(path, [(i, "ci") for i in IDS])
    family = {groups[(i, "ci")] for i in IDS[:7]}
    assert len(family) == 1  # the family, and the control whose params equal fam.c0's
    assert groups[("alone.control", "ci")] not in family
    # The same claims at another scale are other items, computing other results: another group.
    full = claim_groups(path, [(i, "full") for i in IDS])
    assert not set(full.values()) & set(groups.values())


def test_the_group_suffix_of_pytest_8_is_read_and_brackets_keep_theirs():
    assert _strip_group("claims/a.toml::x.y[ci]@claims/a.toml") == "claims/a.toml::x.y[ci]"
    assert _strip_group("tests/test_a.py::test_b@slurm") == "tests/test_a.py::test_b"
    assert _strip_group("tests/test_a.py::test_b[user@host]") == "tests/test_a.py::test_b[user@host]"


@pytest.mark.parametrize("dist", [["--dist", "loadgroup"], []], ids=["dist-loadgroup", "bare-n"])
def test_under_xdist_a_family_runs_on_one_worker(pytester, dist):
    """End to end with two workers. Without the grouping, the eight items are dealt out one by one and
    the seven that compute together would land on both workers (pytest 9 drops xdist's own groups).
    A bare ``-n`` gets the same groups: the plugin turns xdist's default ``--dist load`` into loadgroup."""
    _write(pytester.path / "claims")
    result = pytester.runpytest_subprocess("claims", "-m", "not gpu", "-n", "2", *dist, "-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=8)
    workers = {}
    for line in result.stdout.lines:
        found = re.search(r"\[(gw\d)\].*PASSED claims/demo\.toml::([\w.]+)\[ci\]", line)
        if found:
            workers[found.group(2)] = found.group(1)
    assert set(workers) == set(IDS)
    assert len({workers[i] for i in IDS[:7]}) == 1, workers
