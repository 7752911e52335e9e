"""scripts/gpu-check: the one command for a GPU box. Rehearsed here in its dry mode (no GPU in CI)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dry_run_lists_every_step_and_writes_nothing_outside_its_folder(tmp_path):
    result = subprocess.run(
        [str(ROOT / "scripts" / "gpu-check"), str(tmp_path / "out")],
        env={**os.environ, "GPU_CHECK_DRY": "1"}, capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    steps = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("[dry]")]
    assert steps == ["smoke", "bench-toy", "bench-diagram", "bench-active-learning", "claims-tms", "claims-phase",
                     "report", "bench-memory"]  # fmt: skip
    assert "--scale full --device cuda" in result.stdout


def test_every_family_has_the_cuda_smoke_test_the_script_selects():
    for family in ("tms", "phase", "sae", "active_learning", "subnetworks"):
        assert "def test_cuda_smoke" in (ROOT / "tests" / f"test_{family}.py").read_text(), family
