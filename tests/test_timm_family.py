"""timm's ResNet family (ResNet-C/D/S/T, He et al. 2019's "Bag of Tricks" variants): the generated
torch module loads timm's state dict with ``strict=True`` (timm's module paths) and computes timm's
function, at odd input sizes where ceil-mode average pools have a partial window; deep stems and
average-pool shortcuts pass parity both ways (tests/test_parity.py), and the harness fails when
their conventions are planted wrong.

timm builds its models with ``pretrained=False``: nothing is downloaded.
"""

from __future__ import annotations

from typing import Any

import pytest

import resgen
from resgen import parity
from resgen.generated_module import import_generated
from tests.helpers import preset_params

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

TIMM_PRESETS = [
    "resnet10t",
    "resnet14t",
    "resnet18d",
    "resnet26",
    "resnet26d",
    "resnet26t",
    "resnet34d",
    "resnet50c",
    "resnet50d",
    "resnet50s",
    "resnet50t",
    "resnet101d",
    "resnet152d",
    "resnet200d",
    "resnext50d_32x4d",
    "seresnet50",
    "seresnext50_32x4d",
    "seresnext101_32x8d",
    "seresnext101d_32x8d",
    "senet154",
    "resnetaa50d",
    "resnetblur50",
    "ecaresnet26t",
    "ecaresnet50d",
    "ecaresnet101d",
    "resnetrs50",
    "resnetrs101",
    "resnet50_gn",
    "resnetv2_50",
    "resnetv2_50d",
    "resnetv2_50x1_bit",
    "resnetv2_101x1_bit",
]
# Input size of the default lane's comparison, by preset (others: 97x71): small and odd, so that
# ceil-mode pools have a partial window and max-pool padding reaches the edge.
ODD_SIZES = {
    "resnet10t": (225, 161),
    "resnet26d": (225, 161),
    "resnetaa50d": (225, 161),
    "resnetv2_50": (65, 47),
    "resnetv2_50d": (65, 47),
    "resnetv2_50x1_bit": (65, 47),
    "resnetv2_101x1_bit": (65, 47),
}


def random_state(model: Any, seed: int) -> dict[str, Any]:
    """timm's state dict (its own He-normal kernels) with random normalization parameters and
    statistics, far from 0 and 1, so that a mixed-up BatchNorm tensor cannot go unnoticed."""
    gen = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    for key, value in state.items():
        if value.dtype.is_floating_point and value.dim() == 1 and key != "fc.bias":  # classifier: timm's
            noise = torch.randn(value.shape, generator=gen) * 0.1
            if key.endswith("running_var"):
                state[key] = noise.abs() + 0.5
            elif key.endswith(".weight"):
                state[key] = noise + 1.0  # scales near 1 (timm zero-initializes the last one of a block)
            else:
                state[key] = noise
    return state


def compare_with_timm(name: str, size: tuple[int, int], torch_source: str = "") -> tuple[float, float]:
    """(max |ours - timm|, max |timm|) in eval mode, after a strict load of timm's weights; ours is the
    generated torch module, or `torch_source` (a planted variant of it)."""
    torch.manual_seed(0)
    net = resgen.compile(name, input_size=size)
    return compare(net, timm.create_model(name, pretrained=False), torch_source)


def compare(net: resgen.Compiled, reference: Any, torch_source: str = "") -> tuple[float, float]:
    """(max |ours - reference|, max |reference|) in eval mode at the network's input size, after a
    strict load of the reference's weights (normalization tensors randomized)."""
    size = net.graph.input_hwc[:2]
    source = torch_source or resgen.render(net, "torch")
    ours = import_generated(source, f"timm_family_{net.name}_{len(source)}").build_model().eval()
    reference = reference.eval()
    state = random_state(reference, seed=1)
    reference.load_state_dict(state)
    ours.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got, want = ours(x), reference(x)
    return float((got - want).abs().max()), float(want.abs().max())


@pytest.mark.parametrize("name", preset_params(TIMM_PRESETS))
def test_loads_timm_strictly_and_computes_the_same_at_an_odd_size(name: str) -> None:
    # resnetaa50d: timm's floor-mode anti-aliasing pools need even maps where its ceil-mode shortcut
    # pools meet them (at 97x71 timm's own model fails at the addition, and resgen refuses the size)
    diff, scale = compare_with_timm(name, ODD_SIZES.get(name, (97, 71)))
    assert diff <= 1e-5 * max(1.0, scale), f"{name}: max |diff| {diff:.3g} (scale {scale:.3g})"


@pytest.mark.parametrize(
    "name",
    # every timm preset at timm's default input size; two cheap ones in the default lane
    [
        name if name in ("resnet10t", "resnet26d") else pytest.param(name, marks=pytest.mark.slow)
        for name in TIMM_PRESETS
    ],
)
def test_equals_timm_at_its_default_input_size(name: str) -> None:
    _, height, width = timm.models.get_pretrained_cfg(name).input_size
    net = resgen.compile(name)
    assert net.graph.input_hwc == (height, width, 3)
    diff, scale = compare_with_timm(name, (height, width))
    assert diff <= 1e-5 * max(1.0, scale)


def test_module_paths_are_timms() -> None:
    net = resgen.compile("resnet26d")
    state = import_generated(resgen.render(net, "torch"), "timm_paths").build_model().state_dict()
    assert {"conv1.0.weight", "conv1.4.running_var", "conv1.6.weight", "bn1.weight"} <= set(state)
    # avg_down: the convolution is downsample.1 also in layer1, where nn.Identity() stands for the pool
    assert {"layer1.0.downsample.1.weight", "layer2.0.downsample.2.bias"} <= set(state)
    assert set(state) == set(timm.create_model("resnet26d", pretrained=False).state_dict())


def test_strided_conv_stem_pool_paths_are_timms() -> None:
    net = resgen.compile("resnetrs50")
    state = import_generated(resgen.render(net, "torch"), "timm_rs_paths").build_model().state_dict()
    assert {"maxpool.0.weight", "maxpool.1.running_mean"} <= set(state)
    assert [r.reduced for r in net.graph.blocks if r.block == 1] == [64, 128, 256, 512]  # SE ratio 1/4
    assert set(state) == set(timm.create_model("resnetrs50", pretrained=False).state_dict())


def test_squeeze_excite_paths_and_widths_are_timms() -> None:
    net = resgen.compile("seresnet50")
    # timm's make_divisible(channels / 16, 8): 256 -> 16, 2048 -> 128
    assert [r.reduced for r in net.graph.blocks if r.block == 1] == [16, 32, 64, 128]
    model = import_generated(resgen.render(net, "torch"), "timm_se_paths").build_model()
    state = model.state_dict()
    assert {"layer1.0.se.fc1.weight", "layer1.0.se.fc1.bias", "layer4.2.se.fc2.bias"} <= set(state)
    assert set(state) == set(timm.create_model("seresnet50", pretrained=False).state_dict())


def test_planted_squeeze_excite_without_bias_fails() -> None:
    source = resgen.render("seresnet50", "torch")
    planted = source.replace(
        "self.fc1 = nn.Conv2d(channels, reduced, kernel_size=1)",
        "self.fc1 = nn.Conv2d(channels, reduced, kernel_size=1, bias=False)",
    )
    assert planted != source
    net = resgen.compile("seresnet50", input_size=(33, 47))
    with pytest.raises((RuntimeError, KeyError, ValueError)):
        parity.check(net, torch_source=planted)


def test_eca_paths_and_kernel_sizes_are_timms() -> None:
    net = resgen.compile("ecaresnet26t")
    assert [r.eca_kernel for r in net.graph.blocks if r.block == 1] == [5, 5, 5, 7]  # 256 ... 2048 channels
    state = import_generated(resgen.render(net, "torch"), "timm_eca_paths").build_model().state_dict()
    assert state["layer4.0.se.conv.weight"].shape == (1, 1, 7)
    assert set(state) == set(timm.create_model("ecaresnet26t", pretrained=False).state_dict())


def test_planted_eca_kernel_rule_fails() -> None:
    source = resgen.render("ecaresnet26t", "torch")
    planted = source.replace("kernel_size = max(t if t % 2 else t + 1, 3)", "kernel_size = 3")
    assert planted != source
    with pytest.raises((RuntimeError, ValueError), match="shape"):  # the weights no longer fit: refused
        parity.check(resgen.compile("ecaresnet26t", input_size=(33, 47)), torch_source=planted)


# senet154's rules (timm's block_reduce_first=2, down_kernel_size=3) at a small width, where they are
# cheap to prove against timm's own ResNet class; senet154 itself runs in the slow lane.
SMALL_SENET: dict[str, Any] = {
    "format_version": 1,
    "name": "small_senet",
    "input": {"height": 57, "width": 43},
    "stem": {"kind": "deep", "widths": [16, 16, 32], "pool": {"pad_with": "-inf"}},
    "block": {
        "kind": "bottleneck",
        "groups": 4,
        "width_per_group": 8,
        "reduce_first": 2,
        "attention": {"kind": "se"},
    },
    "stages": [
        {"blocks": 2, "filters": 16, "stride": 1},
        {"blocks": 1, "filters": 32, "stride": 2},
        {"blocks": 2, "filters": 64, "stride": 2},
        {"blocks": 1, "filters": 128, "stride": 2},
    ],
    "shortcut": {"kind": "projection", "kernel_size": 3},
    "head": {"kind": "global_pool", "classes": 10},
}


def small_senet_reference() -> Any:
    from timm.models.resnet import Bottleneck, ResNet

    torch.manual_seed(0)
    return ResNet(
        block=Bottleneck,
        layers=(2, 1, 2, 1),
        channels=(16, 32, 64, 128),
        num_classes=10,
        cardinality=4,
        base_width=8,
        stem_type="deep",
        stem_width=16,
        down_kernel_size=3,
        block_reduce_first=2,
        block_args={"attn_layer": "se"},
    )


def test_senet_rules_equal_timms_at_a_small_width() -> None:
    net = resgen.compile(SMALL_SENET)
    assert [(r.first_width, r.width) for r in net.graph.blocks][:2] == [(4, 8), (4, 8)]
    projections = [x.op for x in net.graph.of_kind("conv2d") if x.role == "shortcut_conv"]
    assert [(op.kernel_size, op.stride) for op in projections] == [(1, 1), (3, 2), (3, 2), (3, 2)]
    diff, scale = compare(net, small_senet_reference())
    assert diff <= 1e-5 * max(1.0, scale)
    assert parity.check(net).passed


def test_planted_one_by_one_strided_projection_fails() -> None:
    source = resgen.render(SMALL_SENET, "keras")
    planted = source.replace('"wide_projection"', '"projection"')
    assert planted != source
    assert planted_failure(SMALL_SENET, (57, 43), keras_source=planted)


# --- anti-aliasing (Zhang 2019): timm's aa_layer, average pool and blur pool ---------------------------


def test_anti_aliasing_paths_are_timms_and_the_blur_filter_is_not_saved() -> None:
    for name in ("resnetaa50d", "resnetblur50"):
        net = resgen.compile(name, input_size=(64, 64))
        model = import_generated(resgen.render(net, "torch"), f"timm_aa_{name}").build_model()
        assert set(model.state_dict()) == set(timm.create_model(name, pretrained=False).state_dict())
        assert [x.name for x in net.graph if x.role == "aa"] == [
            "stage2.block1.aa",
            "stage3.block1.aa",
            "stage4.block1.aa",
        ]
    # timm: the stem max-pools with stride 1, then a blur pool carries the stride (maxpool.0 / .1)
    assert type(model.maxpool[1]).__name__ == "BlurPool2d" and model.maxpool[0].stride == 1
    assert type(model.layer1[0].aa).__name__ == "Identity"


def basic_variant(name: str, size: tuple[int, int]) -> dict[str, Any]:
    """A preset with basic blocks, two per stage (timm's resnetblur18 / resnetaa34d-style bodies)."""
    data = resgen.compile(name).spec.model_dump(mode="json", exclude_defaults=True)
    data["block"] = {"kind": "basic", "anti_alias": data["block"]["anti_alias"]}
    data["name"] = f"{name}_basic"
    data["input"] = {"height": size[0], "width": size[1]}
    return data


@pytest.mark.parametrize(
    ("preset", "timm_name", "blocks"),
    [("resnetblur50", "resnetblur18", [2, 2, 2, 2]), ("resnetaa50d", "resnetaa34d", [3, 4, 6, 3])],
)
def test_anti_aliased_basic_blocks_equal_timms(preset: str, timm_name: str, blocks: list[int]) -> None:
    data = basic_variant(preset, (130, 98))  # even maps where anti-aliasing meets avg_down
    for stage, count in zip(data["stages"], blocks, strict=True):
        stage["blocks"] = count
    net = resgen.compile(data)
    torch.manual_seed(0)
    diff, scale = compare(net, timm.create_model(timm_name, pretrained=False))
    assert diff <= 1e-5 * max(1.0, scale)
    assert parity.check(net).passed


def test_planted_zero_padding_blur_pool_fails() -> None:
    for target in ("torch", "keras"):
        source = resgen.render("resnetblur50", target)
        planted = source.replace('mode="reflect"', 'mode="constant"')
        assert planted != source
        kwargs = {f"{target}_source": planted}
        assert planted_failure("resnetblur50", (65, 47), **kwargs), target


def test_planted_blur_filter_as_a_box_fails() -> None:
    source = resgen.render("resnetblur50", "keras")
    planted = source.replace("math.comb(n - 1, k) / 2 ** (n - 1)", "1 / n")
    assert planted != source
    assert planted_failure("resnetblur50", (65, 47), keras_source=planted)


def test_resnetv2_module_paths_are_timms() -> None:
    for name in ("resnetv2_50d", "resnetv2_50x1_bit"):
        net = resgen.compile(name)
        state = (
            import_generated(resgen.render(net, "torch"), f"timm_v2_paths_{name}").build_model().state_dict()
        )
        assert set(state) == set(timm.create_model(name, pretrained=False).state_dict())
        assert state["head.fc.weight"].shape == (1000, 2048, 1, 1) and state["head.fc.bias"].shape == (1000,)
        if name == "resnetv2_50d":  # no norm after the deep stem's conv3; avg_down's conv is downsample.conv
            assert {"stem.conv3.weight", "stages.0.blocks.0.downsample.conv.weight"} <= set(state)
            assert "stem.norm3.weight" not in state


def test_weight_standardization_is_on_every_convolution_timm_standardizes() -> None:
    """timm's BiT: StdConv2d in the stem, the blocks and the shortcuts; head.fc is a plain Conv2d."""
    model = import_generated(resgen.render("resnetv2_50x1_bit", "torch"), "timm_v2_std").build_model()
    reference = timm.create_model("resnetv2_50x1_bit", pretrained=False)
    ours = {n: type(m).__name__ for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}
    theirs = {n: type(m).__name__ for n, m in reference.named_modules() if isinstance(m, torch.nn.Conv2d)}
    assert ours == theirs
    assert ours["head.fc"] == "Conv2d" and ours["stem.conv"] == "StdConv2d"
    assert {m.eps for m in reference.modules() if type(m).__name__ == "StdConv2d"} == {1e-8}


BIT_SIZE = ODD_SIZES["resnetv2_50x1_bit"]
UNBIASED = """        rows = self.weight.reshape(1, self.out_channels, -1)
        mean = rows.mean(dim=2, keepdim=True)
        var = rows.var(dim=2, keepdim=True)  # unbiased: divides by n - 1
        weight = (rows - mean) / torch.sqrt(var + self.eps)"""


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("eps: float = 1e-08", "eps: float = 1e-05"),
        (
            "        rows = self.weight.reshape(1, self.out_channels, -1)\n"
            "        weight = nn.functional.batch_norm(rows, None, None, training=True, eps=self.eps)",
            UNBIASED,
        ),
    ],
    ids=["epsilon_1e-5", "unbiased_variance"],
)
def test_planted_weight_standardization_fails_against_timm(old: str, new: str) -> None:
    source = resgen.render("resnetv2_50x1_bit", "torch")
    planted = source.replace(old, new)
    assert planted != source
    diff, scale = compare_with_timm("resnetv2_50x1_bit", BIT_SIZE, torch_source=planted)
    assert diff > 1e-5 * max(1.0, scale), f"planted bug unseen: max |diff| {diff:.3g} (scale {scale:.3g})"


# --- the harness sees the new conventions --------------------------------------------------------------


def planted_failure(
    name: str | dict[str, Any], size: tuple[int, int], *, torch_source: str = "", keras_source: str = ""
) -> bool:
    """Whether parity fails (by a mismatch or by refusing to run) with a planted source."""
    net = resgen.compile(name, input_size=size)
    try:
        report = parity.check(net, torch_source=torch_source or None, keras_source=keras_source or None)
    except (RuntimeError, ValueError) as exc:  # shapes no longer agree at the residual addition
        return "size" in str(exc) or "shape" in str(exc).lower() or "Incompatible" in str(exc)
    return not report.passed


def test_planted_group_norm_groups_fail() -> None:
    source = resgen.render("resnet50_gn", "torch")
    planted = source.replace("NORM_GROUPS = 32", "NORM_GROUPS = 16")
    assert planted != source
    assert planted_failure("resnet50_gn", (33, 47), torch_source=planted)


def test_planted_floor_mode_average_pool_fails() -> None:
    source = resgen.render("resnet10t", "torch")
    planted = source.replace("ceil_mode=True", "ceil_mode=False")
    assert planted != source
    assert planted_failure("resnet10t", (65, 47), torch_source=planted)


def test_count_include_pad_cannot_matter_without_padding() -> None:
    """timm's avg_down pools with count_include_pad=False, but it pads nothing: torch clips a ceil-mode
    edge window to the input either way, so the flag cannot change the function (resgen writes it as
    timm does). Counting padding in the mean does matter; the next test plants that in Keras."""
    source = resgen.render("resnet10t", "torch")
    planted = source.replace("count_include_pad=False", "count_include_pad=True")
    assert planted != source
    assert not planted_failure("resnet10t", (65, 47), torch_source=planted)


# A Keras average pool that pads the edge with zeros and counts them in the mean (what
# count_include_pad=True would do to a padded pool): the edge windows average in zeros.
COUNTED_PAD_POOL = """

def counted_pad_pool(pool_size, strides, padding, data_format, name):
    pool = layers.AveragePooling2D(pool_size, strides=strides, padding="valid", name=name)

    def apply(x):
        h, w = x.shape[1] % 2, x.shape[2] % 2
        return pool(layers.ZeroPadding2D(((0, h), (0, w)), name=name + "_zeros")(x))

    return apply
"""


def test_planted_padding_counted_in_the_mean_fails() -> None:
    source = resgen.render("resnet10t", "keras")
    marker = "\nINPUT_SHAPE = "
    assert marker in source and "layers.AveragePooling2D(" in source
    planted = source.replace("layers.AveragePooling2D(", "counted_pad_pool(")
    planted = planted.replace(marker, COUNTED_PAD_POOL + marker, 1)
    assert planted_failure("resnet10t", (65, 47), keras_source=planted)


def test_planted_valid_padding_average_pool_fails() -> None:
    source = resgen.render("resnet10t", "keras")
    head = "layers.AveragePooling2D("
    assert source.count('padding="same"') >= 1 and head in source
    start = source.index(head)
    end = source.index(")(", start)
    planted = source[:start] + source[start:end].replace('padding="same"', 'padding="valid"') + source[end:]
    assert planted != source
    assert planted_failure("resnet10t", (65, 47), keras_source=planted)


NEG_INF_STEM = {
    "format_version": 1,
    "name": "neg_inf_pool",
    "input": {"height": 33, "width": 29},
    "stem": {
        "kind": "conv",
        "filters": 8,
        "kernel_size": 3,
        "stride": 1,
        "norm": False,  # the pool sees signed values: its padding value matters
        "pool": {"kernel_size": 3, "stride": 2, "padding": 1, "pad_with": "-inf"},
    },
    "block": {"kind": "basic", "preactivation": True},
    "stages": [{"blocks": 1, "filters": 8, "stride": 1}, {"blocks": 1, "filters": 16, "stride": 2}],
    "head": {"kind": "global_pool", "classes": 5, "norm": True},
}


def test_neg_inf_max_pool_padding_holds_in_both_targets() -> None:
    net = resgen.compile(NEG_INF_STEM)
    assert parity.check(net).passed
    keras_source = resgen.render(net, "keras")
    assert "NegInfPadding2D(" in keras_source
    planted = keras_source.replace("x = NegInfPadding2D(padding=1,", "x = layers.ZeroPadding2D(padding=1,")
    assert planted != keras_source
    assert not parity.check(net, keras_source=planted).passed
    zeros = resgen.compile({**NEG_INF_STEM, "stem": {**NEG_INF_STEM["stem"], "pool": {"pad_with": "zeros"}}})
    assert "nn.ZeroPad2d(1)" in resgen.render(zeros, "torch")
    assert parity.check(zeros).passed


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("resnet10t", (65, 47)),
        ("resnet18", (33, 47)),
        ("keras_resnet50v2", (33, 47)),
        ("preact_resnet164", (33, 47)),
    ],
)
def test_parity_holds_with_batch_norm_scales_of_both_signs(name: str, size: tuple[int, int]) -> None:
    report = parity.check(resgen.compile(name, input_size=size), signed_scales=True)
    assert report.passed, parity.format_report(report)
