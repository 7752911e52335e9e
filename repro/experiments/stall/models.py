"""STALL's networks: torchvision's ResNet-18 (ImageNet weights or none) and the ci scale's SmallCNN.

A module of its own, listed in the experiment's ``depends_on`` (editing it recomputes the results).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import torch
from torch import Tensor, nn

from repro.data.mnist import data_dir
from repro.errors import DataUnavailableError
from repro.experiments.common import stream

if TYPE_CHECKING:
    from torchvision.models import ResNet

    from repro.experiments.stall.experiment import ActiveLearningParams

__all__ = ["INIT_STREAM", "RESNET18_URL", "SmallCNN", "build_model", "pretrained_resnet18_state", "trunk"]

RESNET18_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"  # torchvision IMAGENET1K_V1
INIT_STREAM = 0  # the replicate seed's stream for the network's initialisation


class SmallCNN(nn.Module):
    """A ResNet-shaped CNN for the ci scale: ResNet-18's attribute names and block types, widths 8-32.

    conv1 (stride 2) - layer1 (8) - layer2 (16, /2) - layer3 (32, /2) - layer4 (two blocks of 32), so the
    source's feature extractor (layer4[1] and its conv2 re-applied) works on it unchanged.
    """

    def __init__(self, in_channels: int, n_classes: int, widths: tuple[int, int, int] = (8, 16, 32)):
        from torchvision.models.resnet import BasicBlock

        super().__init__()
        a, b, c = widths

        def down(i: int, o: int) -> nn.Module:
            return nn.Sequential(nn.Conv2d(i, o, 1, 2, bias=False), nn.BatchNorm2d(o))

        self.conv1 = nn.Conv2d(in_channels, a, 3, 2, 1, bias=False)
        self.bn1, self.relu, self.maxpool = nn.BatchNorm2d(a), nn.ReLU(inplace=True), nn.Identity()
        self.layer1 = nn.Sequential(BasicBlock(a, a))
        self.layer2 = nn.Sequential(BasicBlock(a, b, 2, down(a, b)))
        self.layer3 = nn.Sequential(BasicBlock(b, c, 2, down(b, c)))
        self.layer4 = nn.Sequential(BasicBlock(c, c), BasicBlock(c, c))
        self.avgpool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(c, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.avgpool(trunk(self, x)), 1))


#: What build_model returns: torchvision's ResNet or SmallCNN (ResNet's attribute names and block types).
ResNetLike: TypeAlias = "SmallCNN | ResNet"


def trunk(model: ResNetLike, x: Tensor) -> Tensor:
    """conv1 ... layer4 of a ResNet (torchvision's or SmallCNN): the layer4 feature map."""
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    return model.layer4(model.layer3(model.layer2(model.layer1(x))))


def pretrained_resnet18_state(download: bool) -> dict[str, Tensor]:
    """torchvision's ImageNet ResNet-18 (IMAGENET1K_V1): $REPRO_DATA/weights, torch's hub cache, or a download."""
    folder = data_dir() / "weights"
    name = RESNET18_URL.rsplit("/", 1)[-1]
    for candidate in (folder / name, Path(torch.hub.get_dir()) / "checkpoints" / name):
        if candidate.is_file():
            return torch.load(candidate, map_location="cpu", weights_only=True)
    how = (f"the ImageNet ResNet-18 weights ({name}) are neither in {folder} nor in torch's hub cache. Fetch them on "
           "a machine with internet:\n    python -c \"import torch; torch.hub.load_state_dict_from_url("
           f"'{RESNET18_URL}', model_dir='{folder}')\"")  # fmt: skip
    if not download:
        raise DataUnavailableError(how)
    try:
        return torch.hub.load_state_dict_from_url(RESNET18_URL, model_dir=str(folder), progress=False, check_hash=True)
    except Exception as exc:  # network, hash, disk: all mean "not available"
        raise DataUnavailableError(f"downloading failed ({type(exc).__name__}: {exc}); {how}") from exc


def build_model(params: ActiveLearningParams, in_channels: int, n_classes: int, seed: int) -> ResNetLike:
    """The arm's starting network; every random init drawn from the seed's own stream."""
    state = pretrained_resnet18_state(params.download) if params.model == "resnet18" and params.pretrained else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream(seed, INIT_STREAM))
        if params.model == "small_cnn":
            return SmallCNN(in_channels, n_classes)
        from torchvision.models import resnet18

        model = resnet18(weights=None)
        if state is not None:
            model.load_state_dict(state)
        model.fc = nn.Linear(model.fc.in_features, n_classes)  # the source: fc replaced, fresh init
        return model
