"""Parameter and MAC counts of every preset against published figures.

Each row: (learnable params, non-trainable params (BN running mean + variance), GMACs or None), with
its source. torchvision figures are `sum(p.numel() for p in model.parameters())`, its buffers, and
`Weights.meta["_ops"]`; Keras figures are model.count_params() split by trainable weights.
"""

from __future__ import annotations

import pytest

from resgen import load
from resgen.compiler import compile_spec

PUBLISHED: dict[str, tuple[int, int, float | None]] = {
    # Source: torchvision 0.29.1 models.NAME(): parameters(), BN buffers, Weights.meta['_ops'] (GMACs)
    "resnet18": (11_689_512, 9_600, 1.814),
    "resnet34": (21_797_672, 17_024, 3.664),
    "resnet50": (25_557_032, 53_120, 4.089),
    "resnet101": (44_549_160, 105_344, 7.801),
    "resnet152": (60_192_808, 151_424, 11.514),
    "resnext50_32x4d": (25_028_904, 68_224, 4.23),
    "resnext101_32x8d": (88_791_336, 202_880, 16.414),
    "resnext101_64x4d": (83_455_272, 202_880, 15.46),
    "wide_resnet50_2": (68_883_240, 68_224, 11.398),
    "wide_resnet101_2": (126_886_696, 137_856, 22.753),
    # Source: He et al. 2015 CIFAR-10 6n+2, option A; agrees with akamaster/pytorch_resnet_cifar10 README
    "cifar_resnet20": (269_722, 1_376, None),
    "cifar_resnet32": (464_154, 2_272, None),
    "cifar_resnet44": (658_586, 3_168, None),
    "cifar_resnet56": (853_018, 4_064, None),
    "cifar_resnet110": (1_727_962, 8_096, None),
    "cifar_resnet1202": (19_421_274, 89_632, None),
    # Source: He et al. 2016 (Identity Mappings) CIFAR-10 bottleneck; paper: 1.7M / 10.2M (paper excludes
    # BN affine)
    "preact_resnet164": (1_703_258, 24_224, None),
    "preact_resnet1001": (10_327_706, 149_216, None),
    # Source: keras 3.15.1 applications.ResNetNN[V2](weights=None), trainable / non-trainable weights
    "keras_resnet50": (25_583_592, 53_120, None),
    "keras_resnet101": (44_601_832, 105_344, None),
    "keras_resnet152": (60_268_520, 151_424, None),
    "keras_resnet50v2": (25_568_360, 45_440, None),
    "keras_resnet101v2": (44_577_896, 97_664, None),
    "keras_resnet152v2": (60_236_904, 143_744, None),
    # Source: the seed's ResNet.build (Rosebrock) with stages (9,9,9), filters (64,64,128,256), 32x32x3,
    # 10 classes, dataset='cifar'; rebuilt in Keras 3
    "rosebrock_cifar10": (873_872, 12_230, None),
    # Source: the seed's ResNet.build (Rosebrock) with stages (3,4,6), filters (64,128,256,512), 64x64x3,
    # 200 classes, dataset='tiny_imagenet'; rebuilt in Keras 3
    "rosebrock_tiny_imagenet": (2_252_046, 13_702, None),
    # Source: timm 1.0.31, timm.create_model(NAME, pretrained=False): learnable parameters, BatchNorm
    # running_mean + running_var (num_batches_tracked excluded)
    "resnet10t": (5_435_488, 5_872, None),
    "resnet14t": (10_081_632, 19_440, None),
    "resnet18d": (11_708_744, 9_728, None),
    "resnet26": (15_995_176, 30_848, None),
    "resnet26d": (16_014_408, 30_976, None),
    "resnet26t": (16_011_872, 30_960, None),
    "resnet34d": (21_816_904, 17_152, None),
    "resnet50c": (25_576_264, 53_248, None),
    "resnet50d": (25_576_264, 53_248, None),
    "resnet50s": (25_680_808, 53_504, None),
    "resnet50t": (25_573_728, 53_232, None),
    "resnet101d": (44_568_392, 105_472, None),
    "resnet152d": (60_212_040, 151_552, None),
    "resnet200d": (64_693_064, 176_128, None),
    "seresnet50": (28_088_024, 53_120, None),
    "seresnext50_32x4d": (27_559_896, 68_224, None),
    "seresnext101_32x8d": (93_569_048, 202_880, None),
    "seresnext101d_32x8d": (93_588_280, 203_008, None),
    "senet154": (115_088_984, 247_552, None),
    "resnetaa50d": (25_576_264, 53_248, None),
    "resnetblur50": (25_557_032, 53_120, None),
    "ecaresnet26t": (16_011_916, 30_960, None),
    "ecaresnet50d": (25_576_350, 53_248, None),
    "ecaresnet101d": (44_568_563, 105_472, None),
    "resnetrs50": (35_691_912, 53_376, None),
    "resnetrs101": (63_618_696, 105_600, None),
    "resnet50_gn": (25_557_032, 0, None),
    "resnext50d_32x4d": (25_048_136, 68_352, None),
    # Source: timm 1.0.31, timm.create_model(name, pretrained=False): learnable parameters, BatchNorm
    # running_mean + running_var (num_batches_tracked excluded; GroupNorm has none)
    "resnetv2_50": (25_549_352, 45_440, None),
    "resnetv2_50d": (25_568_584, 45_568, None),
    "resnetv2_50x1_bit": (25_549_352, 0, None),
    "resnetv2_101x1_bit": (44_541_480, 0, None),
}


def test_every_preset_has_published_figures() -> None:
    assert set(PUBLISHED) == set(load.preset_names())


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_counts_match_published(name: str) -> None:
    params, non_trainable, gmacs = PUBLISHED[name]
    counted = compile_spec(name).analysis.totals()
    assert counted["params"] == params
    assert counted["non_trainable_params"] == non_trainable
    if gmacs is not None:
        assert counted["macs"] / 1e9 == pytest.approx(gmacs, rel=0.01)
