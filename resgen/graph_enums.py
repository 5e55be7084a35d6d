"""The layer graph's enumerations: where a layer sits (scope), the torch path convention, the Keras
layer order, block and shortcut kinds, block dimensions and dilation rules. `resgen.graph` re-exports
them.
"""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    INPUT = "input"
    STEM = "stem"
    STAGE = "stage"
    HEAD = "head"


class TorchPaths(StrEnum):
    """The module-path convention of the torch target (resgen.naming)."""

    TORCHVISION = "torchvision"  # conv1, layer1.0.conv1, fc (timm's ResNet family keeps it)
    TIMM_RESNETV2 = "timm_resnetv2"  # stem.conv, stages.0.blocks.0.norm1, norm, head.fc


class KerasLayerOrder(StrEnum):
    """Whose layer order the Keras target follows (Keras' weight files place weights in that order)."""

    KERAS_APPLICATIONS = "keras_applications"  # each addition takes the shortcut first
    ROSEBROCK = "rosebrock"  # Rosebrock's tutorial: the residual branch first


class BlockKind(StrEnum):
    BASIC = "basic"
    BOTTLENECK = "bottleneck"


class StrideBlock(StrEnum):
    """Which block of a stage carries the stage's stride."""

    FIRST = "first"
    LAST = "last"


class ShortcutKind(StrEnum):
    """What carries a block's input to its addition."""

    IDENTITY = "identity"
    PROJECTION = "projection"  # 1x1 convolution (and BatchNorm)
    POOLED_PROJECTION = "pooled_projection"  # 2x2 average pool, then 1x1 convolution (timm avg_down)
    # avg_down in a block that dilates instead of striding: a stride-1 2x2 pool of the input padded
    # with zeros at the bottom and right (timm's AvgPool2dSame), then a 1x1 convolution
    DILATED_POOLED_PROJECTION = "dilated_pooled_projection"
    WIDE_PROJECTION = "wide_projection"  # strided 3x3 convolution (timm down_kernel_size=3, senet154)
    MAX_POOL = "max_pool"  # 1x1 max-pool: only the resolution changes (keras.applications V2)
    ZERO_PAD = "zero_pad"  # option A: subsample and add zero channels (He et al. 2015)


class BlockDim(StrEnum):
    """A channel count of a residual block, as its generated code names it."""

    IN = "in"  # the block's input channels
    WIDTH = "width"  # the inner width of a bottleneck
    FIRST = "first"  # what the first 1x1 of a bottleneck outputs: width // reduce_first (timm)
    OUT = "out"  # the block's output channels
    REDUCED = "reduced"  # the reduced width of squeeze-and-excitation


class DilationDim(StrEnum):
    """Which dilation of a residual block a 3x3 convolution of its branch takes."""

    FIRST = "first_dilation"  # the branch's first 3x3 (the previous stage's, in a first block)
    REST = "dilation"  # the others: the stage's


class DilationRule(StrEnum):
    """How a stage that dilates instead of striding (output_stride) spreads its dilation."""

    TORCHVISION = "torchvision"  # the first block keeps the previous dilation (timm too)
    WHOLE_STAGE = "whole_stage"  # every block takes the stage's (detectron2)


class ShortcutSource(StrEnum):
    """The tensor a projection reads: the block input, or its pre-activation (He et al. 2016)."""

    INPUT = "input"
    PREACTIVATED = "preactivated"
