"""Time ``repro report`` cold (no figure kept in the store) and warm, and weigh the page it writes.

    .venv/bin/python benchmarks/bench_report.py [--store .repro] [--scale ci] [--repeat 3]

Each build is the whole command in a fresh process (start-up, imports, judging, figures, page),
as a user runs it. The store's results are read where they are, but the figures are kept in a
temporary store whose ``results`` is a symbolic link to them: the cold build starts from an empty
figure cache and the store's own cache is neither read nor changed. The cold build runs once, the
warm build ``--repeat`` times; every warm page must be byte-identical to the cold one. The load
average is printed before and after (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build(home: Path, out: Path, scale: str, claims: Path) -> float:
    """Seconds for one ``repro report`` into ``out`` with the store at ``home``."""
    env = {**os.environ, "REPRO_HOME": str(home)}
    command = [sys.executable, "-m", "repro", "report", "--scale", scale, "--claims", str(claims), "--out", str(out)]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, default=ROOT / ".repro", help="A store with results (default .repro).")
    parser.add_argument("--scale", default="ci")
    parser.add_argument("--claims", type=Path, default=ROOT / "claims")
    parser.add_argument("--repeat", type=int, default=3, help="Warm builds to time.")
    args = parser.parse_args()
    results = args.store.resolve() / "results"
    if not results.is_dir():
        raise SystemExit(f"{results}: no results to report on (run `repro run --scale {args.scale}` first)")

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        home = Path(tmp) / "store"
        home.mkdir()
        (home / "results").symlink_to(results, target_is_directory=True)
        cold_s = build(home, Path(tmp) / "cold", args.scale, args.claims)
        page = (Path(tmp) / "cold" / "index.html").read_bytes()
        warm = []
        for k in range(args.repeat):
            warm.append(build(home, Path(tmp) / f"warm{k}", args.scale, args.claims))
            if (Path(tmp) / f"warm{k}" / "index.html").read_bytes() != page:
                raise SystemExit("a warm page differs from the cold one")
        kept = sum(p.stat().st_size for p in (home / "figures").rglob("*") if p.is_file())
        n_kept = sum(1 for p in (home / "figures").rglob("*") if p.is_file())
    print(f"cold: {cold_s:.2f} s (empty figure cache)")
    print(f"warm: {min(warm):.2f} s best, {statistics.median(warm):.2f} s median of {len(warm)}")
    print(f"page: {len(page):,} bytes ({len(page) / 2**20:.2f} MiB), warm pages byte-identical to the cold one")
    print(f"figure cache: {n_kept} entries, {kept:,} bytes")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
