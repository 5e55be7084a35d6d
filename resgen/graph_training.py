"""The layer graph's records of the training-time settings: initialization and L2 by role.

Lowering (`resgen.lower`) resolves the spec's ``init`` and ``regularization`` sections into these
once; `resgen.graph.Network` holds them, and the backends write them. Which layers start at zero
(``zero_init_last``) is marked on the layers themselves (`resgen.graph.Layer.zero_init`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Distribution(StrEnum):
    """Where a kernel or a bias starts."""

    HE_NORMAL_FAN_OUT = "he_normal_fan_out"  # N(0, 2 / fan_out): torch kaiming_normal_, fan_out, relu
    UNIFORM_FAN_IN = "uniform_fan_in"  # U(+-1 / sqrt(fan_in)): torch's default for Conv and Linear
    GLOROT_UNIFORM = "glorot_uniform"  # U(+-sqrt(6 / (fan_in + fan_out))): Keras' default kernels
    ZEROS = "zeros"  # Keras' default biases
    NORMAL_0_01 = "normal_0.01"  # N(0, 0.01^2): timm's ResNetV2 classifier


@dataclass(frozen=True)
class InitSettings:
    """Initialization of every parameter; normalization layers start with scale 1 and offset 0."""

    conv: Distribution = Distribution.HE_NORMAL_FAN_OUT  # 2-D convolution kernels
    dense: Distribution = Distribution.UNIFORM_FAN_IN  # the classifier's kernel
    eca: Distribution = Distribution.UNIFORM_FAN_IN  # ECA's 1-D convolution
    bias: Distribution = Distribution.UNIFORM_FAN_IN  # every bias of a convolution or the classifier
    zero_init_last: bool = False  # the layers marked zero_init start at zero


L2_ROLES = ("stem", "blocks", "shortcuts", "head")


@dataclass(frozen=True)
class L2Settings:
    """Keras l2(r) on the kernels of each role (`resgen.graph.Layer.l2_role`)."""

    stem: float = 0.0
    blocks: float = 0.0
    shortcuts: float = 0.0
    head: float = 0.0

    def of(self, role: str) -> float:
        value: float = getattr(self, role)
        return value

    def values(self) -> dict[str, float]:
        return {role: self.of(role) for role in L2_ROLES}

    @property
    def any(self) -> bool:
        return any(self.values().values())
