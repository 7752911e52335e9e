"""Peak host memory of each family at full scale, measured on a CPU through the rehearsal.

Each family runs in a fresh process: every full-scale claim's params (the source's networks, widths,
grids, batch sizes and every full-scale seed where the experiment trains seeds together), with the
rehearsal's cuts to steps and epochs (repro/rehearsal.py) and a few more below, on data fabricated
at the real datasets' sizes (MNIST 60k/10k, CIFAR-10 50k/10k, Tiny ImageNet 100k/10k; ImageNet is
read lazily, batch by batch, so a few dozen images stand for it). Reported: the process's peak
resident set size (ru_maxrss), and the same after importing torch and the package alone, so that
the difference is what the family allocates. On CUDA the tensors of that difference live on the
device instead: ``--device cuda`` runs the same on a GPU and adds torch.cuda.max_memory_allocated
(``scripts/gpu-check`` does).

    .venv/bin/python benchmarks/bench_memory.py [--data DIR] [--device cpu|cuda] [--families tms phase ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = {
    "tms": "tms.train",
    "phase": "phase.one_neuron",
    "sae": "sae.mnist",
    "stall": "stall.active_learning",
    "subnetworks": "subnetworks.split",
}
#: Beyond the rehearsal's cuts: the active-learning arms train on the first 400 images (the loader
#: still holds the whole dataset) and compute the feature metrics on 1,000 test images, which the
#: table scales to the full test set (features x 4 bytes).
EXTRA_CUTS = {"stall.active_learning": {"train_size": 400, "metric_test_size": 1000}}
#: Families whose arms are all the same size: the arms measured (phase: 10^5 models a seed in each arm;
#: the shared-mask sampler holds the largest batch).
ONLY = {
    "phase": ["phase.relu.theory-agreement", "phase.zroe1.shared-masks.no-antipodal"],
    # CIFAR-10 at 32 px, and Tiny ImageNet at 224 px (the largest images and the largest resident set).
    "stall": ["stall.cifar10.as-published.silhouette-not-raised", "stall.tiny-imagenet.al-silhouette-negative"],
}
#: Families that train their seeds one after another (seeds held at once: 1): one seed measures their
#: peak, as every later seed frees the previous one's network before it starts.
ONE_SEED = {"stall", "subnetworks"}

CHILD = r"""
import json, resource, sys
import repro.experiments, repro.rehearsal  # first: pins the numerics before torch loads
import torch
from repro.load import load_claims
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
experiment, root, device = sys.argv[1], sys.argv[2], sys.argv[5]
extra, only = json.loads(sys.argv[3]), json.loads(sys.argv[4])
claims = [c for c in load_claims("claims") if c.experiment == experiment and not c.skipped("full")
          and (not only or c.id in only)]
all_seeds = sys.argv[6] == "all"
result = repro.rehearsal.rehearse(claims, data_root=root, all_seeds=all_seeds, extra_cuts=extra, device=device)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cuda = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
print(json.dumps({"ok": result.ok, "problems": [p for a in result.arms for p in a.problems],
                  "base_mib": base / 1024, "peak_mib": peak / 1024, "wall_s": result.wall_s,
                  "seeds": max(len(a.seeds) for a in result.arms), "arms": len(result.arms), "cuda_mib": cuda}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="fabricated data at real sizes (made here when absent)")
    parser.add_argument("--families", nargs="*", default=list(EXPERIMENTS))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from repro.fabricate import REAL_SIZES, fabricate

    data = args.data or Path(tempfile.mkdtemp(prefix="repro-memory-"))
    if not (data / "weights").is_dir():
        started = time.perf_counter()
        fabricate(data, sizes=REAL_SIZES)
        print(f"fabricated real-size data in {data} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    print("| family | seeds held at once | peak RSS (MiB) | torch + package alone (MiB) | own (MiB) | wall (s) | "
          "peak CUDA allocated (MiB) |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for family in args.families:
        out = subprocess.run([sys.executable, "-c", CHILD, EXPERIMENTS[family], str(data), json.dumps(EXTRA_CUTS),
                              json.dumps(ONLY.get(family, [])), args.device,
                              "one" if family in ONE_SEED else "all"],
                             cwd=ROOT, env=env, capture_output=True, text=True, check=False)  # fmt: skip
        if out.returncode != 0:
            print(f"| {family} | failed: {out.stderr.strip().splitlines()[-1]} |")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        note = "" if r["ok"] else f" (problems: {r['problems'][:2]})"
        print(f"| {family} | {r['seeds']} | {r['peak_mib']:,.0f} | {r['base_mib']:,.0f} | "
              f"{r['peak_mib'] - r['base_mib']:,.0f} | {r['wall_s']:.0f}{note} | "
              f"{'-' if r['cuda_mib'] is None else format(r['cuda_mib'], ',.0f')} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
