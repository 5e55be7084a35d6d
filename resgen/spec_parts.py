"""The spec format, continued: the layers before the first stage (stems) and after the last (heads),
the add-ons a residual block can carry (channel attention, anti-aliasing), and the convolution kind.

Part of `resgen.spec`, which re-exports these models; the conventions stated there hold here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

FLOAT32_SMALLEST_NORMAL = 1.1754943508222875e-38


def _float32_normal(value: float) -> float:
    """TensorFlow flushes float32 numbers below the smallest normal one to 0: 1 / sqrt(var + 0) is NaN."""
    if value < FLOAT32_SMALLEST_NORMAL:
        raise ValueError(
            f"{value:g} is below float32's smallest normal number, about 1.18e-38, which TensorFlow "
            "flushes to 0 (the output is then NaN); use 1.2e-38 or more"
        )
    return value


Epsilon = Annotated[float, Field(gt=0.0, le=1.0), AfterValidator(_float32_normal)]


class SpecModel(BaseModel):
    """Every model of the format: strict, frozen, unknown keys refused, field docstrings as docs."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, use_attribute_docstrings=True)


_Model = SpecModel


class SqueezeExcite(_Model):
    """Squeeze-and-excitation (Hu et al. 2018), as timm's SEModule: at the end of the residual branch,
    a global average pool, a 1x1 convolution down to `ratio` of the channels (rounded as timm's
    make_divisible rounds: to the nearest multiple of `divisor`, at least `divisor`), ReLU, a 1x1
    convolution back, and a sigmoid that scales the branch's channels."""

    kind: Literal["se"]
    """Attention kind."""
    ratio: float = Field(default=0.0625, gt=0.0, le=1.0)
    """Reduced width as a fraction of the block's output channels (timm: 1/16; ResNet-RS: 1/4)."""
    divisor: int = Field(default=8, ge=1, le=64)
    """The reduced width is rounded to a multiple of this."""


class EfficientChannelAttention(_Model):
    """ECA (Wang et al. 2020), as timm's EcaModule: at the end of the residual branch, a global average
    pool, a 1-D convolution across the channels (no bias), and a sigmoid that scales the branch's
    channels. Kernel size from the channel count C: t = int(|log2(C) + beta| / gamma), made odd, at
    least 3."""

    kind: Literal["eca"]
    """Attention kind."""
    gamma: int = Field(default=2, ge=1, le=16)
    """Divisor in the kernel-size rule (timm and the paper: 2)."""
    beta: int = Field(default=1, ge=0, le=16)
    """Offset in the kernel-size rule (timm and the paper: 1)."""


Attention = Annotated[SqueezeExcite | EfficientChannelAttention, Field(discriminator="kind")]


class AvgPoolAntiAlias(_Model):
    """Anti-aliasing by a 2x2 average pool (timm's resnetaa models: aa_layer=nn.AvgPool2d)."""

    kind: Literal["avg_pool"]
    """Anti-aliasing kind."""


class BlurAntiAlias(_Model):
    """Anti-aliasing by a blur pool (Zhang 2019, "Making Convolutional Networks Shift-Invariant
    Again"; timm's BlurPool2d, as resnetblur50 uses it): reflect padding, a fixed binomial filter on
    every channel, then the stride. The filter is not learned and not saved."""

    kind: Literal["blur"]
    """Anti-aliasing kind."""
    filter_size: int = Field(default=3, ge=2, le=7)
    """Side of the binomial filter (timm: 3; 3 is [1, 2, 1] / 4 in each direction)."""


AntiAlias = Annotated[AvgPoolAntiAlias | BlurAntiAlias, Field(discriminator="kind")]


class StemPool(_Model):
    """Pooling after the stem: a max-pool (torchvision, keras.applications), or an average pool."""

    kind: Literal["max", "avg"] = "max"
    """max, or avg: an average pool without padding (timm's resnetaa stems: 2x2, stride 2)."""
    kernel_size: int = Field(default=3, ge=1, le=15)
    """Pooling window side."""
    stride: int = Field(default=2, ge=1, le=8)
    """Pooling stride."""
    padding: int = Field(default=1, ge=0, le=7)
    """Padding on every side before pooling."""
    pad_with: Literal["zeros", "-inf"] = "zeros"
    """What the padding holds: zeros (keras.applications' ZeroPadding2D) or -inf (torch's nn.MaxPool2d,
    as torchvision and timm use it). The two differ only where the pooled input can be negative."""
    anti_alias: AntiAlias | None = None
    """Pool with stride 1, then let this anti-aliasing pool carry the stride (timm's resnetblur
    stems: a 3x3 max-pool, then a blur pool); null for a plain strided pool."""

    @model_validator(mode="after")
    def _average_without_padding(self) -> StemPool:
        if self.kind == "avg" and self.padding:
            raise ValueError("an average pool here has no padding: set padding: 0")
        if self.padding > self.kernel_size // 2:  # torch's MaxPool2d refuses more when it runs
            raise ValueError(
                f"a {self.kernel_size}x{self.kernel_size} max-pool pads at most half its kernel, "
                f"{self.kernel_size // 2}, on each side (torch's nn.MaxPool2d refuses more)"
            )
        if self.kind == "avg" and self.anti_alias is not None:
            raise ValueError("anti_alias needs a max-pool: set kind: max, or anti_alias: null")
        return self


class ConvStem(_Model):
    """One convolution, optionally BatchNorm + ReLU and a max-pool: the ImageNet stem (7x7/2 + 3x3/2
    pool), the CIFAR stem (3x3/1, no pool) and the tiny-ImageNet stem of Rosebrock's tutorial (5x5/1 +
    3x3/2 pool)."""

    kind: Literal["conv"]
    """Stem kind."""
    filters: int = Field(default=64, ge=1, le=4096)
    """Output channels of the stem convolution."""
    kernel_size: int = Field(default=7, ge=1, le=15)
    """Kernel side of the stem convolution (odd)."""
    stride: int = Field(default=2, ge=1, le=8)
    """Stride of the stem convolution."""
    norm: bool = True
    """BatchNorm + ReLU after the convolution (false for pre-activation nets: their blocks normalize)."""
    pool: StemPool | None = None
    """Max-pool after the convolution; null for none."""
    conv_pool: bool = False
    """Downsample with a 3x3/2 convolution + BatchNorm + ReLU instead of a max-pool (timm's
    replace_stem_pool); needs pool: null."""
    input_norm: bool = False
    """BatchNorm on the raw input before the convolution (the ResNet of Rosebrock's tutorial does)."""

    @model_validator(mode="after")
    def _odd_kernel(self) -> ConvStem:
        if self.kernel_size % 2 == 0:
            raise ValueError("kernel_size must be odd so that padding keeps the image centred")
        _one_pool(self.pool, self.conv_pool)
        return self


class DeepStem(_Model):
    """3x3 convolutions in place of one large one, each but the last followed by BatchNorm + ReLU, then
    BatchNorm + ReLU (unless norm: false) and an optional max-pool: timm's deep stems (He et al. 2019,
    "Bag of Tricks": ResNet-C, -D and -S use widths w, w, 2w; the tiered stems of timm's ResNet-T use
    3w/4, w, 2w)."""

    kind: Literal["deep"]
    """Stem kind."""
    widths: list[Annotated[int, Field(ge=1, le=4096)]] = Field(min_length=2, max_length=4)
    """Output channels of each 3x3 convolution; the last is the stem's output width."""
    stride: int = Field(default=2, ge=1, le=8)
    """Stride of the first convolution (the others have stride 1)."""
    norm: bool = True
    """BatchNorm + ReLU after the last convolution (false for pre-activation nets such as timm's
    resnetv2_50d, whose blocks normalize)."""
    pool: StemPool | None = None
    """Max-pool after the stem; null for none."""
    conv_pool: bool = False
    """Downsample with a 3x3/2 convolution + BatchNorm + ReLU instead of a max-pool (timm's
    replace_stem_pool, as ResNet-RS does); needs pool: null."""

    @model_validator(mode="after")
    def _one_downsampling(self) -> DeepStem:
        _one_pool(self.pool, self.conv_pool)
        return self


def _one_pool(pool: StemPool | None, conv_pool: bool) -> None:
    if pool is not None and conv_pool:
        raise ValueError("conv_pool replaces the max-pool: set pool: null, or conv_pool: false")


Stem = Annotated[ConvStem | DeepStem, Field(discriminator="kind")]


class _HeadBase(_Model):
    norm: bool = False
    """BatchNorm + ReLU before pooling (pre-activation nets)."""
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Dropout rate before the classifier; 0 for none."""
    classes: int = Field(default=1000, ge=1, le=1_000_000)
    """Number of output classes."""
    output: Literal["logits", "softmax"] = "logits"
    """What the model returns: raw logits (torchvision) or softmax probabilities (keras.applications)."""

    @model_validator(mode="after")
    def _softmax_over_classes(self) -> _HeadBase:
        if self.output == "softmax" and self.classes == 1:
            raise ValueError(
                "a softmax over one class is always 1: with classes: 1 use output: logits "
                "(one logit, for a sigmoid), or give classes: 2"
            )
        return self


class GlobalPoolHead(_HeadBase):
    """Global average pooling, then a classifier: a dense layer, or a 1x1 convolution."""

    kind: Literal["global_pool"]
    """Head kind."""
    classifier: Literal["dense", "conv1x1"] = "dense"
    """The classifier: a dense layer (torchvision, keras.applications), or a 1x1 convolution with bias
    on the pooled 1x1 map, then a flatten (timm's ResNetV2 head.fc: weight shape (classes, C, 1, 1)).
    Both compute the same function; only the weight layout differs."""

    @model_validator(mode="after")
    def _logits_from_a_convolution(self) -> GlobalPoolHead:
        if self.classifier == "conv1x1" and self.output != "logits":
            raise ValueError("a conv1x1 classifier returns logits, as timm's ResNetV2 does: use 'logits'")
        return self


class PoolFlattenHead(_HeadBase):
    """The head of Rosebrock's tutorial: a fixed average pool, flatten, then a dense classifier."""

    kind: Literal["pool_flatten"]
    """Head kind."""
    pool_size: int = Field(default=8, ge=1, le=64)
    """Side (and stride) of the average-pooling window."""


class NoHead(_Model):
    """No head: the network ends at its last stage and returns the feature maps that
    backbone.features taps (timm's features_only), for detection and segmentation models.
    Allowed only with backbone.features."""

    kind: Literal["none"]
    """Head kind."""


Head = Annotated[GlobalPoolHead | PoolFlattenHead | NoHead, Field(discriminator="kind")]


class PlainConv(_Model):
    """Convolutions use their weights as they are."""

    kind: Literal["plain"]
    """Convolution kind."""


class WeightStandardizedConv(_Model):
    """Weight standardization (Qiao et al. 2019), as timm's StdConv2d and Big Transfer (BiT,
    Kolesnikov et al. 2020) use it: before each convolution, every output channel's kernel is
    standardized over its (input channel, height, width) values, w' = (w - mean) / sqrt(var + epsilon),
    with the biased variance. Applies to the stem's, the blocks' and the shortcuts' convolutions;
    a convolution classifier (head.classifier: conv1x1) and squeeze-and-excitation keep plain ones,
    as in timm. Parameter counts do not change."""

    kind: Literal["weight_standardized"]
    """Convolution kind."""
    epsilon: Epsilon = 1e-6
    """Added to the kernel variance before the square root (timm's StdConv2d: 1e-6; timm's BiT
    models: 1e-8)."""


Convolution = Annotated[PlainConv | WeightStandardizedConv, Field(discriminator="kind")]
