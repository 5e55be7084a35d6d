"""Small torch ResNets in styles the spec language cannot express, for `resgen import` tests: each
must be refused in one line naming the module path and the construct (`REFUSED`). Written for these
tests; not taken from any project."""

from __future__ import annotations

from torch import nn

from tests.import_models.torch_styles import SequentialNet

INPUT_SIZE = (32, 32)


def features_only() -> nn.Module:
    return SequentialNet(head="none")


def relu6() -> nn.Module:
    return SequentialNet(relu="module", act=nn.ReLU6)


def silu() -> nn.Module:
    return SequentialNet(relu="module", act=nn.SiLU)


def leaky_relu() -> nn.Module:
    return SequentialNet(relu="module", act=nn.LeakyReLU)


def functional_relu6() -> nn.Module:
    return SequentialNet(relu="relu6")


def scaled_addition() -> nn.Module:
    return SequentialNet(add="alpha")


def bn_not_affine() -> nn.Module:
    return SequentialNet(norm=lambda c: nn.BatchNorm2d(c, affine=False))


def bn_batch_statistics() -> nn.Module:
    return SequentialNet(norm=lambda c: nn.BatchNorm2d(c, track_running_stats=False))


def dilated() -> nn.Module:
    return SequentialNet(dilation=2)


def biased_shortcut() -> nn.Module:
    return SequentialNet(shortcut_bias=True)


# factory -> (module path, words of the construct) the one-line refusal must contain
REFUSED = {
    "features_only": ("layer2.1", "feature map"),
    "relu6": ("layer1.0.act", "ReLU6"),
    "silu": ("layer1.0.act", "SiLU"),
    "leaky_relu": ("layer1.0.act", "LeakyReLU"),
    "functional_relu6": ("layer1.0", "relu6"),
    "scaled_addition": ("layer1.0", "alpha=0.5"),
    "bn_not_affine": ("layer1.0.bn1", "affine=False"),
    "bn_batch_statistics": ("layer1.0.bn1", "track_running_stats=False"),
    "dilated": ("layer1.0.conv2", "dilat"),
    "biased_shortcut": ("layer2.0.downsample.0", "bias"),
}
