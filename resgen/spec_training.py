"""Stage 2, the training-time parts of the spec format: weight penalties, stochastic depth and
initialization. None of them changes the function a network computes in eval mode; each reaches
both targets (`resgen.spec.Spec` holds them as ``regularization`` and ``init``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Rate = Field(default=None, ge=0.0, le=1.0)


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, use_attribute_docstrings=True)


class Regularization(_Model):
    """Weight penalties (L2 on kernels, by role) and stochastic depth."""

    l2: float = Field(default=0.0, ge=0.0, le=1.0)
    """Keras l2(r) on every convolution and dense kernel; equals PyTorch weight decay 2r on them.
    The four fields below override it for one role."""
    stem: float | None = Rate
    """L2 on the stem's convolutions, in place of l2 (Rosebrock's tutorial: build's reg)."""
    blocks: float | None = Rate
    """L2 on the convolutions of the residual branches (attention's included), in place of l2."""
    shortcuts: float | None = Rate
    """L2 on the projection shortcuts' convolutions, in place of l2."""
    head: float | None = Rate
    """L2 on the classifier's kernel, in place of l2 (Rosebrock's tutorial: build's reg)."""
    drop_path: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Stochastic depth (Huang et al. 2016) with timm's linear rule: of N blocks in all, the block
    with index i (0, 1, ... over every stage) drops its residual branch, per sample and in training
    only, with probability drop_path * i / (N - 1); this is the last block's rate (timm's
    drop_path_rate). 0 for none."""

    def l2_by_role(self) -> dict[str, float]:
        """The L2 factor of each role: stem, blocks, shortcuts, head."""
        roles = ("stem", "blocks", "shortcuts", "head")
        values = {role: getattr(self, role) for role in roles}
        return {role: self.l2 if value is None else value for role, value in values.items()}


KernelInit = Literal["he_normal_fan_out", "uniform_fan_in", "glorot_uniform"]
ClassifierInit = Literal["he_normal_fan_out", "uniform_fan_in", "glorot_uniform", "normal_0.01"]


class Init(_Model):
    """How the parameters start, the same distribution in both targets. The default is torchvision's
    rule (timm's too, with zero_init_last); Keras' defaults are conv, dense and eca glorot_uniform with
    bias zeros. Distributions: he_normal_fan_out is N(0, 2 / fan_out) (torch's kaiming_normal_ with
    mode="fan_out", nonlinearity="relu"); uniform_fan_in is U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (torch's
    default for convolutions and linear layers); glorot_uniform is U(-a, a), a = sqrt(6 / (fan_in +
    fan_out)) (Keras' default kernels). Normalization layers start with scale 1 and offset 0."""

    conv: KernelInit = "he_normal_fan_out"
    """Kernels of the 2-D convolutions (stem, blocks, shortcuts, squeeze-and-excitation)."""
    dense: ClassifierInit = "uniform_fan_in"
    """Kernel of the classifier, a dense layer or a 1x1 convolution; normal_0.01 is N(0, 0.01^2), as
    timm's ResNetV2 starts its head.fc."""
    eca: KernelInit = "uniform_fan_in"
    """Kernel of ECA's 1-D convolution across channels (timm keeps torch's default)."""
    bias: Literal["uniform_fan_in", "zeros"] = "uniform_fan_in"
    """Every bias of a convolution or the classifier: torch's default, uniform with its layer's
    fan-in, or zeros (Keras' default)."""
    zero_init_last: bool = False
    """Start the last normalization of every residual branch with scale 0 (in a pre-activation
    block, which ends in a convolution, that convolution's kernel), so each block starts as the
    identity: timm's zero_init_last (its default), torchvision's zero_init_residual."""
