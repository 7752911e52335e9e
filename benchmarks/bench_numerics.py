"""What portable numerics cost: the first seeds of one claim per family, native against pinned.

Each variant runs in a fresh process with an empty store of its own (``runner.compute`` at ci scale,
in-process, on all of this machine's cores), so that the libraries choose their kernels when they load:

- native: ``REPRO_NUMERICS=native``, each library's kernels for this CPU, torch on the worker's cores;
- ISA only: native, with the pins' instruction-set variables set by hand (AVX2 kernels, torch's threads);
- pinned: the default (AVX2 kernels, one intra-op thread, seeds spread over the cores).

Prints a markdown table of seconds per claim (benchmarks/README.md, "Portable numerics")::

    .venv/bin/python benchmarks/bench_numerics.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLAIMS = (
    "tms.relu.frobenius-at-0.01",
    "phase.linear.antipodal.control",
    "sae.probe.at-chance.control",
    "stall.cifar10.as-published.silhouette-not-raised",
    "subnetworks.cs.beats-dense",
)
CHILD = r"""
import json, sys, time
import repro  # first: pins (or not) before torch and numpy load
from repro import load, numerics, runner
from repro.judge import replicate_seeds
from repro.store import Store

claims, store, k = load.load_claims(sys.argv[1]), Store(sys.argv[2]), int(sys.argv[3])
times = {}
for claim_id in sys.argv[4:]:
    claim = claims.get(claim_id)
    started = time.perf_counter()
    seeds = replicate_seeds(claim.seed, claim.n_seeds("ci"))[:k]
    done = runner.compute(claim, "ci", store=store, device="cpu", seeds=seeds)
    if done.error:
        raise SystemExit(f"{claim_id}: {done.error}")
    times[claim_id] = time.perf_counter() - started
print(json.dumps({"numerics": numerics.describe(), "times": times}))
"""


def variants() -> dict[str, dict[str, str]]:
    from repro import numerics

    isa = {k: v for k, v in numerics.PINS.items()}
    return {"native": {numerics.VARIABLE: "native"}, "ISA only": {numerics.VARIABLE: "native", **isa}, "pinned": {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--variants", nargs="+", default=["native", "ISA only", "pinned"], choices=["native", "ISA only", "pinned"]
    )
    args = parser.parse_args()
    from repro import numerics

    clean = {k: v for k, v in os.environ.items() if k not in (*numerics.PINS, numerics.VARIABLE)}
    print(f"load average {os.getloadavg()}")
    results = {}
    for name, env in variants().items():
        if name not in args.variants:
            continue
        with tempfile.TemporaryDirectory() as store:
            command = [sys.executable, "-c", CHILD, str(ROOT / "claims"), store, str(args.seeds), *CLAIMS]
            done = subprocess.run(command, env={**clean, **env}, capture_output=True, text=True, check=True)
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{name}: {results[name]['numerics']}")
    names = list(results)
    print("| claim | " + " | ".join(f"{n} (s)" for n in names) + " |")
    print("| --- | " + " | ".join("---:" for _ in names) + " |")
    for claim_id in CLAIMS:
        print(f"| {claim_id} | " + " | ".join(f"{results[n]['times'][claim_id]:.1f}" for n in names) + " |")
    print("| all | " + " | ".join(f"{sum(results[n]['times'].values()):.1f}" for n in names) + " |")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
