"""Hypothesis strategies: random valid specs, as the plain data a user would write."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st


@st.composite
def spec_data(draw: st.DrawFn, *, max_blocks: int = 2, max_stages: int = 3) -> dict[str, Any]:
    """A spec that is valid and compiles: no collapsing strides, channels never shrink for option A."""
    preact = draw(st.booleans())
    kind = draw(st.sampled_from(["basic", "bottleneck"]))
    block: dict[str, Any] = {"kind": kind, "preactivation": preact}
    block["stride_block"] = draw(st.sampled_from(["first", "last"]))
    expansion = 1
    if kind == "bottleneck":
        expansion = draw(st.integers(1, 4))
        groups = draw(st.sampled_from([1, 2, 4]))
        block.update(
            expansion=expansion,
            groups=groups,
            width_per_group=draw(st.sampled_from([16, 32, 64, 128])),
            stride_on=draw(st.sampled_from(["conv1", "conv2"])),
        )
    shortcut_kind = draw(st.sampled_from(["projection", "zero_pad"]))
    stem_filters = draw(st.integers(2, 12))
    n_stages = draw(st.integers(1, max_stages))
    filters = sorted(draw(st.lists(st.integers(4, 16), min_size=n_stages, max_size=n_stages)))
    if shortcut_kind == "zero_pad":
        filters = [max(f, stem_filters) for f in filters]
    stages = [
        {"blocks": draw(st.integers(1, max_blocks)), "filters": f, "stride": draw(st.integers(1, 2))}
        for f in filters
    ]
    if shortcut_kind == "projection":
        shortcut = {
            "kind": "projection",
            "norm": draw(st.booleans()),
            "source": draw(st.sampled_from(["input", "preactivated"] if preact else ["input"])),
            "when": draw(st.sampled_from(["needed", "first_block"])),
            "stride_only": draw(st.sampled_from(["project", "max_pool"])),
        }
    else:
        shortcut = {"kind": "zero_pad"}
    pool = draw(
        st.none()
        | st.builds(
            lambda k, s: {"kernel_size": k, "stride": s, "padding": k // 2},
            st.sampled_from([1, 3]),
            st.integers(1, 2),
        )
    )
    head_kind = draw(st.sampled_from(["global_pool", "pool_flatten"]))
    head: dict[str, Any] = {
        "kind": head_kind,
        "norm": draw(st.booleans()),
        "dropout": draw(st.sampled_from([0.0, 0.25])),
        "classes": draw(st.integers(1, 10)),
        "output": draw(st.sampled_from(["logits", "softmax"])),
    }
    if head_kind == "pool_flatten":
        head["pool_size"] = 1
    return {
        "format_version": 1,
        "name": draw(st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(_usable_name)),
        "description": draw(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)),
        "input": {
            "height": draw(st.integers(17, 40)),
            "width": draw(st.integers(17, 40)),
            "channels": draw(st.integers(1, 4)),
        },
        "stem": {
            "kind": "conv",
            "filters": stem_filters,
            "kernel_size": draw(st.sampled_from([1, 3, 5, 7])),
            "stride": draw(st.integers(1, 2)),
            "norm": draw(st.booleans()),
            "pool": pool,
            "input_norm": draw(st.booleans()),
        },
        "block": block,
        "stages": stages,
        "shortcut": shortcut,
        "norm": {
            "epsilon": draw(st.sampled_from([1e-5, 1.001e-5, 2e-5, 1e-3])),
            "momentum": draw(st.sampled_from([0.9, 0.99, 0.5])),
        },
        "conv_bias": draw(st.sampled_from(["none", "all", "unnormalized"])),
        "padding": draw(st.sampled_from(["symmetric", "tf_same"])),
        "regularization": {"l2": draw(st.sampled_from([0.0, 1e-4]))},
        "head": head,
    }


def _usable_name(name: str) -> bool:
    from resgen.spec import name_problem

    return name_problem(name) is None


def leaf_paths(data: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every path to a scalar value in nested dicts and lists."""
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in leaf_paths(v, (*prefix, k))]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in leaf_paths(v, (*prefix, i))]
    return [prefix]
