"""Where a result came from: code revision, package versions, image, device, host, date, wall time."""

from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from repro import numerics, registry

__all__ = ["collect", "device_name", "environment", "git_revision", "user_code"]

_PACKAGES = ("repro-claims", "torch", "numpy", "scipy", "statsmodels", "scikit-learn", "pydantic")


@functools.lru_cache(maxsize=1)
def git_revision() -> dict[str, Any]:
    """Commit and dirty flag of the checkout holding the package, if it is one."""
    return _git(Path(__file__).resolve().parent)


@functools.lru_cache(maxsize=32)
def _git(here: Path) -> dict[str, Any]:
    """Commit and dirty flag of the git repository holding the folder ``here``, if any."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"git_sha": None, "git_dirty": None}
    return {"git_sha": sha, "git_dirty": bool(status.strip())}


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        **git_revision(),
    }
    image = os.environ.get("REPRO_IMAGE_ID")  # set by docker/Dockerfile (build arg), or by `docker run -e`
    if image:
        env["image_id"] = image
    return env


def user_code(experiment: str, claims_file: str | None) -> dict[str, Any]:
    """Whose code computed a result: the distribution (and version) or module providing the experiment,
    and the git commit (and dirty flag) of the repository that holds the claims file, when it is one."""
    source = registry.origin(experiment)
    info: dict[str, Any] = {"experiment_origin": None if source is None else source.as_dict()}
    if claims_file is not None:
        folder = Path(claims_file).resolve().parent
        git = _git(folder) if folder.is_dir() else {"git_sha": None, "git_dirty": None}
        shown = Path(claims_file)
        if shown.is_absolute() and shown.is_relative_to(Path.cwd()):
            shown = shown.relative_to(Path.cwd())
        info["claims"] = {"file": shown.as_posix(), "git_sha": git["git_sha"], "git_dirty": git["git_dirty"]}
    return info


def _runner() -> dict[str, Any]:
    """Which process computed the result: host and pid, and the SLURM job when there is one."""
    info: dict[str, Any] = {"host": platform.node(), "pid": os.getpid()}
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    if job:
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        info["slurm_job_id"] = f"{job}_{task}" if task else job
    return info


def device_name(device: Any) -> str:
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} {torch.cuda.get_device_name(index)} (CUDA {torch.version.cuda})"
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} logical cores)"


def collect(device: Any, seeds: list[int], wall_time_s: float) -> dict[str, Any]:
    """Provenance stored with each result of one experiment call."""
    return {
        **environment(),
        **_runner(),
        "device": device_name(device),
        "numerics": numerics.describe(),
        "seeds_in_call": list(seeds),
        "call_wall_time_s": round(wall_time_s, 3),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
