"""Stage 2, the backbone section of the spec format: the feature maps a detection or segmentation
model reads from the network (timm's ``features_only``, torchvision's ``create_feature_extractor``).

`resgen.spec.Spec` holds it as ``backbone``; with ``features`` the head is ``{kind: none}`` and the
network returns one feature map per tap, in the order listed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from resgen.spec_parts import NoHead, SpecModel

if TYPE_CHECKING:
    from resgen.spec import Spec


def _tap(value: Any) -> Any:
    """One message for every wrong tap, rather than one per member of the union."""
    if value == "stem" and isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 8:
        return value
    raise PydanticCustomError("tap", "a tap is 'stem' or a stage number from 1 to 8")


Tap = Annotated[Literal["stem"] | Annotated[int, Field(ge=1, le=8)], BeforeValidator(_tap)]


class Backbone(SpecModel):
    """The network as a backbone: which feature maps it returns."""

    features: list[Tap] = Field(default_factory=list, max_length=9)
    """Feature maps the network returns, in network order: "stem" is the stem's output after its
    activation and before its pool (timm's feature index 0), n the output of stage n. With
    features, set head: {kind: none}; the torch model's forward returns a list of tensors (timm's
    features_only=True, out_indices) and has feature_info, the Keras model has one output per
    tap. Empty: the network is a classifier."""

    output_stride: Literal[32, 16, 8] = 32
    """How many input pixels one step of the last feature map spans at most: 16 or 8 make the
    later stages dilate their 3x3 convolutions instead of striding (torchvision's
    replace_stride_with_dilation, timm's output_stride), for segmentation; 32 keeps every stride.
    resnet50 with 8 gives a 28x28 map at 224."""
    dilation: Literal["torchvision", "whole_stage"] = "torchvision"
    """How a stage that dilates instead of striding spreads its dilation: "torchvision" (as
    torchvision and timm do) keeps the previous dilation in the stage's first block and gives the
    rest the new one; "whole_stage" (detectron2) gives every block of the stage the new one."""

    frozen_stages: int = Field(default=0, ge=0, le=8)
    """How many stages do not train, as mmdet's frozen_stages (whose -1 is 0 here): 0 (the
    default) freezes nothing; k freezes the stem and stages 1 to k, whose parameters get no
    gradient and whose BatchNorms normalize with, and keep, their running statistics while the
    rest trains (torch: requires_grad False and a train() that keeps them in eval mode; Keras:
    trainable=False)."""
    norm_eval: bool = False
    """Every BatchNorm normalizes with, and keeps, its running statistics while the network
    trains, as mmdet's norm_eval: for fine-tuning with small batches. Their scale and offset
    still train (outside frozen stages)."""

    @model_validator(mode="after")
    def _in_network_order(self) -> Backbone:
        order = [0 if tap == "stem" else tap for tap in self.features]
        if order != sorted(set(order)):
            raise ValueError(
                "features lists each tap once, in network order: stem, then stages by number "
                "(as timm's out_indices)"
            )
        return self


# What the backbone section needs of the rest of the spec, each with the field it is about.
BACKBONE_NEEDS: dict[str, tuple[str, ...]] = {
    "head kind 'none' returns backbone.features": ("head", "kind"),
    "features replace the head's output": ("backbone", "features"),
    "features taps stage": ("backbone", "features"),
    "follows the last tap and feeds no output": ("backbone", "features"),
    "output_stride cannot dilate": ("backbone", "output_stride"),
    "frozen_stages freezes stage": ("backbone", "frozen_stages"),
    "norm_eval keeps BatchNorm": ("backbone", "norm_eval"),
}


def backbone_problem(spec: Spec) -> str | None:
    """The first way the backbone section and the rest of the spec disagree, or None."""
    features = spec.backbone.features
    if isinstance(spec.head, NoHead) and not features:
        return "head kind 'none' returns backbone.features: list the taps there, or give a classifier head"
    if features and not isinstance(spec.head, NoHead):
        return "features replace the head's output: set head: {kind: none}"
    stages = [tap for tap in features if tap != "stem"]
    if stages and max(stages) > len(spec.stages):
        return f"features taps stage {max(stages)}, but the network has {len(spec.stages)} stages"
    if features and (not stages or max(stages) != len(spec.stages)):
        last = len(spec.stages)
        return f"stage {last} follows the last tap and feeds no output: tap it, or remove the stage"
    frozen = spec.backbone.frozen_stages
    if frozen > len(spec.stages):
        return f"frozen_stages freezes stage {frozen}, but the network has {len(spec.stages)} stages"
    if spec.backbone.norm_eval and spec.norm.kind != "batch":
        return (
            "norm_eval keeps BatchNorm in eval mode, but the network normalizes with GroupNorm, "
            "which has no running statistics: remove norm_eval"
        )
    return _dilation_problem(spec)


def _dilation_problem(spec: Spec) -> str | None:
    """What output_stride cannot dilate: the spec features whose dilated form no reference defines."""
    if spec.backbone.output_stride == 32:
        return None
    block = spec.block
    shortcut = getattr(spec.shortcut, "kernel_size", 1)
    unsupported = [
        (spec.padding == "tf_same", "TensorFlow 'same' padding: use padding: symmetric"),
        (block.stride_block == "last", "the stride on a stage's last block: use block.stride_block: first"),
        (block.anti_alias is not None, "anti-aliased blocks: remove block.anti_alias"),
        (shortcut == 3, "3x3 projection shortcuts: use shortcut.kernel_size: 1"),
    ]
    for found, what in unsupported:
        if found:  # no reference (torchvision, timm, detectron2) defines these dilated
            return f"output_stride cannot dilate a network with {what}, or keep output_stride: 32"
    return None
