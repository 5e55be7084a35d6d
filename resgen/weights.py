"""Weights across targets: for every learnable layer of the graph, its torch state-dict keys, its Keras
layer and weight slots, and the layout conversions between them.

Layouts (DESIGN.md):
- convolution kernels: torch OIHW ``(out, in/groups, kh, kw)`` <-> Keras HWIO ``(kh, kw, in/groups, out)``;
- dense kernels: torch ``(out, in)`` <-> Keras ``(in, out)``; when the dense layer reads a flattened
  feature map larger than 1x1, torch flattens channels first ``(C, H, W)`` and Keras channels last
  ``(H, W, C)``, so the input axis is permuted too;
- BatchNorm: ``weight, bias, running_mean, running_var`` <-> ``gamma, beta, moving_mean,
  moving_variance``. Both keep the variance used at inference, so it copies as is (torch *updates* it
  with the unbiased batch variance and Keras with the biased one; only training sees the difference).
  torch's ``num_batches_tracked`` has no Keras counterpart: `resgen weights convert` carries it in
  the Keras file's metadata (resgen.weights_io), and it is 0 where a Keras file has none.

Arrays are numpy arrays; this module imports neither torch nor Keras.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from resgen.compiler import Compiled
from resgen.graph import BatchNorm, ChannelConv1d, Conv2d, Dense, GroupNorm
from resgen.naming import keras_name, torch_path

_SLOTS = {
    "conv2d": (("weight", "kernel"), ("bias", "bias")),
    "dense": (("weight", "kernel"), ("bias", "bias")),
    "channel_conv1d": (("weight", "kernel"),),
    "group_norm": (("weight", "gamma"), ("bias", "beta")),
    "batch_norm": (
        ("weight", "gamma"),
        ("bias", "beta"),
        ("running_mean", "moving_mean"),
        ("running_var", "moving_variance"),
    ),
}


@dataclass(frozen=True)
class WeightSlot:
    """One tensor of one layer, named in both targets."""

    node: str  # canonical graph name
    op: str
    torch_key: str  # state-dict key, e.g. layer1.0.conv1.weight
    keras_layer: str  # layer name, e.g. conv2_block1_1_conv
    keras_index: int  # position in layer.get_weights()
    role: str  # kernel, bias, gamma, beta, moving_mean, moving_variance
    torch_shape: tuple[int, ...]
    keras_shape: tuple[int, ...]
    flatten_chw: tuple[int, int, int] | None = None  # dense reading a flattened C x H x W map


def weight_slots(compiled: Compiled) -> list[WeightSlot]:
    """Every learnable or running-statistic tensor of the network, in layer order."""
    graph, analysis = compiled.graph, compiled.analysis
    slots: list[WeightSlot] = []
    for layer in graph:
        if layer.kind not in _SLOTS:
            continue
        shapes = _shapes(layer.op, analysis.shape(graph.inputs(layer.name)[0]))
        flatten = _flattened_map(compiled, layer.name) if layer.kind == "dense" else None
        index = 0
        for torch_suffix, role in _SLOTS[layer.kind]:
            if role == "bias" and not getattr(layer.op, "bias", False):
                continue
            torch_shape, keras_shape = shapes[role]
            slots.append(
                WeightSlot(
                    node=layer.name,
                    op=layer.kind,
                    torch_key=f"{torch_path(graph, layer.name)}.{torch_suffix}",
                    keras_layer=keras_name(graph, layer.name),
                    keras_index=index,
                    role=role,
                    torch_shape=torch_shape,
                    keras_shape=keras_shape,
                    flatten_chw=flatten if role == "kernel" else None,
                )
            )
            index += 1
    return slots


def torch_buffers_without_keras(compiled: Compiled) -> list[str]:
    """State-dict keys with no Keras counterpart (BatchNorm's num_batches_tracked)."""
    graph = compiled.graph
    return [f"{torch_path(graph, bn.name)}.num_batches_tracked" for bn in graph.of_kind("batch_norm")]


def _shapes(op: Any, in_shape: tuple[int, ...]) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    if isinstance(op, Conv2d):
        o, i, k = op.out_channels, op.in_channels // op.groups, op.kernel_size
        return {"kernel": ((o, i, k, k), (k, k, i, o)), "bias": ((o,), (o,))}
    if isinstance(op, Dense):
        i, o = in_shape[0], op.out_features
        return {"kernel": ((o, i), (i, o)), "bias": ((o,), (o,))}
    if isinstance(op, ChannelConv1d):  # torch Conv1d(1, 1, k): (out, in, k); Keras Conv1D: (k, in, out)
        return {"kernel": ((1, 1, op.kernel_size), (op.kernel_size, 1, 1))}
    assert isinstance(op, BatchNorm | GroupNorm)
    c = (op.channels,)
    return {role: (c, c) for role in ("gamma", "beta", "moving_mean", "moving_variance")}


def _flattened_map(compiled: Compiled, dense: str) -> tuple[int, int, int] | None:
    """The C x H x W map a dense layer reads through a flatten, if it is larger than 1x1."""
    graph = compiled.graph
    source = graph.inputs(dense)[0]
    while graph[source].kind == "dropout":
        source = graph.inputs(source)[0]
    if graph[source].kind != "flatten":
        return None
    c, h, w = compiled.analysis.shape(graph.inputs(source)[0])
    return (c, h, w) if h * w > 1 else None


def to_keras(slot: WeightSlot, array: np.ndarray) -> np.ndarray:
    """A torch tensor (as numpy) in the Keras layout of `slot`."""
    array = np.asarray(array)
    _expect(slot, array.shape, slot.torch_shape, "torch")
    if slot.op == "conv2d" and slot.role == "kernel":
        return np.ascontiguousarray(array.transpose(2, 3, 1, 0))
    if slot.op == "channel_conv1d":
        return np.ascontiguousarray(array.transpose(2, 1, 0))
    if slot.op == "dense" and slot.role == "kernel":
        if slot.flatten_chw:
            c, h, w = slot.flatten_chw
            array = array.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(array.shape[0], -1)
        return np.ascontiguousarray(array.T)
    return array.copy()


def to_torch(slot: WeightSlot, array: np.ndarray) -> np.ndarray:
    """A Keras weight in the torch layout of `slot`."""
    array = np.asarray(array)
    _expect(slot, array.shape, slot.keras_shape, "Keras")
    if slot.op == "conv2d" and slot.role == "kernel":
        return np.ascontiguousarray(array.transpose(3, 2, 0, 1))
    if slot.op == "channel_conv1d":
        return np.ascontiguousarray(array.transpose(2, 1, 0))
    if slot.op == "dense" and slot.role == "kernel":
        array = array.T
        if slot.flatten_chw:
            c, h, w = slot.flatten_chw
            array = array.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(array.shape[0], -1)
        return np.ascontiguousarray(array)
    return array.copy()


def _expect(slot: WeightSlot, got: tuple[int, ...], want: tuple[int, ...], side: str) -> None:
    if tuple(got) != tuple(want):
        raise ValueError(f"{slot.node} ({slot.role}): {side} tensor has shape {tuple(got)}, expected {want}")


def torch_to_keras(compiled: Compiled, state: Mapping[str, Any]) -> dict[str, list[np.ndarray]]:
    """A torch state dict (values convertible with np.asarray) as Keras weights per layer name."""
    slots = weight_slots(compiled)
    _check_keys(
        {s.torch_key for s in slots}, set(state) - set(torch_buffers_without_keras(compiled)), "torch"
    )
    out: dict[str, list[np.ndarray]] = {}
    for slot in slots:
        out.setdefault(slot.keras_layer, []).append(to_keras(slot, _numpy(state[slot.torch_key])))
    return out


def keras_to_torch(compiled: Compiled, weights: Mapping[str, list[Any]]) -> dict[str, np.ndarray]:
    """Keras weights per layer name as a torch state dict (numpy values)."""
    slots = weight_slots(compiled)
    _check_keys({s.keras_layer for s in slots}, set(weights), "Keras")
    state: dict[str, np.ndarray] = {}
    for slot in slots:
        layer_weights = weights[slot.keras_layer]
        state[slot.torch_key] = to_torch(slot, _numpy(layer_weights[slot.keras_index]))
    for key in torch_buffers_without_keras(compiled):
        state[key] = np.zeros((), dtype=np.int64)
    return state


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor: no torch import needed to read it
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _check_keys(expected: set[str], got: set[str], side: str) -> None:
    missing, unexpected = sorted(expected - got), sorted(got - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} (first: {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} (first: {', '.join(unexpected[:3])})")
        raise ValueError(f"{side} weights do not fit this spec: {'; '.join(parts)}")
