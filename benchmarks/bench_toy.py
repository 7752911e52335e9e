"""Toy-model training throughput: the batched trainer against the sources' loop and the notebook's trainer.

The batched trainer (:mod:`repro.experiments.toy`) trains I models as instances of one tensor, with
hand-written gradients. It runs twice: as it is by default (on a CPU: the sparse sampler, which draws
only the present entries from numpy PCG64 streams, and gradients run by run of instances on one
thread per core), and as the reference path, the trainer as it was before: every entry drawn from
torch's generator on the device and whole-tensor gradients (``method="torch"``, ``by_runs=False``;
the default on a GPU). A third row of figures, the torch sampler with the run-wise gradients, splits
the gain between the two changes. The sources (the paper's notebook before
its n_instances trick, seed 002, zroe1's intro and superposition notebooks) train one model per loop
iteration: an ``nn.Module``, ``torch.optim.Adam``, autograd. Both run here side by side, in one
process, on the same device, on the same ReLU toy model (x' = ReLU(W^T W x + b), Adam lr 1e-3, loss
sum_i I_i (x_i - x'_i)^2 averaged over the batch, feature probability p, values U[0, 1]).

A third contestant is the one a user would pick instead: the paper notebook's own batched trainer
(every instance in one ``nn.Module`` parameter tensor, einsum forward, autograd, AdamW, data drawn
with ``torch.rand`` as (batch, instances, features)). Its loss is the notebook's, so it is timed
only; its weights are not compared.

Throughput is instance-steps per second: models x optimizer steps / wall time. The loop trains its
models one after another, so its rate does not depend on how many models there are; it is measured
on a time box (``--seconds``) and its rate holds for any count. Before the timings, the batched
trainer (default and reference sampler) and the loop train the same few models from the same initial
weights on the same recorded batches, and their final weights must agree (``--check-steps`` steps;
fails loudly otherwise). The load average is printed before and after: figures taken beside another
busy process are not comparable.

Run (the figures in benchmarks/README.md came from these)::

    .venv/bin/python benchmarks/bench_toy.py --device cpu
    .venv/bin/python benchmarks/bench_toy.py --device cuda --instances 1 100 10000 1000000
    .venv/bin/python benchmarks/bench_toy.py --device cuda --diagram   # zroe1's 10^6-model diagram, timed
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass

# First, as every entry point does: importing the package pins the numerics before torch and numpy load.
import repro  # noqa: F401

# isort: split
import torch
from torch import Tensor, nn

from repro import numerics, workers
from repro.experiments import toy


@dataclass(frozen=True)
class Config:
    name: str
    n: int  # features
    m: int  # hidden
    batch: int
    probability: float  # 1 - S

    def importance(self, device: torch.device | str) -> Tensor:
        if self.n == 2:
            return torch.tensor([1.0, 0.5], device=device)  # the phase diagram's shape: r = 0.5
        return 0.7 ** torch.arange(self.n, dtype=torch.float32, device=device)  # the paper's 0.7^i


CONFIGS = {
    "20x5": Config("n=20, m=5, batch 1024", n=20, m=5, batch=1024, probability=0.05),
    "2x1": Config("n=2, m=1, batch 64", n=2, m=1, batch=64, probability=0.1),
}
#: Instance counts per configuration; 10^6 models of (20, 5) at batch 1024 would need 80 GB of data.
MAX_INSTANCES = {"20x5": 10_000, "2x1": 1_000_000}
LR = 1e-3


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- the batched trainer -------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """How the batched trainer runs: its sampler (None: the device's default) and gradients."""

    label: str
    method: toy.SamplerMethod | None
    by_runs: bool | None  # None: the default (run-wise on a CPU)


DEFAULT = Variant("default", None, None)
REFERENCE = Variant("reference (torch sampler, whole tensors)", "torch", False)
TORCH_RUNS = Variant("torch sampler, run-wise gradients", "torch", True)


def _batched(
    config: Config,
    instances: int,
    device: torch.device,
    seed: int = 0,
    seeds: int = 1,
    method: toy.SamplerMethod | None = None,
):
    """``instances`` models as ``seeds`` seeds x instances / seeds sweep points (one generator per seed)."""
    per_seed = instances // seeds
    gens = toy.make_generators(range(seed, seed + seeds), device)
    models = toy.init_models(gens, per_seed, config.n, config.m, "relu_tied")
    p = torch.full((per_seed, config.n), config.probability, device=device)  # (K, n)
    sampler = toy.FeatureSampler(gens, p, config.batch, "paper", method=method)
    importance = config.importance(device).expand(per_seed, config.n)  # (K, n)
    return models, sampler, importance


def batched_rate(
    config: Config, instances: int, device: torch.device, seconds: float, seeds: int = 1, variant: Variant = DEFAULT
) -> tuple[float, int]:
    """(instance-steps per second, steps timed) of toy.train on ``instances`` models.

    As the runner calls an experiment (repro/numerics.py): pinned numerics take one intra-op thread and
    spread the seeds' runs and draws over the cores; REPRO_NUMERICS=native also gives torch the cores.
    """
    with numerics.computing(workers.cores(), device.type):
        return _batched_rate(config, instances, device, seconds, seeds, variant)


def _batched_rate(
    config: Config, instances: int, device: torch.device, seconds: float, seeds: int, variant: Variant
) -> tuple[float, int]:
    models, sampler, importance = _batched(config, instances, device, seeds=seeds, method=variant.method)

    def train(steps: int) -> None:
        settings = toy.TrainSettings(steps=steps, lr=LR, optimizer="adam")
        toy.train(models, sampler, importance, settings, by_runs=variant.by_runs)

    train(2)  # warm-up: allocations, kernels, thread pools
    _sync(device)
    started = time.perf_counter()
    train(2)
    _sync(device)
    per_step = (time.perf_counter() - started) / 2
    steps = max(3, min(5000, int(seconds / max(per_step, 1e-6))))
    started = time.perf_counter()
    train(steps)
    _sync(device)
    return instances * steps / (time.perf_counter() - started), steps


# -- the sources' loop ---------------------------------------------------------------------------


class ToyModel(nn.Module):
    """One model, as the sources write it."""

    def __init__(self, W: Tensor, b: Tensor):
        super().__init__()
        self.W = nn.Parameter(W.clone())  # (m, n)
        self.b = nn.Parameter(b.clone())  # (n,)

    def forward(self, x: Tensor) -> Tensor:
        hidden = x @ self.W.T  # (B, m)
        return torch.relu(hidden @ self.W + self.b)  # (B, n)


def _naive_step(model: ToyModel, optimizer: torch.optim.Optimizer, x: Tensor, importance: Tensor) -> None:
    loss = (importance * (model(x) - x) ** 2).sum(-1).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def naive_rate(config: Config, device: torch.device, seconds: float, steps_per_model: int = 100) -> tuple[float, int]:
    """(instance-steps per second, model-steps timed) of the one-model loop, time-boxed.

    Models are trained one after another, ``steps_per_model`` steps each, until the time box ends
    (the last model may stop part-way): the rate per model-step is what the loop costs.
    """
    importance = config.importance(device)
    std = math.sqrt(2.0 / (config.m + config.n))  # xavier_normal, as the batched trainer
    generator = torch.Generator(device=device).manual_seed(0)

    def train_one(steps: int, deadline: float = math.inf) -> int:
        W = torch.randn(config.m, config.n, generator=generator, device=device) * std
        model = ToyModel(W, torch.zeros(config.n, device=device))
        optimizer = torch.optim.Adam(model.parameters(), lr=LR)
        for step in range(steps):
            values = torch.rand(config.batch, config.n, generator=generator, device=device)
            keep = torch.rand(config.batch, config.n, generator=generator, device=device) < config.probability
            _naive_step(model, optimizer, values * keep, importance)
            if time.perf_counter() > deadline:
                return step + 1
        return steps

    train_one(3)  # warm-up
    _sync(device)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        done += train_one(steps_per_model, deadline=started + seconds)
    _sync(device)
    return done / (time.perf_counter() - started), done


# -- the paper notebook's own batched trainer ---------------------------------------------------------


class NotebookModel(nn.Module):
    """The paper's notebook: all instances as one parameter tensor W (I, n, m), b (I, n), autograd."""

    def __init__(self, instances: int, config: Config, device: torch.device):
        super().__init__()
        self.W = nn.Parameter(torch.empty((instances, config.n, config.m), device=device))
        nn.init.xavier_normal_(self.W)
        self.b = nn.Parameter(torch.zeros((instances, config.n), device=device))

    def forward(self, x: Tensor) -> Tensor:  # x (B, I, n), the notebook's layout
        hidden = torch.einsum("bif,ifh->bih", x, self.W)
        out = torch.einsum("bih,ifh->bif", hidden, self.W)
        return torch.relu(out + self.b)


def notebook_rate(config: Config, instances: int, device: torch.device, seconds: float) -> tuple[float, int]:
    """(instance-steps per second, steps timed) of the notebook's trainer: one nn.Module holding every
    instance, data drawn as (B, I, n) with torch.rand and a torch.rand mask, AdamW, loss
    (importance * (x - x')^2).mean(batch).sum() as the notebook's optimize() computes it."""
    model = NotebookModel(instances, config, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    importance = config.importance(device)
    probability = torch.full((instances, config.n), config.probability, device=device)

    def step() -> None:
        values = torch.rand((config.batch, instances, config.n), device=device)
        x = torch.where(torch.rand((config.batch, instances, config.n), device=device) <= probability, values,
                        torch.zeros((), device=device))  # fmt: skip
        loss = (importance * (x.abs() - model(x)) ** 2).mean(0).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(2):  # warm-up
        step()
    _sync(device)
    started = time.perf_counter()
    step()
    _sync(device)
    steps = max(3, min(5000, int(seconds / max(time.perf_counter() - started, 1e-6))))
    started = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return instances * steps / (time.perf_counter() - started), steps


# -- the two agree ---------------------------------------------------------------------------------


class _Recorder:
    """A FeatureSampler that keeps a copy of every batch it hands out."""

    def __init__(self, sampler: toy.FeatureSampler):
        self.sampler, self.batch, self.batches = sampler, sampler.batch, []

    def __call__(self) -> Tensor:
        x = self.sampler()
        self.batches.append(x.clone())  # (I, B, n)
        return x


def check_agreement(
    config: Config, device: torch.device, instances: int = 4, steps: int = 200, variant: Variant = DEFAULT
) -> float:
    """Largest |W_batched - W_loop| after both train the same models on the same batches."""
    models, sampler, importance = _batched(config, instances, device, seed=1, method=variant.method)
    W0, b0 = models.W.clone(), models.b.clone()  # (I, m, n), (I, n)
    recorder = _Recorder(sampler)
    settings = toy.TrainSettings(steps=steps, lr=LR, optimizer="adam")
    toy.train(models, recorder, importance, settings, by_runs=variant.by_runs)
    worst = 0.0
    for i in range(instances):
        model = ToyModel(W0[i], b0[i])
        optimizer = torch.optim.Adam(model.parameters(), lr=LR)
        for x in recorder.batches:
            _naive_step(model, optimizer, x[i], importance[i])
        worst = max(worst, (model.W.detach() - models.W[i]).abs().max().item())
        worst = max(worst, (model.b.detach() - models.b[i]).abs().max().item())
    return worst


def diagram(device: torch.device) -> None:
    """zroe1's full phase diagram: 10 seeds x 100 x 1000 cells = 10^6 one-neuron models, timed end to end."""
    from repro.experiments.phase import experiment as phase
    from repro.judge import replicate_seeds

    params = phase.PhaseParams()  # full scale: 100 x 1000 grid, Adam 1e-2, 6000 steps, batch 64
    seeds = replicate_seeds(0, 10)
    started = time.perf_counter()
    results = phase.run(params, seeds, device)
    _sync(device)
    wall = time.perf_counter() - started
    shares = [r.metrics["antipodal_share_sparse"] for r in results]
    models = len(seeds) * params.n_r * params.n_density
    print(f"phase diagram: {models:,} models x {params.steps} steps on {device} in {wall:.1f} s "
          f"(training, exact losses, classes); antipodal share at density <= 0.1: "
          f"{min(shares):.3f}..{max(shares):.3f} over seeds")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--instances", nargs="+", type=int, default=[1, 100, 10_000])
    parser.add_argument("--seconds", type=float, default=3.0, help="Time box of each measurement.")
    parser.add_argument(
        "--seeds", type=int, default=1, help="Spread the instances over this many seeds (generators): on CPU "
        "the torch sampler draws different seeds' data on different threads, one seed's data on one thread "
        "(the sparse sampler also splits a seed's data into runs of instances, each with its own stream).",
    )  # fmt: skip
    parser.add_argument("--check-steps", type=int, default=200, help="Steps of the agreement check; 0 skips it.")
    parser.add_argument("--diagram", action="store_true", help="Only time the 10^6-model phase diagram.")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.diagram:
        diagram(device)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
          f"instances spread over {args.seeds} seed(s), numerics {numerics.describe()}, "
          f"load average {_load()}")  # fmt: skip
    variants = [DEFAULT, TORCH_RUNS, REFERENCE]
    print("| config | instances | " + " | ".join(f"{v.label}, instance-steps/s" for v in variants)
          + " | loop instance-steps/s | notebook trainer instance-steps/s | default / loop | default / notebook "
          "| reference / loop | steps timed (default, torch + runs, reference, loop, notebook) |")  # fmt: skip
    print("| --- | ---: | " + "---: | " * (len(variants) + 5) + "--- |")
    for key in args.configs:
        config = CONFIGS[key]
        if args.check_steps:
            found = []
            for variant in (DEFAULT, REFERENCE):
                worst = check_agreement(config, device, steps=args.check_steps, variant=variant)
                if not worst < 1e-4:
                    raise SystemExit(f"{config.name}, {variant.label}: batched and loop weights differ by "
                                     f"{worst:.3g} after {args.check_steps} steps on the same batches")  # fmt: skip
                found.append(f"{variant.label} {worst:.1e}")
            print(f"| {config.name} | agreement with the loop: same init, same {args.check_steps} batches, "
                  f"4 models, max weight difference: {', '.join(found)} |")  # fmt: skip
        loop, loop_steps = naive_rate(config, device, args.seconds)
        for instances in args.instances:
            if instances > MAX_INSTANCES[key] or instances < args.seeds:
                continue
            rates = [batched_rate(config, instances, device, args.seconds, args.seeds, v) for v in variants]
            notebook, notebook_steps = notebook_rate(config, instances, device, args.seconds)
            default, reference = rates[0][0], rates[-1][0]
            steps = ", ".join(str(s) for _, s in rates)
            print(f"| {config.name} | {instances:,} | " + " | ".join(f"{r:,.0f}" for r, _ in rates)
                  + f" | {loop:,.0f} | {notebook:,.0f} | {default / loop:,.1f}x | {default / notebook:,.1f}x | "
                  f"{reference / loop:,.1f}x | {steps}, {loop_steps}, {notebook_steps} |")  # fmt: skip
    print(f"load average at the end: {_load()}")


def _load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


if __name__ == "__main__":
    main()
