"""The op kinds of the layer graph: one frozen dataclass per kind, holding exactly that op's settings.

`resgen.graph` builds layers from these; every backend, the shape rules and the weight mapping handle
each kind in `OPS`. Adding an op kind means a dataclass here, a shape rule (`resgen.passes`) and one
emitter per target.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar


class PadMode(StrEnum):
    """How convolutions pad: k // 2 on every side, or TensorFlow's "same" (odd pixel at the end)."""

    SYMMETRIC = "symmetric"
    TF_SAME = "tf_same"


class PadValue(StrEnum):
    """What a max-pool's padding holds."""

    ZEROS = "zeros"  # keras.applications' ZeroPadding2D
    NEG_INF = "-inf"  # torch's nn.MaxPool2d


@dataclass(frozen=True)
class Input:
    kind: ClassVar[str] = "input"
    channels: int
    height: int
    width: int


@dataclass(frozen=True)
class Conv2d:
    kind: ClassVar[str] = "conv2d"
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    groups: int
    bias: bool
    padding: PadMode
    # Weight standardization (timm's StdConv2d, BiT): the epsilon it adds to the kernel variance;
    # None for a plain convolution.
    standardize: float | None = None
    dilation: int = 1  # spacing of the kernel's taps (output_stride); padding grows with it

    @property
    def reach(self) -> int:
        """The side of the window one output reads: dilation * (kernel_size - 1) + 1."""
        return self.dilation * (self.kernel_size - 1) + 1


@dataclass(frozen=True)
class BatchNorm:
    kind: ClassVar[str] = "batch_norm"
    channels: int


@dataclass(frozen=True)
class GroupNorm:
    kind: ClassVar[str] = "group_norm"
    channels: int
    groups: int


@dataclass(frozen=True)
class ReLU:
    kind: ClassVar[str] = "relu"


@dataclass(frozen=True)
class MaxPool:
    """Max-pooling of an input padded on every side with `pad_value`."""

    kind: ClassVar[str] = "max_pool"
    kernel_size: int
    stride: int
    padding: int
    input_nonnegative: bool  # after a ReLU: padding with zeros or with -inf gives the same result
    pad_value: PadValue = PadValue.ZEROS


@dataclass(frozen=True)
class AvgPool:
    """Average pooling without padding (but `pad_end`); in ceil mode a last, partial window covers
    the edge and averages only the pixels it covers (torch's ceil_mode=True, count_include_pad=False)."""

    kind: ClassVar[str] = "avg_pool"
    kernel_size: int
    stride: int
    ceil_mode: bool = False
    # Zeros added at the bottom and the right first, counted in the mean (timm's AvgPool2dSame,
    # the pooled shortcut of a block that dilates instead of striding): the map keeps its size.
    pad_end: int = 0


@dataclass(frozen=True)
class BlurPool:
    """Blur, then subsample (Zhang 2019; timm's BlurPool2d): reflect padding of
    ((stride - 1) + (filter_size - 1)) // 2 on every side, then a fixed binomial filter on each
    channel with the stride. Nothing is learned or saved."""

    kind: ClassVar[str] = "blur_pool"
    channels: int
    filter_size: int
    stride: int

    @property
    def padding(self) -> int:
        return ((self.stride - 1) + (self.filter_size - 1)) // 2


@dataclass(frozen=True)
class GlobalAvgPool:
    kind: ClassVar[str] = "global_avg_pool"
    keepdims: bool = False  # (C, 1, 1) rather than (C,)


@dataclass(frozen=True)
class Flatten:
    kind: ClassVar[str] = "flatten"


@dataclass(frozen=True)
class Dropout:
    kind: ClassVar[str] = "dropout"
    rate: float


@dataclass(frozen=True)
class DropPath:
    """Stochastic depth of a residual branch: in training, each sample's branch is zeroed with
    probability `rate` and kept ones are scaled by 1 / (1 - rate); the identity in eval mode."""

    kind: ClassVar[str] = "drop_path"
    rate: float


@dataclass(frozen=True)
class Dense:
    kind: ClassVar[str] = "dense"
    out_features: int
    bias: bool


@dataclass(frozen=True)
class Softmax:
    kind: ClassVar[str] = "softmax"


@dataclass(frozen=True)
class Sigmoid:
    kind: ClassVar[str] = "sigmoid"


@dataclass(frozen=True)
class Scale:
    """Input 0 times input 1, a per-channel gate of shape (C, 1, 1) (channel attention)."""

    kind: ClassVar[str] = "scale"


@dataclass(frozen=True)
class ChannelConv1d:
    """A 1-D convolution across the channels of a (C, 1, 1) map: one kernel, no bias, zero padding
    (kernel_size - 1) // 2 at both ends (ECA's)."""

    kind: ClassVar[str] = "channel_conv1d"
    kernel_size: int


@dataclass(frozen=True)
class Add:
    kind: ClassVar[str] = "add"


@dataclass(frozen=True)
class ZeroPadShortcut:
    kind: ClassVar[str] = "zero_pad_shortcut"
    stride: int
    pad_before: int
    pad_after: int


Op = (
    Input
    | Conv2d
    | BatchNorm
    | GroupNorm
    | ReLU
    | MaxPool
    | AvgPool
    | BlurPool
    | GlobalAvgPool
    | Flatten
    | Dropout
    | DropPath
    | Dense
    | Softmax
    | Sigmoid
    | Scale
    | ChannelConv1d
    | Add
    | ZeroPadShortcut
)
OP_TYPES: tuple[type, ...] = Op.__args__  # type: ignore[attr-defined]
OPS: tuple[str, ...] = tuple(t.kind for t in OP_TYPES)  # every op kind; each backend handles all
