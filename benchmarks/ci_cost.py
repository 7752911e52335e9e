"""Where the ci suite's compute goes: each claim's seeds, from the seconds the store recorded.

Every stored result carries ``runtime_s``, its experiment call's wall time divided by the seeds the
call computed, on the cores the call had (one under ``pytest -n 2`` on two cores). This sums them per
claim at a scale, counting a result shared by several claims (the same experiment, params and seed)
once, for the first claim in file order that reads it, and per claims file. It runs
nothing: a claim whose results are missing is listed with the count missing.

Prints markdown tables (benchmarks/README.md, "Every claim at ci scale")::

    .venv/bin/python benchmarks/ci_cost.py [--store .repro] [--scale ci] [--top 25]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from repro import registry
from repro.judge import keys_of, replicate_seeds
from repro.load import load_claims
from repro.store import Store

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=ROOT / ".repro")
    parser.add_argument("--claims", type=Path, default=ROOT / "claims")
    parser.add_argument("--scale", default="ci", choices=("ci", "full"))
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    store = Store(args.store)
    seen: set[str] = set()
    rows = []  # (own seconds, claim id, file, seeds, results missing)
    for path in sorted(args.claims.glob("*.toml")):
        claim_set = load_claims(path)
        for claim in claim_set.claims:
            if claim.skipped(args.scale):
                continue
            name = registry.get(claim.experiment).name
            seeds = replicate_seeds(claim.seed, claim.n_seeds(args.scale))
            own, missing = 0.0, 0
            for _params, keys in keys_of(claim, args.scale, seeds).values():
                for key in keys:
                    if key in seen:
                        continue
                    result = store.load(name, key)
                    if result is None:
                        missing += 1
                        continue
                    seen.add(key)
                    own += result.runtime_s
            rows.append((own, claim.id, path.stem, len(seeds), missing))

    total = sum(r[0] for r in rows)
    by_file: dict[str, float] = defaultdict(float)
    for own, _id, stem, _n, _m in rows:
        by_file[stem] += own
    print(f"Compute of every claim's {args.scale} seeds, as the store recorded it: {total:,.0f} s in all\n")
    print("| claims file | s | share |\n| --- | ---: | ---: |")
    for stem, seconds in sorted(by_file.items(), key=lambda kv: -kv[1]):
        print(f"| {stem} | {seconds:,.0f} | {seconds / total:.0%} |")
    print(f"\nThe {args.top} costliest claims (a shared result counted for the first claim that reads it):\n")
    print("| claim | seeds | s | missing |\n| --- | ---: | ---: | ---: |")
    for own, claim_id, _stem, n, missing in sorted(rows, reverse=True)[: args.top]:
        print(f"| `{claim_id}` | {n} | {own:,.1f} | {missing or ''} |")


if __name__ == "__main__":
    main()
