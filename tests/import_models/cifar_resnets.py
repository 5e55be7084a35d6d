"""CIFAR ResNets written by hand in the styles found in the wild, for `resgen import` tests.

- `resnet20`, `resnet32`: He et al. 2015's CIFAR networks with option A shortcuts, written as a lambda
  that subsamples and zero-pads with ``F.pad``; the head pools with ``F.avg_pool2d`` over the whole
  map and flattens with ``view``.
- `resnet20_b`: the same with option B shortcuts (1x1 projection + BatchNorm where the shape changes).
- `preact_resnet20`: pre-activation basic blocks (He et al. 2016), the projection reading the
  pre-activated input, a final BatchNorm + ReLU before the pool.
- `preact_bottleneck29`: pre-activation bottlenecks, ``torch.flatten`` in the head.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Shortcut(nn.Module):
    """Wraps a function of the input (the option A shortcut is a lambda)."""

    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)


class PlainBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, option: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or cin != cout:
            if option == "A":
                extra = (cout - cin) // 2
                self.shortcut = Shortcut(
                    lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, extra, extra), "constant", 0)
                )
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
                )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return F.relu(out)


class CifarResNet(nn.Module):
    def __init__(self, depth: int, option: str = "A", classes: int = 10) -> None:
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        stages = []
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for k in range(n):
                blocks.append(PlainBlock(cin, width, stride if k == 0 else 1, option))
                cin = width
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(64, classes)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        out = out.view(out.size(0), -1)
        return self.linear(out)


class PreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn_in = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn_mid = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.project = None
        if stride != 1 or cin != cout:
            self.project = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn_in(x))
        skip = self.project(out) if self.project is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn_mid(out)))
        return out + skip


class PreActBottleneck(nn.Module):
    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * 4
        self.bn_in = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn_a = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn_b = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.project = None
        if stride != 1 or cin != cout:
            self.project = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn_in(x))
        skip = self.project(out) if self.project is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn_a(out)))
        out = self.conv3(F.relu(self.bn_b(out)))
        return out + skip


class PreActNet(nn.Module):
    def __init__(
        self, block: type[nn.Module], n: int, widths: tuple[int, ...], out: int, classes: int = 10
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        cin = 16
        stages = []
        for i, width in enumerate(widths):
            blocks = []
            for k in range(n):
                blocks.append(block(cin, width, 2 if i and k == 0 else 1))
                cin = width * (4 if block is PreActBottleneck else 1)
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.bn_out = nn.BatchNorm2d(out)
        self.fc = nn.Linear(out, classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        out = F.relu(self.bn_out(out))
        out = F.adaptive_avg_pool2d(out, 1)
        return self.fc(torch.flatten(out, 1))


def resnet20() -> CifarResNet:
    return CifarResNet(20, "A")


def resnet32() -> CifarResNet:
    return CifarResNet(32, "A")


def resnet20_b() -> CifarResNet:
    return CifarResNet(20, "B")


def preact_resnet20() -> PreActNet:
    return PreActNet(PreActBlock, 3, (16, 32, 64), 64)


def preact_bottleneck29() -> PreActNet:
    return PreActNet(PreActBottleneck, 3, (16, 32, 64), 256)
