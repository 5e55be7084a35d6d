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
    if head["classes"] == 1:
        head["output"] = "logits"  # a softmax over one class is refused
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


# --- the whole format ---------------------------------------------------------------------------------


def _pick(draw: st.DrawFn, values: list[Any]) -> Any:
    return draw(st.sampled_from(values))


def _anti_alias(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        return {"kind": "avg_pool"}
    return {"kind": "blur", "filter_size": draw(st.integers(2, 4))}


def _stem_pool(draw: st.DrawFn) -> dict[str, Any]:
    kernel = draw(st.integers(1, 3))
    pool: dict[str, Any] = {"kind": _pick(draw, ["max", "avg"]), "kernel_size": kernel}
    pool["stride"] = draw(st.integers(1, 2))
    if pool["kind"] == "avg":
        pool["padding"] = 0
        return pool
    pool["padding"] = draw(st.integers(0, kernel // 2))
    pool["pad_with"] = _pick(draw, ["zeros", "-inf"])
    pool["anti_alias"] = _anti_alias(draw) if draw(st.booleans()) else None
    return pool


def _attention(draw: st.DrawFn) -> dict[str, Any] | None:
    kind = _pick(draw, [None, "se", "eca"])
    if kind == "se":
        return {"kind": "se", "ratio": _pick(draw, [0.0625, 0.25, 0.5]), "divisor": _pick(draw, [1, 2, 8])}
    if kind == "eca":
        return {"kind": "eca", "gamma": _pick(draw, [1, 2]), "beta": _pick(draw, [0, 1])}
    return None


def _backbone(draw: st.DrawFn, stages: int, dilated: bool, batch_norm: bool) -> dict[str, Any]:
    """Taps ending at the last stage; output_stride below 32 only where the network can dilate;
    frozen stages; norm_eval only with BatchNorm (GroupNorm has no running statistics)."""
    taps: list[Any] = [s for s in range(1, stages) if draw(st.booleans())] + [stages]
    if draw(st.booleans()):
        taps.insert(0, "stem")
    backbone: dict[str, Any] = {"features": taps}
    if dilated:
        backbone["output_stride"] = _pick(draw, [16, 8])
        backbone["dilation"] = _pick(draw, ["torchvision", "whole_stage"])
    backbone["frozen_stages"] = draw(st.integers(0, stages))
    if batch_norm:
        backbone["norm_eval"] = draw(st.booleans())
    return backbone


@st.composite
def schema_spec_data(draw: st.DrawFn, *, max_stages: int = 3) -> dict[str, Any]:
    """A spec over the whole format: every kind and enumeration, at tiny sizes (few channels, 1-2
    blocks a stage, inputs of 16-40 pixels). Most draws are valid; combinations that validation
    refuses (a map that collapses, GroupNorm groups that do not divide a width) are for the caller to
    skip: the property is that what validates, builds and runs."""
    timm_v2 = draw(st.integers(0, 5)) == 0  # torch_paths: timm_resnetv2 fixes a dozen fields
    head_kind = "global_pool" if timm_v2 else _pick(draw, ["global_pool", "pool_flatten", "none"])
    # a backbone that dilates (output_stride 16 or 8) needs what torchvision can dilate
    dilated = head_kind == "none" and draw(st.booleans())
    preact = True if timm_v2 else draw(st.booleans())
    kind = _pick(draw, ["basic", "bottleneck"])
    block: dict[str, Any] = {"kind": kind, "preactivation": preact}
    block["stride_block"] = "first" if timm_v2 or dilated else _pick(draw, ["first", "last"])
    expansion = 1
    if kind == "bottleneck":
        expansion = draw(st.integers(1, 4))
        block.update(
            expansion=expansion,
            groups=_pick(draw, [1, 2]),
            width_per_group=_pick(draw, [32, 64, 128]),
            reduce_first=_pick(draw, [1, 2]),
            stride_on=_pick(draw, ["conv1", "conv2"]),
        )
    block["attention"] = None if timm_v2 else _attention(draw)
    if not (preact or dilated) and block.get("stride_on", "conv2") == "conv2" and draw(st.booleans()):
        block["anti_alias"] = _anti_alias(draw)

    pool = _stem_pool(draw) if draw(st.booleans()) else None
    conv_pool = pool is None and not timm_v2 and draw(st.booleans())
    stem: dict[str, Any]
    if draw(st.booleans()):
        stem = {
            "kind": "conv",
            "filters": _pick(draw, [2, 4, 6]),
            "kernel_size": _pick(draw, [1, 3, 5]),
            "input_norm": not timm_v2 and draw(st.booleans()),
        }
        stem_width = stem["filters"]
    else:
        stem = {"kind": "deep", "widths": draw(st.lists(st.sampled_from([2, 4]), min_size=2, max_size=3))}
        stem_width = stem["widths"][-1]
    stem.update(stride=draw(st.integers(1, 2)), norm=not timm_v2 and draw(st.booleans()), pool=pool)
    stem["conv_pool"] = conv_pool

    n_stages = draw(st.integers(1, max_stages))
    filters = sorted(draw(st.lists(st.sampled_from([2, 4, 6, 8]), min_size=n_stages, max_size=n_stages)))
    stages = [
        {"blocks": draw(st.integers(1, 2)), "filters": f, "stride": draw(st.integers(1, 2))} for f in filters
    ]
    shortcut: dict[str, Any]
    if timm_v2 or draw(st.booleans()):
        downsample = _pick(draw, ["conv", "avg_pool"])
        shortcut = {
            "kind": "projection",
            "norm": not timm_v2 and draw(st.booleans()),
            "source": "preactivated"
            if timm_v2
            else _pick(draw, ["input", "preactivated"] if preact else ["input"]),
            "when": "needed" if timm_v2 else _pick(draw, ["needed", "first_block"]),
            "stride_only": "project"
            if timm_v2 or downsample == "avg_pool"
            else _pick(draw, ["project", "max_pool"]),
            "kernel_size": 1 if downsample == "avg_pool" or dilated else _pick(draw, [1, 3]),
            "downsample": downsample,
        }
    else:
        shortcut = {"kind": "zero_pad"}
        for stage in stages:  # option A pads channels: they never shrink
            stage["filters"] = max(stage["filters"], stem_width)
    if n_stages > 1 and draw(st.integers(0, 3)) == 0:  # stages[i].block: later stages of the other kind
        other = "basic" if kind == "bottleneck" else "bottleneck"
        for stage in stages[1:]:
            if draw(st.booleans()):
                stage["block"] = other
        if kind == "bottleneck":  # a network that mixes kinds keeps the bottleneck-only defaults
            for key in ("expansion", "groups", "width_per_group", "reduce_first", "stride_on"):
                block.pop(key)

    conv: dict[str, Any] = (
        {"kind": "weight_standardized", "epsilon": _pick(draw, [1e-6, 1e-8])}
        if draw(st.booleans())
        else {"kind": "plain"}
    )
    symmetric_only = dilated or conv["kind"] == "weight_standardized" or shortcut.get("kernel_size") == 3
    padding = "symmetric" if symmetric_only else _pick(draw, ["symmetric", "tf_same"])
    norm: dict[str, Any] = {
        "kind": _pick(draw, ["batch", "group"]),
        "epsilon": _pick(draw, [1e-5, 1.001e-5, 1e-3]),
        "momentum": _pick(draw, [0.9, 0.99]),
    }
    if norm["kind"] == "group":
        norm["groups"] = _pick(draw, [1, 2])

    head: dict[str, Any] = {"kind": head_kind}
    if head_kind != "none":
        head.update(
            norm=timm_v2 or draw(st.booleans()),
            dropout=_pick(draw, [0.0, 0.25]),
            classes=draw(st.integers(1, 5)),
            output="logits" if timm_v2 else _pick(draw, ["logits", "softmax"]),
        )
        if head["classes"] == 1:
            head["output"] = "logits"  # a softmax over one class is refused
    if head_kind == "global_pool":
        head["classifier"] = "conv1x1" if timm_v2 else _pick(draw, ["dense", "conv1x1"])
        if head["classifier"] == "conv1x1":
            head["output"] = "logits"
    if head_kind == "pool_flatten":
        head["pool_size"] = 1
    backbone = _backbone(draw, n_stages, dilated, norm.get("kind", "batch") == "batch")

    blocks = sum(s["blocks"] for s in stages)
    roles = {role: _pick(draw, [None, 0.0, 1e-4]) for role in ("stem", "blocks", "shortcuts", "head")}
    regularization: dict[str, Any] = {"l2": _pick(draw, [0.0, 1e-4])}
    regularization.update({role: value for role, value in roles.items() if value is not None})
    regularization["drop_path"] = _pick(draw, [0.0, 0.1]) if blocks >= 2 else 0.0
    data = {
        "format_version": 1,
        "name": draw(st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(_usable_name)),
        "input": {
            "height": draw(st.integers(16, 40)),
            "width": draw(st.integers(16, 40)),
            "channels": 2 if norm.get("groups") == 2 else draw(st.integers(1, 3)),  # input_norm
        },
        "stem": stem,
        "block": block,
        "stages": stages,
        "shortcut": shortcut,
        "norm": norm,
        "conv": conv,
        "conv_bias": _pick(draw, ["none", "all", "unnormalized"]),
        "padding": padding,
        "regularization": regularization,
        "init": {
            "conv": _pick(draw, ["he_normal_fan_out", "uniform_fan_in", "glorot_uniform"]),
            "dense": _pick(draw, ["he_normal_fan_out", "uniform_fan_in", "glorot_uniform", "normal_0.01"]),
            "eca": _pick(draw, ["he_normal_fan_out", "uniform_fan_in", "glorot_uniform"]),
            "bias": _pick(draw, ["uniform_fan_in", "zeros"]),
            "zero_init_last": draw(st.booleans()),
        },
        "head": head,
        "torch_paths": "timm_resnetv2" if timm_v2 else "torchvision",
        "keras_layer_order": _pick(draw, ["keras_applications", "rosebrock"]),
    }
    if head_kind == "none":
        data["backbone"] = backbone
    return data
