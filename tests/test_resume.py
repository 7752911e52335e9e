"""A run killed with SIGKILL part-way leaves a readable store and resumes where it stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from repro.judge import evaluate
from repro.load import load_claims
from repro.store import Store

from .helpers import write_claims

TOTAL = 5 * 8  # claims x seeds

CLAIM = """
[[claim]]
id = "resume.p{index}"
family = "resume.p{index}"  # judged alone: this test is about resuming, not multiple comparisons
source = "test"
statement = "A ReLU toy model at feature probability {p} represents at least one feature"
evidence = "Test fixture"
experiment = "tms.train"
metric = "n_represented"
seeds = 8
assertion = {{ test = "greater", threshold = 0.5, method = "sign" }}
params = {{ n_features = 8, n_hidden = 3, feature_probability = [{p}], steps = {steps}, batch = 256 }}
[claim.scales.ci]
seeds = 8
"""


def _results(home):
    """Finished results: pathlib's glob also matches dot-files, so name the temporaries out."""
    return [p for p in home.glob("results/*/*/*.json") if not p.name.startswith(".tmp-")]


def _run(claims, home, wait_for_first_result=False):
    env = {**os.environ, "REPRO_HOME": str(home), "COLUMNS": "200"}
    command = [sys.executable, "-m", "repro", "run", "--claims", str(claims), "--device", "cpu"]
    if not wait_for_first_result:
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not _results(home) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return process


def test_kill_nine_then_resume(tmp_path):
    body = "".join(CLAIM.format(index=i, p=p, steps=1500) for i, p in enumerate([1.0, 0.5, 0.3, 0.2, 0.1]))
    claims = write_claims(tmp_path / "claims", body)
    home = tmp_path / "store"
    _run(claims, home, wait_for_first_result=True)

    stored = _results(home)
    assert 0 < len(stored) < TOTAL, "the kill should land part-way through the seed results"
    for path in stored:  # every result that exists is whole: JSON parses and its arrays load
        json.loads(path.read_text())
        assert path.with_suffix(".npz").exists()
    store = Store(home)
    for claim in load_claims(claims):
        run = evaluate(claim, "ci", store)
        for results in run.results.values():
            for result in results:
                assert result.arrays()["W"].shape == (1, 3, 8)

    finished = _run(claims, home)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert f"({TOTAL - len(stored)} seed results computed" in finished.stdout
    assert len(_results(home)) == TOTAL
    # A temporary file of the killed write may remain: readers never see it, and a later open clears it.

    again = _run(claims, home)  # everything cached now
    assert again.returncode == 0 and "(0 seed results computed" in again.stdout
