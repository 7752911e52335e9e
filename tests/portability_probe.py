"""Compute the first seeds of some claims at ci scale into a store; print each result's metrics, exactly.

Run as a script by tests/test_portability.py, once per machine it emulates (the environment decides the
instruction set the libraries would pick, the thread count and whether xdist peers share the cores):

    python tests/portability_probe.py STORE N_SEEDS CLAIM_ID...

Prints one JSON object: claim id -> arm -> seed -> the stored metrics (floats by repr, which round-trips
every bit), plus "numerics" (what the process dispatched to) and "cores" (the width it computed at).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import repro  # first: pins the numerics before torch and numpy load
from repro import load, numerics, runner, workers
from repro.judge import keys_of, replicate_seeds
from repro.store import Store


def main(store_path: str, n_seeds: str, *ids: str) -> None:
    peers_dir = os.environ.get(workers.PEERS_VARIABLE)
    if peers_dir:  # as an xdist worker of a session that chose the thread counts
        peers = workers.Peers(Path(peers_dir), os.cpu_count() or 1)
        peers.join()
        workers.share_cores(peers)
    claims = load.load_claims(Path(repro.__file__).resolve().parent.parent / "claims")
    store = Store(Path(store_path))
    out: dict[str, object] = {}
    for claim_id in ids:
        claim = claims.get(claim_id)
        seeds = replicate_seeds(claim.seed, claim.n_seeds("ci"))[: int(n_seeds)]
        done = runner.compute(claim, "ci", store=store, device="cpu", seeds=seeds)
        if done.error:
            raise SystemExit(f"{claim_id}: {done.error}")
        experiment = claim.experiment
        arms: dict[str, dict[str, object]] = {}
        for arm, (_, keys) in keys_of(claim, "ci", seeds).items():
            arms[arm] = {str(s): _exact(_metrics(store, experiment, k)) for s, k in zip(seeds, keys, strict=True)}
        out[claim_id] = arms
    out["numerics"] = numerics.describe()
    out["cores"] = workers.cores()
    print(json.dumps(out, sort_keys=True))


def _metrics(store: Store, experiment: str, key: str) -> object:
    result = store.load(experiment, key)
    assert result is not None, f"{experiment} {key} was computed but is not in the store"
    return result.metrics


def _exact(value: object) -> object:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_exact(v) for v in value]
    return value


if __name__ == "__main__":
    main(*sys.argv[1:])
