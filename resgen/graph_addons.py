"""The layer graph's records of a block's add-ons, decided once for the whole network: channel
attention (squeeze-and-excitation, ECA) with timm's size rules, and anti-aliasing. `resgen.graph`
re-exports them; `resgen.graph.BlockDesign` holds them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from resgen.ops import AvgPool, BlurPool, Op


@dataclass(frozen=True)
class SqueezeExciteDesign:
    """Squeeze-and-excitation: reduced width = make_divisible(out_channels * ratio, divisor) (timm)."""

    ratio: float
    divisor: int

    def reduced(self, channels: int) -> int:
        """timm's make_divisible with round_limit 0: the nearest multiple of divisor, at least divisor."""
        return max(self.divisor, int(channels * self.ratio + self.divisor / 2) // self.divisor * self.divisor)


@dataclass(frozen=True)
class EcaDesign:
    """ECA: kernel size from the channel count (timm's EcaModule)."""

    gamma: int
    beta: int

    def kernel_size(self, channels: int) -> int:
        """t = int(|log2(channels) + beta| / gamma), made odd, at least 3 (math.log(c, 2), as timm)."""
        t = int(abs(math.log(channels, 2) + self.beta) / self.gamma)
        return max(t if t % 2 else t + 1, 3)


@dataclass(frozen=True)
class AntiAliasDesign:
    """Anti-aliasing of strided blocks (timm's aa_layer): a 2x2 average pool or a blur pool."""

    blur: bool
    filter_size: int = 3  # of the blur pool

    def op(self, channels: int, stride: int) -> Op:
        """The pool that carries a stride of `stride` on `channels` channels."""
        if self.blur:
            return BlurPool(channels, self.filter_size, stride)
        return AvgPool(kernel_size=stride, stride=stride)
