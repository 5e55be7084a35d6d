"""Stage 2: the spec format, as pydantic models, and validation of loaded data against it.

Every model is strict (no bool for int, no quoted numbers), frozen, and forbids unknown keys.
Alternatives are discriminated unions keyed by ``kind`` so that new kinds (deep stems,
squeeze-and-excitation blocks, ...) slot in without changing what existing specs mean.

Conventions, stated once:
- ``filters`` of a stage is the block's base width ("planes" in torchvision); a block outputs
  ``filters * expansion`` channels.
- BatchNorm ``momentum`` follows Keras: ``running = momentum * running + (1 - momentum) * batch``.
  PyTorch's ``momentum`` argument is ``1 - momentum``.
- ``regularization.l2`` is Keras' ``l2(r)`` on kernels (adds ``r * sum(w**2)`` to the loss); in
  PyTorch it is weight decay ``2 * r`` on exactly those weights. The training-time sections
  (``regularization``, ``init``) are defined in `resgen.spec_training`.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import keyword
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from resgen.spec_training import Init, Regularization

FORMAT_VERSION = 1
IDENTIFIER = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
# Names generated code itself uses; a spec name must not shadow them (nor keywords or builtins).
RESERVED_NAMES = frozenset(
    {"torch", "nn", "F", "Tensor", "keras", "layers", "ops", "regularizers", "build_model", "annotations"}
)


def _strict_int(value: Any) -> Any:
    """A literal compares by equality, so True and 1.0 would pass as 1: refuse non-ints as strict ints do."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


One = Annotated[Literal[1], BeforeValidator(_strict_int)]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, use_attribute_docstrings=True)


class InputShape(_Model):
    """Shape of one input image, channels last as the spec states it."""

    height: int = Field(ge=1, le=4096)
    """Image height in pixels."""
    width: int = Field(ge=1, le=4096)
    """Image width in pixels."""
    channels: int = Field(default=3, ge=1, le=1024)
    """Number of input channels (3 for RGB)."""


class BatchNorm(_Model):
    """Settings shared by every normalization layer: BatchNorm (the default) or GroupNorm."""

    kind: Literal["batch", "group"] = "batch"
    """BatchNorm, or GroupNorm (Wu and He 2018; timm's resnet50_gn), which has no running statistics."""
    groups: int = Field(default=32, ge=1, le=1024)
    """GroupNorm's number of groups; it must divide every normalized channel count."""
    epsilon: float = Field(default=1e-5, gt=0.0, le=1.0)
    """Added to the variance before the square root (torchvision 1e-5, keras.applications 1.001e-5)."""
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0)
    """Keras convention: running = momentum * running + (1 - momentum) * batch. PyTorch's is 1 - this."""


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
    BatchNorm + ReLU and an optional max-pool: timm's deep stems (He et al. 2019, "Bag of Tricks":
    ResNet-C, -D and -S use widths w, w, 2w; the tiered stems of timm's ResNet-T use 3w/4, w, 2w)."""

    kind: Literal["deep"]
    """Stem kind."""
    widths: list[Annotated[int, Field(ge=1, le=4096)]] = Field(min_length=2, max_length=4)
    """Output channels of each 3x3 convolution; the last is the stem's output width."""
    stride: int = Field(default=2, ge=1, le=8)
    """Stride of the first convolution (the others have stride 1)."""
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


class Stage(_Model):
    """A run of blocks at one resolution."""

    blocks: int = Field(ge=1, le=1000)
    """Number of residual blocks."""
    filters: int = Field(ge=1, le=8192)
    """Base width of the blocks (torchvision's "planes"); each block outputs filters * expansion channels."""
    stride: int = Field(ge=1, le=4)
    """Downsampling factor of the stage, applied in one block (see block.stride_block)."""


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


class _BlockBase(_Model):
    attention: Attention | None = None
    """Channel attention at the end of the residual branch, before the addition; null for none."""
    preactivation: bool = False
    """Pre-activation (He et al. 2016): BN-ReLU before each convolution, nothing after the addition."""
    stride_block: Literal["first", "last"] = "first"
    """Which block of a stage carries the stride: first (torchvision, keras V1) or last (keras V2)."""
    anti_alias: AntiAlias | None = None
    """In blocks that stride, the strided 3x3 convolution keeps the resolution and this pool, after
    the convolution's BatchNorm + ReLU, carries the stride (Zhang 2019; timm's aa_layer); null for none."""

    @model_validator(mode="after")
    def _anti_alias_where_timm_has_it(self) -> _BlockBase:
        if self.anti_alias is None:
            return self
        if self.preactivation:
            raise ValueError("anti_alias follows a strided convolution's ReLU; pre-activation blocks lack it")
        if getattr(self, "stride_on", "conv2") == "conv1":
            raise ValueError("anti_alias follows the strided 3x3 convolution; set stride_on: conv2")
        return self


class BasicBlock(_BlockBase):
    """Two 3x3 convolutions (ResNet-18/34, CIFAR ResNets)."""

    kind: Literal["basic"]
    """Block kind."""
    expansion: One = 1
    """Output channels per unit of filters; always 1 for basic blocks."""


class BottleneckBlock(_BlockBase):
    """1x1 reduce, 3x3 (optionally grouped), 1x1 expand."""

    kind: Literal["bottleneck"]
    """Block kind."""
    expansion: int = Field(default=4, ge=1, le=16)
    """Output channels = filters * expansion."""
    groups: int = Field(default=1, ge=1, le=1024)
    """Groups of the 3x3 convolution (ResNeXt cardinality)."""
    width_per_group: int = Field(default=64, ge=1, le=4096)
    """Inner width = filters * width_per_group // 64 * groups (torchvision's rule; 128: Wide ResNet-2)."""
    reduce_first: int = Field(default=1, ge=1, le=64)
    """The first 1x1 convolution outputs inner width // reduce_first channels, and the 3x3 widens them
    back (timm's block_reduce_first: 2 in senet154)."""
    stride_on: Literal["conv1", "conv2"] = "conv2"
    """Convolution that carries the stride: conv2, the 3x3 (torchvision, "ResNet v1.5"), or conv1, the
    first 1x1 (the original paper and keras.applications V1)."""


Block = Annotated[BasicBlock | BottleneckBlock, Field(discriminator="kind")]


class ProjectionShortcut(_Model):
    """A 1x1 convolution (optionally followed by BatchNorm) where the residual shape changes."""

    kind: Literal["projection"]
    """Shortcut kind."""
    norm: bool = True
    """BatchNorm after the projection convolution."""
    source: Literal["input", "preactivated"] = "input"
    """Tensor the projection reads: the block input, or (pre-activation blocks) the input after the
    block's first BN-ReLU."""
    when: Literal["needed", "first_block"] = "needed"
    """Project only where the shape changes, or on the first block of every stage (keras V1, the seed)."""
    stride_only: Literal["project", "max_pool"] = "project"
    """Where only the resolution changes: project, or subsample with a 1x1 max-pool (keras V2)."""
    kernel_size: Annotated[Literal[1, 3], BeforeValidator(_strict_int)] = 1
    """Kernel of a projection that strides: 1, or 3 with padding 1 (timm's down_kernel_size, as
    senet154 uses it). A projection that keeps the resolution is always 1x1."""
    downsample: Literal["conv", "avg_pool"] = "conv"
    """Where the block strides: the 1x1 convolution strides (torchvision), or a 2x2 average pool
    (ceil mode, padding not counted) subsamples first and the convolution has stride 1 (timm's
    avg_down, the ResNet-D shortcut of He et al. 2019)."""


class ZeroPadShortcut(_Model):
    """He et al. 2015 option A: subsample by striding and zero-pad the new channels; no parameters."""

    kind: Literal["zero_pad"]
    """Shortcut kind."""


Shortcut = Annotated[ProjectionShortcut | ZeroPadShortcut, Field(discriminator="kind")]


class _HeadBase(_Model):
    norm: bool = False
    """BatchNorm + ReLU before pooling (pre-activation nets)."""
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Dropout rate before the classifier; 0 for none."""
    classes: int = Field(default=1000, ge=1, le=1_000_000)
    """Number of output classes."""
    output: Literal["logits", "softmax"] = "logits"
    """What the model returns: raw logits (torchvision) or softmax probabilities (keras.applications)."""


class GlobalPoolHead(_HeadBase):
    """Global average pooling, then a dense classifier."""

    kind: Literal["global_pool"]
    """Head kind."""


class PoolFlattenHead(_HeadBase):
    """The seed's head: a fixed average pool, flatten, then a dense classifier."""

    kind: Literal["pool_flatten"]
    """Head kind."""
    pool_size: int = Field(default=8, ge=1, le=64)
    """Side (and stride) of the average-pooling window."""


Head = Annotated[GlobalPoolHead | PoolFlattenHead, Field(discriminator="kind")]


class Spec(_Model):
    """A ResNet architecture."""

    format_version: One
    """Version of this spec format."""
    name: str = Field(pattern=IDENTIFIER)
    """Model name: letters, digits and underscores, starting with a letter."""
    description: str = Field(default="", max_length=500)
    """Free text for people; reaches generated code only as a string literal."""
    input: InputShape
    """Input image shape."""
    stem: Stem
    """Layers before the first stage."""
    block: Block
    """The residual block every stage is built from."""
    stages: list[Stage] = Field(min_length=1, max_length=8)
    """The stages, in order."""
    shortcut: Shortcut = ProjectionShortcut(kind="projection")
    """How a block's input reaches its addition when the shape changes."""
    norm: BatchNorm = BatchNorm()
    """BatchNorm settings."""
    conv_bias: Literal["none", "all", "unnormalized"] = "none"
    """Bias on convolutions: none (torchvision), all (keras V1), or only on convolutions not directly
    followed by BatchNorm (keras V2)."""
    padding: Literal["symmetric", "tf_same"] = "symmetric"
    """Symmetric padding of k // 2, or TensorFlow's "same" (extra row/column at the bottom/right where
    a strided convolution needs an odd amount), as the seed's Keras code uses."""
    regularization: Regularization = Regularization()
    """Weight penalties and stochastic depth."""
    init: Init = Init()
    """How the parameters start (torchvision's rule unless stated)."""
    head: Head
    """Layers after the last stage."""

    @model_validator(mode="after")
    def _consistent(self) -> Spec:
        problem = name_problem(self.name)
        if problem:
            raise ValueError(problem)
        if (
            isinstance(self.shortcut, ProjectionShortcut)
            and self.shortcut.source == "preactivated"
            and not self.block.preactivation
        ):
            raise ValueError("'preactivated' needs block.preactivation: true; use 'input'")
        if (
            isinstance(self.shortcut, ProjectionShortcut)
            and self.shortcut.downsample == "avg_pool"
            and self.shortcut.stride_only == "max_pool"
        ):
            raise ValueError("downsample 'avg_pool' already subsamples; use stride_only: project")
        if isinstance(self.shortcut, ProjectionShortcut) and self.shortcut.kernel_size == 3:
            if self.shortcut.downsample == "avg_pool":
                raise ValueError("downsample 'avg_pool' projects with a 1x1 convolution; use kernel_size: 1")
            if self.padding == "tf_same":
                raise ValueError("a 3x3 projection pads symmetrically; use padding: symmetric")
        if self.regularization.drop_path and sum(s.blocks for s in self.stages) < 2:
            raise ValueError("drop_path's schedule needs at least 2 blocks (block 0 always has rate 0)")
        return self

    def canonical_json(self) -> str:
        """The spec without the fields left at their defaults, keys sorted: equal for equal networks
        however they are written, and unchanged when a later version adds an optional field."""
        data = self.model_dump(mode="json", exclude_defaults=True)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def content_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]


def name_problem(name: str) -> str | None:
    """Why a name that fits IDENTIFIER still cannot name a model, or None."""
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return f"name {name!r} is a Python keyword"
    if name in RESERVED_NAMES or hasattr(builtins, name):
        return f"name {name!r} is a Python builtin or a name generated code uses"
    return None


def json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "resgen ResNet spec"
    return schema
