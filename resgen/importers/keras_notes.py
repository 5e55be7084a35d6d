"""The comments an imported Keras model's spec carries: a header that says what the network is and
where it came from, and notes on the fields a reader would ask about."""

from __future__ import annotations

from typing import Any


def notes(data: dict[str, Any], source: str, model_name: str) -> tuple[str, ...]:
    """The header lines: origin, then the design in the words the shipped presets use."""
    block, stages, shortcut = data["block"], data["stages"], data["shortcut"]
    kind = "pre-activation " if block.get("preactivation") else ""
    kind += "bottleneck" if block["kind"] == "bottleneck" else "basic-block"
    counts = ", ".join(str(s["blocks"]) for s in stages)
    lines = [
        f"Read from the functional graph of Keras model {model_name!r}.",
        f"A {kind} ResNet, {sum(s['blocks'] for s in stages)} blocks in {len(stages)} stages ({counts}).",
    ]
    where = []
    if block["kind"] == "bottleneck":
        where.append(
            "the stride on the first 1x1" if block.get("stride_on") == "conv1" else "the stride on the 3x3"
        )
    if block.get("stride_block") == "last":
        where.append("in the last block of a stage")
    if shortcut["kind"] == "zero_pad":
        where.append('option A shortcuts (subsample, zero channels: the "ZeroPadShortcut" layers)')
    elif shortcut.get("stride_only") == "max_pool":
        where.append("a 1x1 max-pool shortcut where only the resolution changes")
    bias = {
        "all": "bias on every convolution",
        "unnormalized": "bias on convolutions BatchNorm does not follow",
    }
    if data["conv_bias"] in bias:
        where.append(bias[data["conv_bias"]])
    if where:
        lines.append("It has " + ", ".join(where) + ".")
    return tuple(lines)


def field_notes(data: dict[str, Any], pool_after_relu: bool) -> dict[str, str]:
    """Comments for the lines a reader would ask about."""
    out: dict[str, str] = {}
    pool = data["stem"].get("pool")
    if (
        pool
        and pool.get("kind", "max") == "max"
        and pool.get("pad_with", "zeros") == "zeros"
        and pool["padding"]
    ):
        out["stem.pool"] = (
            "zero padding, as the model's ZeroPadding2D; after a ReLU, -inf (torch's) computes the same"
            if pool_after_relu
            else "zero padding, as the model's ZeroPadding2D"
        )
    if "momentum" in data["norm"]:
        out["norm"] = f"Keras' BatchNormalization(momentum={data['norm']['momentum']}); torch's is 1 - that"
    init = data.get("init", {})
    if init.get("conv") == "glorot_uniform" and init.get("bias") == "zeros":
        out["init"] = "Keras' defaults, as the model's layers use them"
    elif init:
        out["init"] = "the model's initializers"
    if data.get("padding") == "tf_same":
        out["padding"] = 'the model\'s strided convolutions use Keras padding="same"'
    if data.get("keras_layer_order") == "rosebrock":
        out["keras_layer_order"] = "the model's additions take the residual branch first"
    return out
