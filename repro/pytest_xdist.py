"""Scheduling for ``pytest -n N --dist loadgroup``: the items that compute the same results share a worker.

pytest-xdist's own loadgroup marks a group by appending ``@group`` to each item's node id on the
workers; pytest 9 keeps an item's id elsewhere, the suffix is lost, and every item is scheduled on its
own (pytest 9.2 with pytest-xdist 3.8: a claim family's items then ran on both workers, each computing
the family). This scheduler derives the groups from the node ids alone, on the controller:

- a claims file's items are grouped by what they compute at their scale: claims of one Holm family
  (judged together, the family's first item computes every member) and claims whose arms run the same
  experiment with the same params (they read the same results) form one group, the union of both;
- test modules named in the ``repro_one_worker_modules`` ini option (modules whose costly
  module-scoped fixture should be built once: a SLURM cluster, a filled store) form one group each;
- an item that still carries xdist's ``@group`` suffix (pytest 8) keeps that group;
- every other item is a group of its own.

Groups are handed out largest estimated cost first (longest processing time first, so that the last
groups to run are short): the units matched by the ``repro_xdist_first`` ini option's node-id prefixes
in their order, then claims groups by their number of items, then the rest by theirs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest
from xdist.scheduler import LoadScopeScheduling

from repro.errors import ClaimFileError

__all__ = ["ClaimGroupScheduling", "claim_groups"]


def claim_groups(path: Path, items: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """{(claim id, scale): group name} for the items of one claims file, named by each group's first claim.

    Claims are joined when they share a Holm family at that scale or an (experiment, params) arm.
    """
    from repro.load import load_claims, resolve_params

    claim_set = load_claims(path)  # validated: every claim's params resolve at every scale and arm
    by_id = {c.id: c for c in claim_set}
    items = [(claim_id, scale) for claim_id, scale in items if claim_id in by_id]
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    for claim_id, scale in items:
        claim, node = by_id[claim_id], f"claim {claim_id}[{scale}]"
        find(node)
        family = claim_set.family(claim)
        if family is not None:
            union(node, f"family {family}[{scale}]")
        for arm in claim.arm_names():
            union(node, f"setting {claim.experiment}|{scale}|{resolve_params(claim, scale, arm).model_dump_json()}")
    names: dict[str, str] = {}  # component root -> its first item, in file order
    for claim_id, scale in items:
        names.setdefault(find(f"claim {claim_id}[{scale}]"), f"{path.name}::{claim_id}[{scale}]")
    return {(claim_id, scale): names[find(f"claim {claim_id}[{scale}]")] for claim_id, scale in items}


class ClaimGroupScheduling(LoadScopeScheduling):
    """xdist's load-scope scheduling with the groups described in the module docstring."""

    def __init__(self, config: pytest.Config, log=None) -> None:
        super().__init__(config, log)
        self._one_worker = tuple(config.getini("repro_one_worker_modules"))
        self._first = tuple(config.getini("repro_xdist_first"))
        self._rootpath = config.rootpath
        self._claims: dict[str, dict[tuple[str, str], str]] | None = None

    def _claims_scopes(self) -> dict[str, dict[tuple[str, str], str]]:
        """Per claims file (its node-id path), {(claim id, scale): group}, from the collection."""
        if self._claims is None:
            wanted: dict[str, list[tuple[str, str]]] = {}
            for nodeid in self.collection or ():
                item = _claim_item(_strip_group(nodeid))
                if item is not None:
                    wanted.setdefault(item[0], []).append(item[1:])
            self._claims = {}
            for file, items in wanted.items():
                try:
                    self._claims[file] = claim_groups(self._rootpath / file, items)
                except ClaimFileError:  # an invalid claims file is reported by its collector
                    self._claims[file] = {}
        return self._claims

    def _split_scope(self, nodeid: str) -> str:
        bare = _strip_group(nodeid)
        item = _claim_item(bare)
        if item is not None:
            group = self._claims_scopes().get(item[0], {}).get(item[1:])
            if group is not None:
                return "claims/" + group
        if bare != nodeid:
            return nodeid.rsplit("@", 1)[-1]
        file = bare.partition("::")[0]
        return file if file in self._one_worker else nodeid

    def _cost(self, scope: str) -> tuple[int, int, int]:
        """Sort key, smaller first: the ini's prefixes in order, then claims groups, then the rest."""
        rank = next((i for i, prefix in enumerate(self._first) if scope.startswith(prefix)), len(self._first))
        size = len(self.workqueue.get(scope, {}))
        return (rank, 0 if scope.startswith("claims/") else 1, -size)

    def _assign_work_unit(self, node) -> None:
        scope = min(self.workqueue, key=self._cost)  # min is stable: ties keep collection order
        self.workqueue.move_to_end(scope, last=False)
        super()._assign_work_unit(node)


def _claim_item(nodeid: str) -> tuple[str, str, str] | None:
    """(file, claim id, scale) of a claims file's item ``FILE.toml::<claim id>[<scale>]``, else None."""
    file, sep, rest = nodeid.partition("::")
    if not (sep and file.endswith(".toml") and rest.endswith("]") and "[" in rest):
        return None
    claim_id, _, scale = rest[:-1].rpartition("[")
    return file, claim_id, scale


def _strip_group(nodeid: str) -> str:
    """The node id without xdist's ``@group`` suffix (present on pytest 8)."""
    if nodeid.rfind("@") > nodeid.rfind("]"):
        return nodeid.rsplit("@", 1)[0]
    return nodeid
