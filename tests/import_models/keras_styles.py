"""Small Keras functional ResNets written by hand in the ways people write them (keras.applications'
style and its variations), for `resgen import` tests. Written for these tests; not taken from any
project.

`IMPORTS` names the builders the spec language can express (they must import exactly); `REFUSED`
maps the others to the layer name and the construct their one-line refusal must name.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

INPUT_SIZE = (32, 32)


def _relu(x: Any, style: str, name: str) -> Any:
    if style == "layer":
        return layers.ReLU(name=name)(x)
    if style == "ops":
        return keras.ops.relu(x)
    return layers.Activation("relu", name=name)(x)


def _conv(x: Any, filters: int, kernel: int, stride: int, name: str, padding: str) -> Any:
    """A convolution padded 'same', or (padding='explicit') ZeroPadding2D then a 'valid' convolution."""
    if padding == "explicit" and kernel > 1:
        x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        return layers.Conv2D(filters, kernel, stride, padding="valid", use_bias=False, name=name)(x)
    return layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=name)(x)


def _block(x: Any, filters: int, stride: int, name: str, o: dict[str, Any]) -> Any:
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, stride, use_bias=False, name=f"{name}_0_conv")(x)
        shortcut = layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_0_bn")(shortcut)
    if o["conv_activation"]:
        y = layers.Conv2D(
            filters, 3, stride, padding="same", use_bias=False, activation="relu", name=f"{name}_1_conv"
        )(x)
        y = layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_1_bn")(y)
    else:
        y = _conv(x, filters, 3, stride, f"{name}_1_conv", o["padding"])
        y = layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_1_bn")(y)
        y = _relu(y, o["relu"], f"{name}_1_relu")
    y = _conv(y, filters, 3, 1, f"{name}_2_conv", "same")
    y = layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_2_bn")(y)
    if o["add"] == "function":
        y = layers.add([shortcut, y], name=f"{name}_add")
    else:
        y = layers.Add(name=f"{name}_add")([shortcut, y])
    return _relu(y, o["relu"], f"{name}_out")


def _sequential_block(x: Any, filters: int, stride: int, name: str, o: dict[str, Any]) -> Any:
    """The residual branch as a keras.Sequential used as one layer of the functional model."""
    branch = keras.Sequential(
        [
            layers.Conv2D(filters, 3, stride, padding="same", use_bias=False),
            layers.BatchNormalization(epsilon=1.001e-5),
            layers.ReLU(),
            layers.Conv2D(filters, 3, 1, padding="same", use_bias=False),
            layers.BatchNormalization(epsilon=1.001e-5),
        ],
        name=f"{name}_branch",
    )
    y, shortcut = branch(x), x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, stride, use_bias=False, name=f"{name}_0_conv")(x)
        shortcut = layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_0_bn")(shortcut)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))


def build(
    *,
    add: str = "layer",
    relu: str = "activation",
    padding: str = "same",
    head: str = "global",
    channels: int = 3,
    classes: int = 10,
    conv_activation: bool = False,
    sequential: bool = False,
    widths: tuple[int, ...] = (8, 16),
    blocks: int = 2,
) -> keras.Model:
    o = {"add": add, "relu": relu, "padding": padding, "conv_activation": conv_activation}
    inputs = keras.Input((*INPUT_SIZE, channels), name="input")
    if padding == "explicit":
        x = layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
        x = layers.Conv2D(widths[0], 7, 2, use_bias=False, name="conv1_conv")(x)
    else:
        x = layers.Conv2D(widths[0], 3, 1, padding="same", use_bias=False, name="conv1_conv")(inputs)
    x = layers.BatchNormalization(epsilon=1.001e-5, name="conv1_bn")(x)
    x = _relu(x, relu, "conv1_relu")
    if padding == "explicit":
        x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
        x = layers.MaxPooling2D(3, 2, name="pool1_pool")(x)
    for s, w in enumerate(widths):
        for b in range(blocks):
            stride = 2 if s and not b else 1
            name = f"conv{s + 2}_block{b + 1}"
            x = (_sequential_block if sequential else _block)(x, w, stride, name, o)
    if head == "flatten":
        x = layers.AveragePooling2D(x.shape[1], name="avg_pool")(x)
        x = layers.Flatten(name="flatten")(x)
    elif head == "keepdims":
        x = layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool")(x)
        x = layers.Dropout(0.25, name="dropout")(x)
        x = layers.Flatten(name="flatten")(x)
    else:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, layers.Dense(classes, name="predictions")(x))


def applications_style() -> keras.Model:
    return build(padding="explicit")


def add_function() -> keras.Model:
    return build(add="function")


def relu_layer() -> keras.Model:
    return build(relu="layer")


def relu_ops() -> keras.Model:
    return build(relu="ops", add="function")


def flatten_head() -> keras.Model:
    return build(head="flatten")


def keepdims_dropout_flatten_head() -> keras.Model:
    return build(head="keepdims")


def grayscale_5_classes() -> keras.Model:
    return build(channels=1, classes=5)


def sequential_branch() -> keras.Model:
    return build(sequential=True)


def with_defaults(classes: int = 4, blocks: int = 1) -> keras.Model:
    return build(classes=classes, blocks=blocks)


def conv_activation() -> keras.Model:
    return build(conv_activation=True)


IMPORTS = (
    "applications_style",
    "add_function",
    "relu_layer",
    "relu_ops",
    "flatten_head",
    "keepdims_dropout_flatten_head",
    "grayscale_5_classes",
    "with_defaults",
)
# The same network as build(relu="layer"), its residual branches held in keras.Sequential models.
SAME_AS_WRITTEN_OUT = ("sequential_branch",)
REFUSED = {"conv_activation": ("conv2_block1_1_conv", "relu")}
