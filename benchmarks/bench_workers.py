"""Do worker processes ever slow a CPU run down? One process against two, through each front end.

Runs the same ci-scale claims from an empty store, each timing in a fresh store, with:

- ``repro run --workers 1`` (in-process) and ``repro run --workers 2`` (a spawned pool);
- ``pytest claims/FILE`` without pytest-xdist, with ``-n 2 --dist load`` (xdist's distribution item
  by item, what a bare ``-n`` gave before the plugin made loadgroup its default) and with
  ``-n 2 --dist loadgroup`` (the README's test command: the items that compute together on one
  worker, :mod:`repro.pytest_xdist`);
- both two-worker runs again with what they had before the worker environment existed: OpenMP's
  default (spinning) waits and every worker free to use every core (``OMP_WAIT_POLICY=ACTIVE``,
  ``OMP_NUM_THREADS`` = the core count), to show what the environment prevents.

    .venv/bin/python benchmarks/bench_workers.py [--claims claims/phase.toml] [--ids phase.] [--only pytest]

Measure on an otherwise idle machine: the point is how the workers share its cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _timed(command: list[str], extra_env: dict[str, str]) -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix="repro-bench-") as store:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "MKL_"))}
        env.update({"REPRO_HOME": store, **extra_env})
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        return time.perf_counter() - started, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--claims", default="claims/phase.toml")
    parser.add_argument("--ids", nargs="*", default=[])
    parser.add_argument("--only", nargs="*", default=[], help="run only the cases whose name contains one of these")
    args = parser.parse_args()
    cores = str(os.cpu_count() or 1)
    spin = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": cores, "MKL_NUM_THREADS": cores}
    repro = [str(BIN / "repro"), "run", "--scale", "ci", "--claims", args.claims, *args.ids]
    pytest = [str(BIN / "python"), "-m", "pytest", args.claims, "-m", "not gpu", "-q", "-p", "no:cacheprovider"]
    if args.ids:
        pytest += ["-k", " or ".join(args.ids)]
    cases = [
        ("repro run --workers 1", [*repro, "--workers", "1"], {}),
        ("repro run --workers 2", [*repro, "--workers", "2"], {}),
        ("repro run --workers 2, spinning waits, all cores each", [*repro, "--workers", "2"], spin),
        ("pytest (one process)", [*pytest, "-p", "no:xdist"], {}),
        ("pytest -n 2 --dist load", [*pytest, "-n", "2", "--dist", "load"], {}),
        ("pytest -n 2 --dist load, spinning waits, all cores each", [*pytest, "-n", "2", "--dist", "load"], spin),
        ("pytest -n 2 --dist loadgroup", [*pytest, "-n", "2", "--dist", "loadgroup"], {}),
    ]
    print(f"claims: {args.claims} {' '.join(args.ids)}; {cores} cores")
    print("| run | wall (s) | exit |")
    print("| --- | ---: | ---: |")
    for name, command, env in cases:
        if args.only and not any(part in name for part in args.only):
            continue
        wall, code = _timed(command, env)
        print(f"| {name} | {wall:.1f} | {code} |", flush=True)


if __name__ == "__main__":
    main()
