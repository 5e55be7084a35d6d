"""Weight and layer names of both targets, derived from the graph's canonical node names.

The torch target follows torchvision's module paths (``conv1``, ``bn1``, ``layer2.0.conv2``,
``layer2.0.downsample.0``, ``fc``) so torchvision state dicts load with ``strict=True``. The Keras
target follows keras.applications' layer names (``conv1_conv``, ``conv3_block1_0_conv``,
``conv3_block1_2_bn``, ``post_bn``, ``predictions``) so its weights load by name. Where neither
reference has the layer (the seed's input BatchNorm, pre-activation blocks in torch), the names
follow the same scheme.

Block roles map one to one: ``convN``/``bnN`` <-> ``_N_conv``/``_N_bn``, the projection shortcut
``downsample.0``/``downsample.1`` <-> ``_0_conv``/``_0_bn``, the pre-activation ``preact_bn`` <->
``_preact_bn``.
"""

from __future__ import annotations

from typing import Any

_TORCH_STEM = {
    "input_bn": "input_bn",
    "conv": "conv1",
    "bn": "bn1",
    "relu": "relu",
    "pool": "maxpool",
}
_KERAS_STEM = {
    "input_bn": "input_bn",
    "conv": "conv1_conv",
    "bn": "conv1_bn",
    "relu": "conv1_relu",
    "pool": "pool1_pool",
}
_TORCH_HEAD = {
    "bn": "post_bn",
    "relu": "relu",
    "pool": "avgpool",
    "flatten": "flatten",
    "dropout": "dropout",
    "fc": "fc",
    "softmax": "softmax",
}
_KERAS_HEAD = {
    "bn": "post_bn",
    "relu": "post_relu",
    "pool": "avg_pool",
    "flatten": "flatten",
    "dropout": "dropout",
    "fc": "predictions",
    "softmax": "predictions_softmax",
}
_TORCH_BLOCK = {
    "shortcut_conv": "downsample.0",
    "shortcut_bn": "downsample.1",
    "shortcut_pool": "downsample",
    "shortcut_pad": "downsample",
    "preact_relu": "relu",
    "relu1": "relu",
    "relu2": "relu",
    "out_relu": "relu",
    "add": "add",
}
_KERAS_BLOCK = {
    "preact_bn": "preact_bn",
    "preact_relu": "preact_relu",
    "shortcut_conv": "0_conv",
    "shortcut_bn": "0_bn",
    "shortcut_pool": "0_pool",
    "shortcut_pad": "0_pad",
    "out_relu": "out",
}


def torch_path(node: dict[str, Any]) -> str:
    """Module path of a layer in the torch target (torchvision's scheme)."""
    role = node["role"]
    if node["scope"] == "input":
        return "input"
    if node["scope"] == "stem":
        return _TORCH_STEM[role]
    if node["scope"] == "head":
        return _TORCH_HEAD[role]
    return f"layer{node['stage']}.{node['block'] - 1}.{_TORCH_BLOCK.get(role, role)}"


def keras_name(node: dict[str, Any], *, preactivation: bool = False) -> str:
    """Layer name in the Keras target (keras.applications' scheme)."""
    role = node["role"]
    if node["scope"] == "input":
        return "input"
    if node["scope"] == "stem":
        return _KERAS_STEM[role]
    if node["scope"] == "head":
        return _KERAS_HEAD[role]
    prefix = f"conv{node['stage'] + 1}_block{node['block']}"
    if role == "add":
        # keras.applications V2 ends a pre-activation block at the addition and calls it "_out"
        return f"{prefix}_{'out' if preactivation else 'add'}"
    if role in _KERAS_BLOCK:
        return f"{prefix}_{_KERAS_BLOCK[role]}"
    kind, index = role.rstrip("0123456789"), role[len(role.rstrip("0123456789")) :]
    return f"{prefix}_{index}_{kind}"  # conv2 -> _2_conv, bn1 -> _1_bn, relu3 -> _3_relu


def keras_pad_name(layer_name: str) -> str:
    """Name of the ZeroPadding2D in front of a layer: conv1_conv -> conv1_pad (keras.applications)."""
    stem, _, _ = layer_name.rpartition("_")
    return f"{stem}_pad"
