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
import sys
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from resgen.spec_backbone import BACKBONE_NEEDS, Backbone, backbone_problem
from resgen.spec_parts import (
    AntiAlias,
    Attention,
    AvgPoolAntiAlias,
    BlurAntiAlias,
    Convolution,
    ConvStem,
    DeepStem,
    EfficientChannelAttention,
    Epsilon,
    GlobalPoolHead,
    Head,
    NoHead,
    PlainConv,
    PoolFlattenHead,
    SpecModel,
    SqueezeExcite,
    Stem,
    StemPool,
    WeightStandardizedConv,
)
from resgen.spec_stages import stage_kind_problem
from resgen.spec_training import Init, Regularization

__all__ = [
    "BACKBONE_NEEDS",
    "AntiAlias",
    "Attention",
    "AvgPoolAntiAlias",
    "Backbone",
    "BlurAntiAlias",
    "ConvStem",
    "Convolution",
    "DeepStem",
    "EfficientChannelAttention",
    "GlobalPoolHead",
    "Head",
    "NoHead",
    "PlainConv",
    "PoolFlattenHead",
    "Spec",
    "SqueezeExcite",
    "Stem",
    "StemPool",
    "WeightStandardizedConv",
]

FORMAT_VERSION = 1
IDENTIFIER = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
# Names generated code itself uses; a spec name must not shadow them (nor keywords or builtins).
RESERVED_NAMES = frozenset(
    {"torch", "nn", "F", "Tensor", "keras", "layers", "ops", "regularizers", "build_model", "annotations"}
)
# Modules a generated NAME.py must not shadow when it sits on the import path: the standard library
# (torch itself imports copy, math, typing), the frameworks and what Python imports at start-up.
SHADOWED_MODULES = frozenset(
    name.casefold()
    for name in (
        *sys.stdlib_module_names,
        *("torch", "torchvision", "keras", "tensorflow", "tf_keras", "numpy", "jax", "jaxlib", "timm"),
        *("safetensors", "h5py", "scipy", "ml_dtypes", "optree", "sitecustomize", "usercustomize"),
        *("resgen", "setuptools", "pip", "pkg_resources", "typing_extensions", "sympy", "networkx"),
    )
)


def _strict_int(value: Any) -> Any:
    """A literal compares by equality, so True and 1.0 would pass as 1: refuse non-ints as strict ints do."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


One = Annotated[Literal[1], BeforeValidator(_strict_int)]


_Model = SpecModel


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
    epsilon: Epsilon = 1e-5
    """Added to the variance before the square root (torchvision 1e-5, keras.applications 1.001e-5)."""
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0)
    """Keras convention: running = momentum * running + (1 - momentum) * batch. PyTorch's is 1 - this."""


class Stage(_Model):
    """A run of blocks at one resolution."""

    blocks: int = Field(ge=1, le=1000)
    """Number of residual blocks."""
    filters: int = Field(ge=1, le=8192)
    """Base width of the blocks (torchvision's "planes"); each block outputs filters * expansion channels."""
    stride: int = Field(ge=1, le=4)
    """Downsampling factor of the stage, applied in one block (see block.stride_block)."""
    block: Literal["basic", "bottleneck"] | None = None
    """This stage's block kind where it differs from block.kind (timm's per-stage blocks, as test_resnet);
    the first stage's is block.kind, and mixed kinds keep the bottleneck-only settings at their defaults."""


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
    """Project only where the shape changes, or on the first block of every stage (keras.applications
    V1, Rosebrock's tutorial)."""
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
    conv: Convolution = PlainConv(kind="plain")
    """How every convolution uses its weights: plain, or weight-standardized (BiT)."""
    conv_bias: Literal["none", "all", "unnormalized"] = "none"
    """Bias on convolutions: none (torchvision), all (keras V1), or only on convolutions not directly
    followed by BatchNorm (keras V2)."""
    padding: Literal["symmetric", "tf_same"] = "symmetric"
    """Symmetric padding of k // 2, or TensorFlow's "same" (extra row/column at the bottom/right where
    a strided convolution needs an odd amount), as the Keras code of Rosebrock's tutorial uses."""
    regularization: Regularization = Regularization()
    """Weight penalties and stochastic depth."""
    init: Init = Init()
    """How the parameters start (torchvision's rule unless stated)."""
    head: Head
    """Layers after the last stage; {kind: none} for a backbone that returns backbone.features."""
    torch_paths: Literal["torchvision", "timm_resnetv2"] = "torchvision"
    """Module paths of the torch target, so that a reference state dict loads with strict=True:
    torchvision's (conv1, layer1.0.conv1, layer1.0.downsample.0, fc; timm's ResNet family keeps
    them), or timm's ResNetV2 (stem.conv, stages.0.blocks.0.norm1, ...downsample.conv, norm,
    head.fc). timm_resnetv2 describes timm's pre-activation network: it needs pre-activation blocks
    whose stride is on a stage's first block, a stem without normalization, projection shortcuts of
    the pre-activated input without normalization, and a head with norm: true and classifier: conv1x1.
    The Keras target keeps keras.applications' layer names either way."""
    keras_layer_order: Literal["keras_applications", "rosebrock"] = "keras_applications"
    """Order of the Keras target's layers, which Keras' weight files (.h5 loaded without by_name,
    .weights.h5) place weights by: keras.applications' (each addition takes the shortcut first) or
    that of Rosebrock's tutorial (add([conv3, shortcut]): the residual branch first)."""
    backbone: Backbone = Backbone()
    """The network as a backbone for detection or segmentation (timm's features_only): the feature
    maps it returns."""

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
        if isinstance(self.conv, WeightStandardizedConv) and self.padding != "symmetric":
            raise ValueError("weight-standardized convolutions need padding: symmetric (as timm's StdConv2d)")
        problem = backbone_problem(self)
        if problem:
            raise ValueError(problem)
        if (stage_problem := stage_kind_problem(self)) is not None:
            raise stage_problem
        if self.torch_paths == "timm_resnetv2":
            problem = timm_resnetv2_problem(self)
            if problem:
                raise ValueError(problem)
        return self

    def canonical_json(self) -> str:
        """The spec without the fields left at their defaults, keys sorted: equal for equal networks
        however they are written, and unchanged when a later version adds an optional field."""
        data = self.model_dump(mode="json", exclude_defaults=True)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def content_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]


# What torch_paths: timm_resnetv2 needs, each with the field it is about (resgen.validation locates them).
TIMM_RESNETV2_NEEDS: dict[tuple[str, ...], str] = {
    ("block", "preactivation"): "timm's ResNetV2 paths need pre-activation blocks: set it to true",
    ("block", "stride_block"): "timm's ResNetV2 paths need the stride on a stage's first block: 'first'",
    ("block", "attention"): "timm's ResNetV2 has no channel attention: set it to null",
    ("stem", "norm"): "timm's ResNetV2 stem has no normalization (its blocks normalize): set it to false",
    ("stem", "conv_pool"): "timm's ResNetV2 stem has no convolution pool: set it to false",
    ("stem", "input_norm"): "timm's ResNetV2 has no input normalization: set it to false",
    ("shortcut", "kind"): "timm's ResNetV2 shortcuts are projections: use 'projection'",
    ("shortcut", "norm"): "timm's ResNetV2 projections have no normalization: set it to false",
    ("shortcut", "source"): "timm's ResNetV2 projections read the pre-activated input: 'preactivated'",
    ("shortcut", "when"): "timm's ResNetV2 projects only where the shape changes: 'needed'",
    ("shortcut", "stride_only"): "timm's ResNetV2 projects where only the resolution changes: 'project'",
    ("shortcut", "kernel_size"): "timm's ResNetV2 projections are 1x1 convolutions: set it to 1",
    ("head", "kind"): "timm's ResNetV2 head pools globally: use 'global_pool'",
    ("head", "norm"): "timm's ResNetV2 normalizes before its head: set it to true",
    ("head", "classifier"): "timm's ResNetV2 classifier is a 1x1 convolution: 'conv1x1'",
    ("head", "output"): "timm's ResNetV2 returns logits: 'logits'",
}


def timm_resnetv2_problem(spec: Spec) -> str | None:
    """The first setting that timm's ResNetV2 module paths cannot describe, or None."""
    wanted = {
        ("block", "preactivation"): True,
        ("block", "stride_block"): "first",
        ("block", "attention"): None,
        ("stem", "norm"): False,
        ("stem", "conv_pool"): False,
        ("stem", "input_norm"): False,
        ("shortcut", "kind"): "projection",
        ("shortcut", "norm"): False,
        ("shortcut", "source"): "preactivated",
        ("shortcut", "when"): "needed",
        ("shortcut", "stride_only"): "project",
        ("shortcut", "kernel_size"): 1,
        ("head", "kind"): "global_pool",
        ("head", "norm"): True,
        ("head", "classifier"): "conv1x1",
        ("head", "output"): "logits",
    }
    for (section, field), value in wanted.items():
        part = getattr(spec, section)
        if field in type(part).model_fields and getattr(part, field) != value:
            return TIMM_RESNETV2_NEEDS[(section, field)]
        if field == "classifier" and not hasattr(part, field):  # a head without a convolution classifier
            return TIMM_RESNETV2_NEEDS[("head", "kind")]
    return None


def name_problem(name: str) -> str | None:
    """Why a name that fits IDENTIFIER still cannot name a model, or None."""
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return f"name {name!r} is a Python keyword"
    if name in RESERVED_NAMES or hasattr(builtins, name):
        return f"name {name!r} is a Python builtin or a name generated code uses"
    if name.casefold() in SHADOWED_MODULES:
        return (
            f"name {name!r} would shadow the Python module {name.lower()!r}: a generated {name}.py beside "
            "your code breaks every import of it (torch imports copy, math and typing); choose another name"
        )
    return None


def json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "resgen ResNet spec"
    return schema
