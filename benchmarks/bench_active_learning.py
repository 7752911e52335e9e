"""Training throughput of stall.active_learning: the resident-tensor trainer against a DataLoader loop.

Ours (:class:`repro.experiments.stall.experiment._Trainer`): the whole train split on the device as
one uint8 tensor, batches by tensor index, normalised on the device, channels_last, autocast on
CUDA (bf16 here; fp16 + GradScaler is the claims' setting). The plain loop, the source's way: a
dataset that returns one PIL image at a time through torchvision transforms (ToTensor, Normalize),
a ``torch.utils.data.DataLoader`` (batch 128, shuffled, ``--workers`` worker processes), the model
in the default memory format, fp32 on the CPU and fp16 autocast + GradScaler on CUDA.

Both train the same model on the same real images (Fashion-MNIST from Debian's package, offline;
for ResNet-18 the grey channel is repeated to three), Adam 1e-3, cross-entropy, batch 128. Images
per second = images trained / wall time over ``--batches`` batches after 3 warm-up batches.

Run (the figures in benchmarks/README.md came from these)::

    .venv/bin/python benchmarks/bench_active_learning.py --device cpu
    .venv/bin/python benchmarks/bench_active_learning.py --device cuda --batches 200 --workers 4
"""

from __future__ import annotations

import argparse
import time

# First, as every entry point does: importing the package pins the numerics before torch and numpy load.
import repro  # noqa: F401

# isort: split
import numpy as np
import torch
import torch.nn.functional as F

from repro.data.images import load_image_dataset
from repro.experiments.stall.experiment import ActiveLearningParams, _prepare, _Trainer, build_model

BATCH = 128
WARMUP = 3


class _PilDataset(torch.utils.data.Dataset):
    """The torchvision-dataset way: one uint8 image -> PIL -> transforms, per item."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean, std, channels: int):
        from torchvision import transforms

        self.images, self.labels, self.channels = images, labels, channels
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        image = Image.fromarray(self.images[i][0])  # (H, W) grey
        x = self.transform(image)
        return x.expand(self.channels, -1, -1), int(self.labels[i])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def ours(params: ActiveLearningParams, device: torch.device, batches: int) -> float:
    data = _prepare(load_image_dataset(params.dataset), params, device)
    model = build_model(params, data.in_channels, data.set.n_classes, 0).to(device, memory_format=torch.channels_last)
    trainer = _Trainer(model, data, params, device)
    generator = torch.Generator().manual_seed(0)
    pool = torch.arange(len(data.train_y), device=device)
    trainer.train(pool, WARMUP * BATCH, True, generator)
    _sync(device)
    started = time.perf_counter()
    trainer.train(pool, batches * BATCH, True, generator)
    _sync(device)
    return batches * BATCH / (time.perf_counter() - started)


def plain(params: ActiveLearningParams, device: torch.device, batches: int, workers: int) -> float:
    data = load_image_dataset(params.dataset)
    channels = 3 if params.model == "resnet18" else 1
    dataset = _PilDataset(data.train_images, data.train_labels, data.mean, data.std, channels)
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers,
                                         generator=torch.Generator().manual_seed(0))  # fmt: skip
    model = build_model(params, channels, data.n_classes, 0).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=params.lr)
    amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if amp else None
    model.train()
    done, started = 0, None
    for x, y in loader:
        if done == WARMUP:
            _sync(device)
            started = time.perf_counter()
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        done += 1
        if done == WARMUP + batches:
            break
    _sync(device)
    return batches * BATCH / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", type=int, default=40, help="timed batches per measurement")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes of the plain loop")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the experiment uses 1 on CPU)")
    parser.add_argument("--models", nargs="+", default=["small_cnn", "resnet18"])
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, workers {args.workers}")
    print("| model | input | ours img/s | DataLoader img/s | speed-up |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name in args.models:
        params = ActiveLearningParams(dataset="fashion_mnist", model=name, pretrained=False, amp="bf16")
        a = ours(params, device, args.batches)
        b = plain(params, device, args.batches, args.workers)
        shape = "3x28x28" if name == "resnet18" else "1x28x28"
        print(f"| {name} | {shape} | {a:,.0f} | {b:,.0f} | {a / b:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
