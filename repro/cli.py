"""repro list | show | run | report | diff | plan | schema.

Exit codes: 0 every claim came out as expected; 1 some did not; 2 bad input (a malformed claims
file, an unknown claim or experiment, a device that is not there).

The typer ``app`` and its commands: options, loading, errors and exit codes. What a command prints
(its tables and JSON documents) is built by :mod:`repro.cli_tables`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from repro import baseline, project
from repro._version import __version__
from repro.claim import Claim
from repro.cli_tables import claims_table, diff_table, plan_table, resolved_claim, schema_document, verdict_table
from repro.errors import BaselineError, ClaimsNotFoundError, ReproError
from repro.judge import correct, family_members, seeds_wanted
from repro.load import ClaimSet, load_claims
from repro.store import Store

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Reproduce the claims of superposition and interpretability papers, with statistics.",
)
# Logs and pipes get a wide table (rich would assume 80 columns); a terminal keeps its own width.
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200)
err_console = Console(stderr=True, soft_wrap=True)  # an error names a file: never break its path

ClaimsOpt = Annotated[Path, typer.Option("--claims", help="A claims file or folder.")]
ScaleOpt = Annotated[str, typer.Option("--scale", help="ci (CPU, downsized) or full (the source's setting).")]
DEFAULT_CLAIMS = Path("claims")
CLAIMS_HINT = (
    'name the claims file or folder with --claims PATH, or set claims = "PATH" in a [tool.repro] table '
    "of the project's pyproject.toml"
)


def _fail(exc: ReproError) -> None:
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
    raise typer.Exit(exc.exit_code)


def _claims_path(path: Path) -> Path:
    """--claims as given, or the project's ``[tool.repro] claims`` where --claims was left at its default."""
    configured = project.current().claims
    return configured if path == DEFAULT_CLAIMS and configured is not None else path


def _load(path: Path) -> ClaimSet:
    try:
        return load_claims(_claims_path(path))
    except ReproError as exc:
        if isinstance(exc, ClaimsNotFoundError):  # run outside a checkout, or a mistyped --claims
            exc = ClaimsNotFoundError([f"{exc}: {CLAIMS_HINT}"])
        _fail(exc)
        raise  # unreachable


def _check_scale(scale: str) -> str:
    if scale not in ("ci", "full"):
        err_console.print(f"error: --scale must be 'ci' or 'full', not '{scale}'")
        raise typer.Exit(2)
    return scale


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug detail.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
    experiments: Annotated[
        list[str] | None,
        typer.Option(
            "--experiments",
            help="A module with experiments of your own ('module' or 'module:ATTRIBUTE', importable from the "
            "working folder); repeatable. Also REPRO_EXPERIMENTS, or [tool.repro] experiments in pyproject.toml.",
        ),
    ] = None,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if experiments:  # the variable, so that the processes this one starts (pool, SLURM jobs) load them too
        known = [s for s in os.environ.get(project.ENV_EXPERIMENTS, "").split(",") if s.strip()]
        os.environ[project.ENV_EXPERIMENTS] = ",".join(dict.fromkeys([*known, *experiments]))
    if version:
        console.print(f"repro {__version__}")
        raise typer.Exit(0)


@app.command("list")
def list_claims(claims: ClaimsOpt = DEFAULT_CLAIMS) -> None:
    """Print every claim: id, source, statement, scales."""
    claim_set = _load(claims)
    console.print(claims_table(claim_set, baseline.read_full()))
    console.print(f"{len(claim_set)} claims from {claims}")


@app.command()
def show(claim_id: str, claims: ClaimsOpt = DEFAULT_CLAIMS) -> None:
    """Print one claim, resolved: params at each scale, seeds, assertion, source."""
    claim_set = _load(claims)
    try:
        claim = claim_set.get(claim_id)
    except ReproError as exc:
        _fail(exc)
    console.print_json(json.dumps(resolved_claim(claim_set, claim), default=str))


@app.command()
def schema() -> None:
    """Print the JSON Schema of a claims file (claims, sources, each experiment's params, metrics and default tests)."""
    sys.stdout.write(json.dumps(schema_document(), indent=2) + "\n")


def _select(claim_set: ClaimSet, ids: list[str] | None) -> list[Claim]:
    """The claims ``ids`` name (ids or prefixes), all when none; an unknown id exits 2 naming it."""
    try:
        return claim_set.select(ids) if ids else list(claim_set)
    except ReproError as exc:
        _fail(exc)
        raise  # unreachable: _fail exits


def _rehearse(ids: list[str] | None, scale: str, claims: Path) -> None:
    from repro.rehearsal import rehearse

    if scale != "full":
        err_console.print("error: --rehearse rehearses the full scale: use it with --scale full")
        raise typer.Exit(2)
    claim_set = _load(claims)
    chosen = _select(claim_set, ids)
    result = rehearse(chosen, on_progress=lambda line: err_console.print(line, highlight=False))
    console.print(result.table(), highlight=False, soft_wrap=True)
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def run(
    ids: Annotated[list[str] | None, typer.Argument(help="Claim ids or id prefixes; all when omitted.")] = None,
    scale: ScaleOpt = "ci",
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    force: Annotated[bool, typer.Option("--force", help="Recompute results already in the store.")] = False,
    claims: ClaimsOpt = DEFAULT_CLAIMS,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the verdicts as JSON here.")] = None,
    executor: Annotated[
        str, typer.Option("--executor", help="local (this machine) or slurm (a SLURM cluster, via submitit).")
    ] = "local",
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="local: worker processes (default one per GPU; 1 = in-process)."),
    ] = None,
    seeds_per_job: Annotated[
        int, typer.Option("--seeds-per-job", min=0, help="Seeds per job; 0 = all of a claim's seeds in one job.")
    ] = 0,
    partition: Annotated[str | None, typer.Option("--partition", help="slurm: the partition.")] = None,
    gpus_per_job: Annotated[int, typer.Option("--gpus-per-job", min=0, help="slurm: GPUs per job.")] = 1,
    timeout_min: Annotated[int, typer.Option("--timeout-min", min=1, help="slurm: time limit per job.")] = 240,
    cpus_per_job: Annotated[int | None, typer.Option("--cpus-per-job", min=1, help="slurm: CPUs per job.")] = None,
    mem_gb: Annotated[float | None, typer.Option("--mem-gb", help="slurm: memory per job in GB.")] = None,
    max_parallel: Annotated[
        int | None, typer.Option("--max-parallel", min=1, help="slurm: at most this many jobs at once.")
    ] = None,
    job_folder: Annotated[
        Path | None, typer.Option("--job-folder", help="slurm: submitit's folder for job logs (default STORE/jobs).")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="slurm: wait for the jobs and print verdicts, or submit and exit.")
    ] = True,
    poll_s: Annotated[
        float,
        typer.Option(
            "--poll-s", min=0.1, help="slurm: seconds between queue polls once the back-off (1, 2, 4, 8 s) reaches it."
        ),
    ] = 15.0,
    result_grace_s: Annotated[
        float,
        typer.Option(
            "--result-grace-s",
            min=0.0,
            help="slurm: how long a job the queue shows over may take to show its result on the shared file "
            "system before it is an error.",
        ),
    ] = 15.0,
    cluster: Annotated[str, typer.Option("--submitit-cluster", hidden=True)] = "slurm",
    rehearse: Annotated[
        bool,
        typer.Option(
            "--rehearse",
            help="With --scale full: run every full-scale code path on this CPU, on fabricated data in the real "
            "formats, with steps / epochs / rounds / image counts cut; check the metrics, decide nothing, "
            "write nothing to the store.",
        ),
    ] = False,
) -> None:
    """Run claims at a scale, caching per-seed results in the store, and print the verdicts."""
    from repro.executors import LocalExecutor, SlurmExecutor, plan_jobs, run_claims

    _check_scale(scale)
    if rehearse:
        _rehearse(ids, scale, claims)
        return
    if executor not in ("local", "slurm"):
        err_console.print(f"error: --executor must be 'local' or 'slurm', not '{executor}'")
        raise typer.Exit(2)
    claim_set = _load(claims)
    chosen = _select(claim_set, ids)
    # A verdict is decided within its Holm family, so a claim runs with its family.
    chosen = list({m.id: m for c in chosen for m in family_members(c, claim_set, scale)}.values())
    store = Store.default()
    store.clear_stale_temporaries()
    runner_: SlurmExecutor | LocalExecutor
    if executor == "slurm":
        runner_ = SlurmExecutor(
            partition=partition,
            gpus_per_job=gpus_per_job,
            timeout_min=timeout_min,
            cpus_per_job=cpus_per_job,
            mem_gb=mem_gb,
            max_parallel=max_parallel,
            folder=job_folder,
            device=device,
            cluster=cluster,
            poll_s=poll_s,
            result_grace_s=result_grace_s,
        )
    else:
        runner_ = LocalExecutor(device, workers=workers)
    if executor == "slurm" and not wait:
        try:
            # A sequential claim submits its next batch; the same command again submits the one after.
            wanted = {c.id: seeds_wanted(c, scale, store, claim_set.family_size(c, scale))
                      for c in chosen if c.sequential is not None and not c.skipped(scale)}  # fmt: skip
            jobs, _ = plan_jobs(chosen, scale, store, seeds_per_job=seeds_per_job, force=force, wanted=wanted)
            assert isinstance(runner_, SlurmExecutor)  # built above for --executor slurm
            handles = runner_.submit(jobs, store) if jobs else []
        except ReproError as exc:
            _fail(exc)
        console.print(
            f"submitted {len(handles)} jobs ({', '.join(h.job_id for h in handles[:5])}"
            f"{', ...' if len(handles) > 5 else ''}); each writes its results into {store.root}. "
            "Run the same command again to see the verdicts (it submits only what is still missing), "
            f"or `repro report --scale {scale}`."
        )
        raise typer.Exit(0)
    started = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task(f"{scale} claims", total=None)

        def planned(jobs) -> None:
            progress.update(task, total=len(jobs), description=f"{len(jobs)} jobs on {executor}")

        def done(outcome) -> None:
            progress.update(task, description=outcome.job.label)
            progress.advance(task)

        try:
            runs = run_claims(
                chosen,
                scale,
                store=store,
                executor=runner_,
                force=force,
                seeds_per_job=seeds_per_job,
                on_plan=planned,
                on_progress=lambda msg: progress.update(task, description=msg),
                on_done=done,
                family_sizes={c.id: claim_set.family_size(c, scale) for c in chosen},
            )
        except ReproError as exc:
            _fail(exc)
        progress.update(task, description=f"{scale} claims done")
    runs = correct(runs, claim_set, scale)
    console.print(verdict_table(runs, f"{scale} scale: {len(runs)} claims, store {store.root}"))
    wrong = [r for r in runs if not r.as_expected]
    for r in wrong:
        console.print(r.failure_text(), markup=False, highlight=False)
    if json_out:
        json_out.write_text(
            json.dumps(
                [
                    {
                        "id": r.claim.id,
                        "scale": scale,
                        "expect": None if r.skipped else r.expected,
                        "skipped": r.skipped,
                        **r.verdict.model_dump(mode="json"),
                    }
                    for r in runs
                ],
                indent=1,
            )
        )
    for r in runs:
        if r.skipped:
            console.print(f"{r.claim.id}: skipped at {scale} scale: {r.skipped}", markup=False, highlight=False)
    skipped = sum(1 for r in runs if r.skipped)
    console.print(
        f"{len(runs) - len(wrong) - skipped} of {len(runs) - skipped} claims as expected"
        + (f" ({skipped} skipped at this scale)" if skipped else "")
        + f" in {time.perf_counter() - started:.1f}s "
        f"({sum(r.computed for r in runs)} seed results computed, the rest from the store)"
    )
    raise typer.Exit(1 if wrong else 0)


@app.command()
def report(
    scale: ScaleOpt = "ci",
    claims: ClaimsOpt = DEFAULT_CLAIMS,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder (default reports/<scale>/).")] = None,
) -> None:
    """Render DIR/index.html, DIR/results.json and the verdict baseline DIR/verdicts.json from the store alone."""
    from repro.report import build_report

    _check_scale(scale)
    claim_set = _load(claims)
    started = time.perf_counter()
    try:
        index = build_report(claim_set, Store.default(), scale, out or Path("reports") / scale)
    except BaselineError as exc:  # an unregistered change against the committed baseline: nothing written
        _fail(exc)
    console.print(
        f"wrote {index}, results.json and verdicts.json in {time.perf_counter() - started:.1f}s",
        markup=False,
        highlight=False,
    )


@app.command("export")
def export(
    fmt: Annotated[str, typer.Option("--format", help="latex (results.json stays the machine format).")] = "latex",
    scale: ScaleOpt = "ci",
    claims: ClaimsOpt = DEFAULT_CLAIMS,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here (default: stdout).")] = None,
) -> None:
    """Write the stored verdicts for a paper to quote: LaTeX macros repro{ID}{FIELD} and a table of every claim."""
    from repro.export import FORMATS, claims_label, latex
    from repro.judge import judge_all

    if fmt not in FORMATS:
        err_console.print(f"error: --format must be one of {', '.join(FORMATS)}, not '{fmt}'", markup=False)
        raise typer.Exit(2)
    _check_scale(scale)
    claim_set = _load(claims)
    label = claims_label(_claims_path(claims))
    text = latex(judge_all(list(claim_set), scale, Store.default(), claim_set), scale, label)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_bytes(text.encode("utf-8"))
    except OSError as exc:
        err_console.print(f"error: cannot write {output}: {exc.strerror or exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    console.print(f"wrote {output} ({len(claim_set)} claims at {scale} scale)", markup=False, highlight=False)


@app.command()
def diff(
    old: Annotated[Path, typer.Argument(help="A verdicts.json or a report's results.json.")],
    new: Annotated[str, typer.Argument(help="A verdicts.json or results.json, or 'store': judge the store now.")],
    scale: Annotated[
        str | None, typer.Option("--scale", help="With 'store': the scale to judge (default: OLD's scale).")
    ] = None,
    claims: ClaimsOpt = DEFAULT_CLAIMS,
) -> None:
    """List the claims whose verdict moved, whose estimate left OLD's interval, or whose p crossed alpha.

    Exit 1 when a verdict moved or a claim is only on one side, 0 otherwise, 2 on a bad file.
    """
    from repro.judge import judge_all

    if scale is not None:
        _check_scale(scale)
    try:
        before = baseline.read(old)
        if new == "store":
            scale = scale or before.scale
            claim_set = _load(claims)
            store = Store.default()
            runs = judge_all(list(claim_set), scale, store, claim_set)
            after = baseline.Baseline(scale, {r.id: r for r in baseline.rows(runs)}, f"the store {store.root}")
        else:
            after = baseline.read(Path(new))
        for side in (before, after):
            if side.scale != (scale or before.scale):
                raise BaselineError(
                    f"{side.origin}: a {side.scale}-scale file, compared at scale {scale or before.scale}"
                )
    except ReproError as exc:
        _fail(exc)
        raise  # unreachable
    deltas = baseline.diff(before.rows, after.rows)
    shared = len(set(before.rows) & set(after.rows))
    if not deltas:
        console.print(f"no differences: {shared} claims at {before.scale} scale, {before.origin} and {after.origin}",
                      markup=False, highlight=False)  # fmt: skip
        raise typer.Exit(0)
    console.print(diff_table(before, after, deltas))
    moved = sum(1 for d in deltas if d.moved)
    console.print(
        f"{len(deltas)} of {len(set(before.rows) | set(after.rows))} claims differ, {moved} by a verdict or by "
        "being on one side only; p is the Holm-adjusted p where the file has it, else the raw p",
        markup=False,
        highlight=False,
    )
    raise typer.Exit(1 if moved else 0)


@app.command()
def plan(
    ids: Annotated[list[str] | None, typer.Argument(help="Claim ids or id prefixes; all when omitted.")] = None,
    scale: ScaleOpt = "ci",
    claims: ClaimsOpt = DEFAULT_CLAIMS,
) -> None:
    """Seeds each claim needs for 80 % and 95 % power at its smallest_effect (spread from the store)."""
    _check_scale(scale)
    claim_set = _load(claims)
    chosen = _select(claim_set, ids)
    console.print(plan_table(claim_set, chosen, scale, Store.default()))


@app.command("check-experiment")
def check_experiment_cmd(
    name: Annotated[str, typer.Argument(help="A registered experiment's name (see `repro schema`).")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="KEY=VALUE (a TOML value) over the experiment's check_params; repeatable."),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="cpu (default) or cuda.")] = "cpu",
) -> None:
    """Check an experiment against the contract on a tiny setting: exit 0 when every check passes, 1 otherwise."""
    import tomllib

    from repro.check_experiment import check_experiment
    from repro.registry import get

    overrides = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        try:
            if not sep or not key.strip():
                raise ValueError("write KEY=VALUE")
            overrides[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            err_console.print(f'error: --param {item!r}: {exc} (VALUE is TOML: 3, 0.1, "text", [1, 2])')
            raise typer.Exit(2) from None
    try:
        experiment = get(name)
        checks = check_experiment(experiment, params=overrides, device=runner_device(device))
    except ReproError as exc:
        _fail(exc)
        raise  # unreachable
    for check in checks:
        mark = "[green]pass[/]" if check.passed else "[bold red]FAIL[/]"
        console.print(f"{mark}  {escape(check.name)}: {escape(check.detail)}", highlight=False)
    failed = sum(not c.passed for c in checks)
    console.print(f"{name}: {len(checks) - failed} of {len(checks)} checks passed")
    raise typer.Exit(1 if failed else 0)


def runner_device(device: str) -> str:
    from repro.runner import resolve_device

    return resolve_device(device)


def main() -> None:  # console-script entry point
    try:
        app()
    except ReproError as exc:  # e.g. a project's experiment module that cannot be imported, from any command
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(exc.exit_code)
