"""Shape rules, one per op, and the counts they feed. Shapes are (C, H, W) or (F,)."""

from __future__ import annotations

import pytest

from resgen import graph, passes
from resgen.graph import (
    Add,
    AvgPool,
    BatchNorm,
    Conv2d,
    Dense,
    Flatten,
    GlobalAvgPool,
    Input,
    MaxPool,
    PadMode,
    ReLU,
    ZeroPadShortcut,
)
from resgen.passes import SHAPE_RULES, _ShapeError


def conv(**overrides: object) -> Conv2d:
    attrs: dict[str, object] = dict(
        in_channels=3,
        out_channels=8,
        kernel_size=3,
        stride=1,
        groups=1,
        bias=False,
        padding=PadMode.SYMMETRIC,
    )
    attrs.update(overrides)
    return Conv2d(**attrs)  # type: ignore[arg-type]


def shape(kind: str, op: object, ins: list[tuple[int, ...]]) -> tuple[int, ...]:
    return SHAPE_RULES[kind](op, ins)[0]


def test_every_op_has_a_shape_rule() -> None:
    assert set(SHAPE_RULES) == set(graph.OPS)


def test_input() -> None:
    assert shape("input", Input(3, 33, 47), []) == (3, 33, 47)


@pytest.mark.parametrize(
    ("k", "s", "size", "expected"),
    [(3, 1, 32, 32), (3, 2, 32, 16), (3, 2, 33, 17), (7, 2, 224, 112), (1, 2, 33, 17), (1, 1, 5, 5)],
)
def test_conv2d_symmetric(k: int, s: int, size: int, expected: int) -> None:
    out, pads = SHAPE_RULES["conv2d"](conv(kernel_size=k, stride=s), [(3, size, size)])
    assert out == (8, expected, expected)
    assert pads == ((k // 2, k // 2), (k // 2, k // 2))


def test_conv2d_tf_same_pads_bottom_right() -> None:
    out, pads = SHAPE_RULES["conv2d"](conv(stride=2, padding=PadMode.TF_SAME), [(3, 32, 33)])
    assert out == (8, 16, 17)
    assert pads == ((0, 1), (1, 1))  # 32: one extra row at the bottom; 33: one each side


def test_tf_same_pads_match_tensorflow_formula() -> None:
    # TensorFlow: out = ceil(in / s); total = max((out - 1) * s + k - in, 0); before = total // 2
    assert passes.tf_same_pads(224, 7, 2) == (2, 3)
    assert passes.tf_same_pads(5, 5, 1) == (2, 2)
    assert passes.tf_same_pads(8, 1, 2) == (0, 0)


def test_conv2d_checks_channels_and_groups() -> None:
    with pytest.raises(_ShapeError, match="expects 3 input channels, gets 4"):
        shape("conv2d", conv(), [(4, 8, 8)])
    with pytest.raises(_ShapeError, match="groups=3 must divide"):
        shape("conv2d", conv(in_channels=6, groups=3), [(6, 8, 8)])


def test_a_stride_on_a_one_pixel_side_is_not_a_collapse() -> None:
    """torch and Keras both give a 1-pixel side for a strided, padded window on a 1-pixel side."""
    assert shape("conv2d", conv(stride=2), [(3, 1, 8)])[1:] == (1, 4)
    assert shape("conv2d", conv(kernel_size=7, stride=2), [(3, 64, 1)])[1:] == (32, 1)
    pool = MaxPool(kernel_size=3, stride=2, padding=1, input_nonnegative=True)
    assert shape("max_pool", pool, [(3, 1, 9)])[1:] == (1, 5)


def test_a_window_that_leaves_no_pixel_is_a_collapse() -> None:
    pool = MaxPool(kernel_size=3, stride=2, padding=0, input_nonnegative=True)
    with pytest.raises(_ShapeError, match="would output 0x4: the spatial size has collapsed") as info:
        shape("max_pool", pool, [(3, 1, 9)])
    assert info.value.field == ("stride",)


def test_batch_norm_and_elementwise_keep_shape() -> None:
    assert shape("batch_norm", BatchNorm(4), [(4, 5, 6)]) == (4, 5, 6)
    with pytest.raises(_ShapeError):
        shape("batch_norm", BatchNorm(4), [(5, 5, 6)])
    for kind in ("relu", "dropout", "softmax"):
        assert shape(kind, ReLU(), [(4, 5, 6)]) == (4, 5, 6)


def test_max_pool() -> None:
    pool = MaxPool(kernel_size=3, stride=2, padding=1, input_nonnegative=True)
    assert SHAPE_RULES["max_pool"](pool, [(64, 112, 112)]) == ((64, 56, 56), ((1, 1), (1, 1)))
    assert shape("max_pool", pool, [(64, 33, 47)]) == (64, 17, 24)
    one = MaxPool(kernel_size=1, stride=2, padding=0, input_nonnegative=False)
    assert shape("max_pool", one, [(8, 7, 7)]) == (8, 4, 4)


def test_avg_pool_valid_and_too_large() -> None:
    pool = AvgPool(kernel_size=8, stride=8)
    assert shape("avg_pool", pool, [(256, 8, 8)]) == (256, 1, 1)
    assert shape("avg_pool", pool, [(256, 17, 9)]) == (256, 2, 1)
    with pytest.raises(_ShapeError, match="does not fit"):
        shape("avg_pool", pool, [(256, 4, 4)])


def test_global_pool_flatten_dense() -> None:
    assert shape("global_avg_pool", GlobalAvgPool(), [(2048, 7, 7)]) == (2048,)
    assert shape("flatten", Flatten(), [(256, 2, 3)]) == (1536,)
    assert shape("dense", Dense(10, bias=True), [(1536,)]) == (10,)
    with pytest.raises(_ShapeError, match="needs a vector"):
        shape("dense", Dense(10, bias=True), [(4, 2, 2)])


def test_add_requires_equal_shapes() -> None:
    assert shape("add", Add(), [(8, 4, 4), (8, 4, 4)]) == (8, 4, 4)
    with pytest.raises(_ShapeError, match=r"residual branch gives 8x4x4 but the shortcut gives 8x5x5"):
        shape("add", Add(), [(8, 4, 4), (8, 5, 5)])


def test_zero_pad_shortcut() -> None:
    pad = ZeroPadShortcut(stride=2, pad_before=8, pad_after=8)
    assert shape("zero_pad_shortcut", pad, [(16, 33, 32)]) == (32, 17, 16)


def test_conv_out_formula() -> None:
    assert passes.conv_out(224, 7, 2, 6) == 112
    assert passes.conv_out(56, 3, 2, 2) == 28


def test_analysis_leaves_the_graph_unchanged_and_counts_once() -> None:
    import resgen

    compiled = resgen.compile("resnet18")
    before = list(compiled.graph)
    again = passes.analyse(compiled.graph)
    assert list(compiled.graph) == before
    assert again.totals() == compiled.analysis.totals()
    assert again.totals()["params"] == sum(f.params for f in again.facts.values())
    assert compiled.analysis["head.fc"].params == 512 * 1000 + 1000  # in_features from the pooled shape
