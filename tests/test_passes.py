"""Shape rules, one per op, and the counts they feed. Shapes are (C, H, W) or (F,)."""

from __future__ import annotations

import pytest

from resgen import lower, passes
from resgen.passes import SHAPE_RULES, _ShapeError


def conv(**overrides):
    attrs = dict(in_channels=3, out_channels=8, kernel_size=3, stride=1, padding_mode="symmetric", groups=1)
    attrs.update(overrides)
    return attrs


def test_every_op_has_a_shape_rule() -> None:
    assert set(SHAPE_RULES) == set(lower.OPS)


def test_input() -> None:
    assert SHAPE_RULES["input"]({"channels": 3, "height": 33, "width": 47}, []) == (3, 33, 47)


@pytest.mark.parametrize(
    ("k", "s", "size", "expected"),
    [(3, 1, 32, 32), (3, 2, 32, 16), (3, 2, 33, 17), (7, 2, 224, 112), (1, 2, 33, 17), (1, 1, 5, 5)],
)
def test_conv2d_symmetric(k: int, s: int, size: int, expected: int) -> None:
    attrs = conv(kernel_size=k, stride=s)
    assert SHAPE_RULES["conv2d"](attrs, [(3, size, size)]) == (8, expected, expected)
    assert attrs["padding"] == ((k // 2, k // 2), (k // 2, k // 2))


def test_conv2d_tf_same_pads_bottom_right() -> None:
    attrs = conv(stride=2, padding_mode="tf_same")
    assert SHAPE_RULES["conv2d"](attrs, [(3, 32, 33)]) == (8, 16, 17)
    assert attrs["padding"] == ((0, 1), (1, 1))  # 32: one extra row at the bottom; 33: one each side


def test_tf_same_pads_match_tensorflow_formula() -> None:
    # TensorFlow: out = ceil(in / s); total = max((out - 1) * s + k - in, 0); before = total // 2
    assert passes.tf_same_pads(224, 7, 2) == (2, 3)
    assert passes.tf_same_pads(5, 5, 1) == (2, 2)
    assert passes.tf_same_pads(8, 1, 2) == (0, 0)


def test_conv2d_checks_channels_and_groups() -> None:
    with pytest.raises(_ShapeError, match="expects 3 input channels, gets 4"):
        SHAPE_RULES["conv2d"](conv(), [(4, 8, 8)])
    with pytest.raises(_ShapeError, match="groups=3 must divide"):
        SHAPE_RULES["conv2d"](conv(in_channels=6, groups=3), [(6, 8, 8)])


def test_conv2d_stride_on_a_collapsed_map_is_an_error() -> None:
    with pytest.raises(_ShapeError, match="collapsed") as info:
        SHAPE_RULES["conv2d"](conv(stride=2), [(3, 1, 8)])
    assert info.value.field == ("stride",)


def test_batch_norm_and_elementwise_keep_shape() -> None:
    assert SHAPE_RULES["batch_norm"]({"channels": 4}, [(4, 5, 6)]) == (4, 5, 6)
    with pytest.raises(_ShapeError):
        SHAPE_RULES["batch_norm"]({"channels": 4}, [(5, 5, 6)])
    for op in ("relu", "dropout", "softmax"):
        assert SHAPE_RULES[op]({}, [(4, 5, 6)]) == (4, 5, 6)


def test_max_pool() -> None:
    attrs = {"kernel_size": 3, "stride": 2, "padding": 1}
    assert SHAPE_RULES["max_pool"](attrs, [(64, 112, 112)]) == (64, 56, 56)
    assert SHAPE_RULES["max_pool"](attrs, [(64, 33, 47)]) == (64, 17, 24)
    one = {"kernel_size": 1, "stride": 2, "padding": 0}
    assert SHAPE_RULES["max_pool"](one, [(8, 7, 7)]) == (8, 4, 4)


def test_avg_pool_valid_and_too_large() -> None:
    attrs = {"kernel_size": 8, "stride": 8}
    assert SHAPE_RULES["avg_pool"](attrs, [(256, 8, 8)]) == (256, 1, 1)
    assert SHAPE_RULES["avg_pool"](attrs, [(256, 17, 9)]) == (256, 2, 1)
    with pytest.raises(_ShapeError, match="does not fit"):
        SHAPE_RULES["avg_pool"](attrs, [(256, 4, 4)])


def test_global_pool_flatten_dense() -> None:
    assert SHAPE_RULES["global_avg_pool"]({}, [(2048, 7, 7)]) == (2048,)
    assert SHAPE_RULES["flatten"]({}, [(256, 2, 3)]) == (1536,)
    attrs = {"out_features": 10}
    assert SHAPE_RULES["dense"](attrs, [(1536,)]) == (10,)
    assert attrs["in_features"] == 1536
    with pytest.raises(_ShapeError, match="needs a vector"):
        SHAPE_RULES["dense"]({"out_features": 10}, [(4, 2, 2)])


def test_add_requires_equal_shapes() -> None:
    assert SHAPE_RULES["add"]({}, [(8, 4, 4), (8, 4, 4)]) == (8, 4, 4)
    with pytest.raises(_ShapeError, match=r"residual branch gives 8x4x4 but the shortcut gives 8x5x5"):
        SHAPE_RULES["add"]({}, [(8, 4, 4), (8, 5, 5)])


def test_zero_pad_shortcut() -> None:
    attrs = {"stride": 2, "pad_before": 8, "pad_after": 8}
    assert SHAPE_RULES["zero_pad_shortcut"](attrs, [(16, 33, 32)]) == (32, 17, 16)


def test_conv_out_formula() -> None:
    assert passes.conv_out(224, 7, 2, 6) == 112
    assert passes.conv_out(56, 3, 2, 2) == 28
