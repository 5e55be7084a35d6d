"""Small torch ResNets written in the many ways people write them, for `resgen import` tests.

Each factory builds a two- or three-stage network on 32x32 inputs. `IMPORTS` names those that the spec
language can express (they must import exactly); torch_refused.py holds those it cannot.
Written for these tests; not taken from any project.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

INPUT_SIZE = (32, 32)


def _add(style: str, a: Tensor, b: Tensor) -> Tensor:
    if style == "iadd":
        a += b
        return a
    if style == "torch.add":
        return torch.add(a, b)
    if style == "operator.add":
        return operator.add(a, b)
    if style == "method":
        return a.add(b)
    if style == "alpha":
        return torch.add(a, b, alpha=0.5)
    return a + b


def _relu(style: str, x: Tensor, module: nn.Module | None = None) -> Tensor:
    if style == "inplace":
        return F.relu(x, inplace=True)
    if style == "method":
        return x.relu()
    if style == "torch.relu":
        return torch.relu(x)
    if style == "module" and module is not None:
        return module(x)
    if style == "relu6":
        return F.relu6(x)
    return F.relu(x)


class Basic(nn.Module):
    """A basic block; `add` and `relu` choose how the forward spells the addition and ReLU; the
    shortcut is None (checked in forward), nn.Identity(), or a conv + BatchNorm sequence."""

    def __init__(
        self,
        cin: int,
        cout: int,
        stride: int = 1,
        *,
        add: str = "plus",
        relu: str = "functional",
        identity: str = "none",
        act: type[nn.Module] = nn.ReLU,
        norm: Any = nn.BatchNorm2d,
        shortcut_bias: bool = False,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.add_style, self.relu_style = add, relu
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, dilation, dilation=dilation, bias=False)
        self.bn2 = norm(cout)
        self.act = act()  # one module, used twice
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=shortcut_bias), norm(cout))
        elif identity == "module":
            self.downsample = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = _relu(self.relu_style, self.bn1(self.conv1(x)), self.act)
        out = self.bn2(self.conv2(out))
        out = _add(self.add_style, out, identity)
        return _relu(self.relu_style, out, self.act)


class Bottleneck(nn.Module):
    """A bottleneck; the stride on the first 1x1 (the original paper) or the 3x3, grouped or not."""

    def __init__(
        self, cin: int, planes: int, stride: int = 1, *, groups: int = 1, stride_on_1x1: bool = False
    ) -> None:
        super().__init__()
        inner, cout = planes * groups, planes * 4
        s1, s2 = (stride, 1) if stride_on_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(cin, inner, 1, s1, bias=False)
        self.bn1 = nn.BatchNorm2d(inner, eps=1e-3, momentum=0.01)
        self.conv2 = nn.Conv2d(inner, inner, 3, s2, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(inner, eps=1e-3, momentum=0.01)
        self.conv3 = nn.Conv2d(inner, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out.add(self.shortcut(x)))


POOLED = {  # the ways a head pools the last map to (N, C)
    "mean": lambda x: x.mean((2, 3)),
    "mean_keepdim": lambda x: x.mean([2, 3], keepdim=True).view(x.size(0), -1),
    "adaptive": lambda x: torch.flatten(F.adaptive_avg_pool2d(x, 1), 1),
    "squeeze": lambda x: F.adaptive_avg_pool2d(x, 1).squeeze(-1).squeeze(-1),
    "pool_size": lambda x: F.avg_pool2d(x, x.size()[2:]).reshape(x.shape[0], -1),
}


class SequentialNet(nn.Module):
    """torchvision's layout: stem conv 7x7 padding 3 + max-pool, layer1..layerN as nn.Sequential, an
    adaptive pool + nn.Flatten + Linear head. `head` picks other spellings of the head."""

    def __init__(
        self,
        widths: tuple[int, ...] = (8, 16),
        blocks: int = 2,
        *,
        channels: int = 3,
        classes: int = 10,
        head: str = "flatten",
        stem_pool: nn.Module | None = None,
        stem_padding: Any = 3,
        stem_stride: int = 2,
        **block: Any,
    ) -> None:
        super().__init__()
        self.head = head
        self.conv1 = nn.Conv2d(channels, widths[0], 7, stem_stride, stem_padding, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0], **block.get("bn", {}))
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if stem_pool is None else stem_pool
        block = {k: v for k, v in block.items() if k != "bn"}
        cin = widths[0]
        for n, w in enumerate(widths):
            stride = 1 if n == 0 else 2
            layers = [Basic(cin, w, stride, **block)] + [Basic(w, w, **block) for _ in range(blocks - 1)]
            setattr(self, f"layer{n + 1}", nn.Sequential(*layers))
            cin = w
        self.depth = len(widths)
        if head in ("flatten", "dropout"):
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.flatten = nn.Flatten()
        if head == "dropout":
            self.drop = nn.Dropout(0.2)
        if head != "none":
            self.fc = nn.Linear(cin, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for n in range(self.depth):
            x = getattr(self, f"layer{n + 1}")(x)
        if self.head == "none":
            return x
        if self.head in ("flatten", "dropout"):
            x = self.flatten(self.avgpool(x))
            if self.head == "dropout":
                x = self.drop(x)
        else:
            x = POOLED[self.head](x)
        return self.fc(x)


class ListNet(nn.Module):
    """Blocks in a ModuleList of stages (`self.stages[i]`), themselves ModuleLists, a 3x3 stem."""

    def __init__(self, widths: tuple[int, ...] = (8, 16, 32), blocks: int = 1, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()
        )
        self.stages = nn.ModuleList()
        cin = widths[0]
        for n, w in enumerate(widths):
            stage = nn.ModuleList()
            for b in range(blocks):
                stage.append(Basic(cin, w, 2 if n and not b else 1, add="torch.add", relu="method"))
                cin = w
            self.stages.append(stage)
        self.classifier = nn.Linear(cin, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for i in range(len(self.stages)):
            for block in self.stages[i]:
                x = block(x)
        return self.classifier(x.mean((2, 3)))


class NamedBlocksNet(nn.Module):
    """Blocks as attributes named freely (`self.block1`, `self.down2`, ...), called one by one."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.block1 = Basic(8, 8, add="operator.add", relu="torch.relu", identity="module")
        self.down2 = Basic(8, 16, 2, add="operator.add", relu="torch.relu")
        self.block2 = Basic(16, 16, add="operator.add", relu="torch.relu", identity="module")
        self.fc = nn.Linear(16, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        x = self.block2(self.down2(self.block1(x)))
        x = F.adaptive_avg_pool2d(x, (1, 1)).view(x.size(0), -1)
        return self.fc(x)


class BottleneckNet(nn.Module):
    """Bottlenecks (optionally ResNeXt-grouped), the head an adaptive pool + torch.flatten."""

    def __init__(
        self, groups: int = 1, stride_on_1x1: bool = False, classes: int = 10, width: int = 4
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16, eps=1e-3, momentum=0.01)
        cin, layers = 16, []
        for n, planes in enumerate((width, width * 2)):
            for b in range(2):
                stride = 2 if n and not b else 1
                layers.append(Bottleneck(cin, planes, stride, groups=groups, stride_on_1x1=stride_on_1x1))
                cin = planes * 4
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        x = self.body(x)
        return self.fc(torch.flatten(self.pool(x), 1))


# --- factories the spec can express: each must import exactly ---------------------------------


def iadd_inplace() -> nn.Module:
    return SequentialNet(add="iadd", relu="inplace")


def torch_add_method_relu() -> nn.Module:
    return SequentialNet(add="torch.add", relu="method", head="mean")


def operator_add_torch_relu() -> nn.Module:
    return SequentialNet(add="operator.add", relu="torch.relu", head="mean_keepdim", identity="module")


def method_add_shared_relu() -> nn.Module:
    return SequentialNet(add="method", relu="module", head="adaptive")


def squeeze_head() -> nn.Module:
    return SequentialNet(head="squeeze")


def pool_size_head() -> nn.Module:
    return SequentialNet(head="pool_size")


def dropout_head() -> nn.Module:
    return SequentialNet(head="dropout")


def bn_eps_momentum() -> nn.Module:
    return SequentialNet(bn={"eps": 1e-3, "momentum": 0.01}, norm=lambda c: nn.BatchNorm2d(c, 1e-3, 0.01))


def maxpool_2x2() -> nn.Module:
    return SequentialNet(stem_pool=nn.MaxPool2d(kernel_size=2))


def same_padding_stem() -> nn.Module:
    return SequentialNet(stem_padding="same", stem_stride=1)


def grayscale_7_classes() -> nn.Module:
    return SequentialNet(channels=1, classes=7)


def module_list() -> nn.Module:
    return ListNet()


def named_blocks() -> nn.Module:
    return NamedBlocksNet()


def bottleneck_v15() -> nn.Module:
    return BottleneckNet()


def bottleneck_stride_on_1x1() -> nn.Module:
    return BottleneckNet(stride_on_1x1=True)


def resnext() -> nn.Module:
    return BottleneckNet(groups=4)


def with_defaults(widths: tuple[int, ...] = (8, 16), blocks: int = 1, classes: int = 5) -> nn.Module:
    """A factory whose arguments all have defaults."""
    return SequentialNet(widths, blocks, classes=classes)


class DefaultsNet(SequentialNet):
    """A class whose __init__ has only defaulted arguments."""

    def __init__(self, classes: int = 3, blocks: int = 1) -> None:
        super().__init__((8, 16, 32), blocks, classes=classes, add="iadd")


def _conv_bn(cin: int, cout: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    parts = [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*parts, *([nn.ReLU(inplace=True)] if relu else []))


class HelperBlock(nn.Module):
    """A block built from a conv-BN-ReLU helper; an empty nn.Sequential as the identity shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.a, self.b = _conv_bn(cin, cout, stride), _conv_bn(cout, cout, relu=False)
        self.skip = nn.Sequential()
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.b(self.a(x)) + self.skip(x))


def helper_blocks_in_one_sequential() -> nn.Module:
    """Every block in one nn.Sequential (`features`); the head an nn.Sequential with a dropout."""
    widths = [(8, 8, 1), (8, 16, 2), (16, 16, 1), (16, 32, 2)]
    return nn.Sequential(
        _conv_bn(3, 8),
        nn.Sequential(*(HelperBlock(*w) for w in widths)),
        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(32, 6)),
    )


IMPORTS = (
    "iadd_inplace",
    "torch_add_method_relu",
    "operator_add_torch_relu",
    "method_add_shared_relu",
    "squeeze_head",
    "pool_size_head",
    "dropout_head",
    "bn_eps_momentum",
    "maxpool_2x2",
    "same_padding_stem",
    "grayscale_7_classes",
    "module_list",
    "named_blocks",
    "bottleneck_v15",
    "bottleneck_stride_on_1x1",
    "resnext",
    "helper_blocks_in_one_sequential",
    "with_defaults",
    "DefaultsNet",
)
