"""Tiny claims files for tests: the calibration experiment runs in milliseconds."""

from __future__ import annotations

import textwrap
from pathlib import Path

SOURCES = """
[source.test]
title = "Test source"
authors = "Tester"
year = 2024
url = "https://example.org"
"""

GOOD_CLAIM = """
[[claim]]
id = "demo.mean-positive"
source = "test"
statement = "Draws with mean 1 have a mean above 0"
evidence = "By construction"
experiment = "calibration.normal"
metric = "value"
seeds = 12
assertion = {{ test = "greater", threshold = 0.0, alpha = 0.01 }}
params = {{ mean = {mean}, sd = 0.5 }}
expect = "{expect}"
{finding}
[claim.scales.ci]
seeds = 10
"""


def claim_text(mean: float = 1.0, expect: str = "reproduced") -> str:
    finding = 'finding = "control"' if expect != "reproduced" else ""
    return GOOD_CLAIM.format(mean=mean, expect=expect, finding=finding)


def write_claims(folder: Path, body: str, name: str = "demo.toml", sources: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if sources:
        (folder / "sources.toml").write_text(textwrap.dedent(SOURCES))
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


def skipped_claim_text(reason: str = "no offline copy of this dataset exists") -> str:
    """The good claim, declared not runnable at ci scale."""
    ci = "[claim.scales.ci]\nseeds = 10\n"
    return claim_text().replace(ci, f'{ci}skip = "{reason}"\n')
