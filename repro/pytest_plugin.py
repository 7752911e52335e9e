"""pytest collects claims files: ``pytest claims/`` needs no conftest (entry point ``pytest11``).

Each claim gives two items, ``<id>[ci]`` and ``<id>[full]``. ``[full]`` carries the ``gpu`` marker
and, where CUDA is absent, skips with its reason unless its experiment's ``devices`` include the CPU
(then it runs there), so ``pytest claims/ -m gpu`` is the full-scale
reproduction on a GPU box and ``pytest claims/ -m "not gpu"`` is what CI runs. An item passes when
its verdict, decided within the claim's Holm family (:mod:`repro.judge`; a family's first item
computes and judges the whole family, its later items read that), equals the claim's ``expect``
at that scale; results go to the same store as
``repro run`` (``.repro/`` here, or ``$REPRO_HOME``), so a second session is a cache hit.

``pytest claims/ -n auto`` (pytest-xdist) shares that store between the workers: the store's file
locks make each result computed once, and on a box with several GPUs worker ``gwN`` uses GPU N mod
the number of GPUs. With ``--dist loadgroup``, which a bare ``-n`` gets too, the items that compute the
same results (a Holm family, claims sharing an experiment's params) run on one worker
(:mod:`repro.pytest_xdist`).
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from repro.claim import SCALES, Claim
from repro.errors import ClaimFileError

if TYPE_CHECKING:
    from _pytest._code.code import TerminalRepr

_PEERS: pytest.StashKey[Any] = pytest.StashKey()  # a worker's repro.workers.Peers
_PEERS_DIR: pytest.StashKey[str] = pytest.StashKey()  # the controller's directory the workers register in
_GPU_MARKER = "gpu: full-scale claim reproduction; on a CUDA device unless its experiment runs on a CPU"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "repro_one_worker_modules",
        type="args",
        default=[],
        help="test module paths (from the rootdir) whose items run on one pytest-xdist worker under --dist loadgroup",
    )
    parser.addini(
        "repro_xdist_first",
        type="args",
        default=[],
        help="node-id prefixes of the pytest-xdist groups to hand out first, in this order (the longest)",
    )


def pytest_cmdline_main(config: pytest.Config) -> None:
    """``pytest -n N`` with no ``--dist``: loadgroup, not xdist's item-by-item default.

    Runs after pytest-xdist's own hook (which turns a bare ``-n`` into ``--dist load``) and before the
    session starts. Item by item, a claim family's items land on several workers, each judging the
    whole family and waiting on the others' result locks (benchmarks/README.md, "Workers on a shared
    CPU"); a ``--dist`` the user gives, on the command line or in addopts, is kept.
    """
    if not getattr(config.option, "numprocesses", None) or getattr(config.option, "dist", "no") != "load":
        return
    given = [*config.invocation_params.args, *shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))]
    given += list(config.getini("addopts"))
    if any(arg.startswith(("--dist", "-d")) for arg in given if isinstance(arg, str)):
        return
    config.option.dist = "loadgroup"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """pytest -n N --dist loadgroup: the claims-aware groups of :mod:`repro.pytest_xdist`."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from repro.pytest_xdist import ClaimGroupScheduling

    return ClaimGroupScheduling(config, log)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _GPU_MARKER)
    config.addinivalue_line("markers", "claim: an item collected from a claims TOML file")
    workers = _xdist_workers(config)
    if workers > 1 and not hasattr(config, "workerinput"):
        # pytest -n N: the workers start after this and inherit the environment; torch reads it on import.
        from repro.workers import PEERS_VARIABLE, worker_environment

        os.environ.pop(PEERS_VARIABLE, None)  # an outer session's (pytest run by a test): not these workers'
        if "OMP_NUM_THREADS" not in os.environ:
            # The thread counts are ours to choose, so the last worker busy may take the idle cores.
            os.environ[PEERS_VARIABLE] = tempfile.mkdtemp(prefix="repro-peers-")
            config.stash[_PEERS_DIR] = os.environ[PEERS_VARIABLE]
        for key, value in worker_environment(workers).items():
            os.environ.setdefault(key, value)
    elif hasattr(config, "workerinput"):
        from repro.workers import PEERS_VARIABLE, Peers, share_cores

        if os.environ.get(PEERS_VARIABLE):  # a worker of the session above, which chose the thread counts
            peers = Peers(Path(os.environ[PEERS_VARIABLE]), os.cpu_count() or 1)
            peers.join()
            share_cores(peers)
            config.stash[_PEERS] = peers


def pytest_unconfigure(config: pytest.Config) -> None:
    peers = config.stash.get(_PEERS, None)
    if peers is not None:  # a worker leaving: the peers still busy take its cores at their next call
        from repro.workers import share_cores

        peers.leave()
        share_cores(None)
    directory = config.stash.get(_PEERS_DIR, None)
    if directory is not None:
        from repro.workers import PEERS_VARIABLE

        shutil.rmtree(directory, ignore_errors=True)
        os.environ.pop(PEERS_VARIABLE, None)


def _xdist_workers(config: pytest.Config) -> int:
    """pytest-xdist's worker count (-n N, -n auto / logical), 0 when not distributing."""
    value = getattr(config.option, "numprocesses", None)
    if value in (None, 0):
        return 0
    if isinstance(value, int):
        return value
    return os.cpu_count() or 1  # "auto" / "logical"


def _declares_claims(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return "claim" in tomllib.load(handle)
    except (OSError, ValueError, RecursionError):  # ValueError: not UTF-8, not TOML, an over-long integer
        # A broken file named like a claims file is reported, not silently ignored.
        return path.parent.name == "claims"


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix == ".toml" and file_path.name != "pyproject.toml" and _declares_claims(file_path):
        return ClaimsFile.from_parent(parent, path=file_path)
    return None


class ClaimsFile(pytest.File):
    def collect(self):
        from repro.load import load_claims

        try:
            claim_set = load_claims(self.path)
        except ClaimFileError as exc:
            raise self.CollectError(f"invalid claims file:\n{exc}") from None
        for claim in claim_set:
            for scale in SCALES:
                item = ClaimItem.from_parent(
                    self, name=f"{claim.id}[{scale}]", claim=claim, scale=scale, claim_set=claim_set
                )
                item.add_marker(pytest.mark.claim)
                if scale == "full":
                    item.add_marker(pytest.mark.gpu)
                yield item


def _device() -> str:
    """auto, or under pytest-xdist on several GPUs one GPU per worker (gw0 -> cuda:0, gw1 -> cuda:1, ...)."""
    import torch

    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit() and torch.cuda.is_available():
        n_gpus = torch.cuda.device_count()
        if n_gpus > 1:
            return f"cuda:{int(worker[2:]) % n_gpus}"
    return "auto"


class ClaimMismatch(Exception):
    """A verdict that differs from the claim's expect; carries the formatted failure text."""


class ClaimItem(pytest.Item):
    def __init__(self, *, claim: Claim, scale: str, claim_set: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.claim = claim
        self.scale = scale
        self.claim_set = claim_set

    def runtest(self) -> None:
        import torch

        from repro import registry
        from repro.judge import ClaimRun, family_members, judge_all
        from repro.runner import compute
        from repro.store import Store

        if self.claim.skipped(self.scale):
            pytest.skip(f"not run at {self.scale} scale: {self.claim.skipped(self.scale)}")
        devices = registry.get(self.claim.experiment).devices
        if self.scale == "full" and not torch.cuda.is_available() and "cpu" not in devices:
            pytest.skip(
                f"full scale is the source's own setting and experiment '{self.claim.experiment}' runs it on "
                f"{' or '.join(devices)}; torch sees no CUDA device"
            )
        # The verdict is decided within the claim's family (Holm): the family's first item computes
        # every member and judges them once; the family's later items read that judgement.
        judged: dict[tuple[str, str], dict[str, ClaimRun]] = self.parent.__dict__.setdefault("_judged", {})
        key = (self.claim_set.family(self.claim) or self.claim.id, self.scale)
        if key not in judged:
            store, device = Store.default(), _device() if "cuda" in devices else "cpu"
            members = family_members(self.claim, self.claim_set, self.scale)
            sizes = {m.id: self.claim_set.family_size(m, self.scale) for m in members}
            errors = {
                m.id: compute(m, self.scale, store=store, device=device, family_size=sizes[m.id]).error for m in members
            }
            runs = judge_all(members, self.scale, store, self.claim_set)
            failed = {m.id: ClaimRun.failed(m, self.scale, error) for m in members if (error := errors[m.id])}
            judged[key] = {run.claim.id: failed.get(run.claim.id, run) for run in runs}
        result = judged[key][self.claim.id]
        self.user_properties.append(("verdict", result.verdict.outcome))
        if not result.as_expected:
            from repro.fragility import margins

            text = result.failure_text()
            margin = margins(list(judged[key].values())).get(self.claim.id)
            if margin is not None:
                text += f"\n  margin:    {margin.label} (leaving one seed out moves it for {margin.leave_one_out} of "
                text += f"{margin.seeds})"
            declared = self.claim.fragile(self.scale)
            if declared:
                text += f"\n  declared fragile at {self.scale}: {declared}"
            for departure in self.claim_set.departures(self.claim):
                if departure.scale == self.scale:
                    stand_in = " (a stand-in: the verdict is about it)" if departure.substitute else ""
                    text += (
                        f"\n  departs:   {departure.field} {departure.claim_value!r}, the source's "
                        f"{departure.source_value!r}{stand_in}: {departure.why}"
                    )
            raise ClaimMismatch(text)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None) -> str | TerminalRepr:
        if isinstance(excinfo.value, ClaimMismatch):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"claim {self.claim.id} [{self.scale}]"
