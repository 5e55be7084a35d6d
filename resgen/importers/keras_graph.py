"""A Keras functional model read as a graph of known layer kinds, then as nested sequences.

`read_graph` turns every operation of the model into a `Node` (its layer, a kind from `KINDS`, the
names of the layers it reads, its output shape); a layer no spec has a counterpart for is refused
here, naming the layer. `sequence` then reads the graph as the spec thinks of a ResNet: a straight
run of layers, where a layer that joins two tensors (``Add``, ``Multiply``) becomes a `Join` holding
the branches that leave the point both tensors come from (its immediate dominator) and meet again
at the join. A residual block is an ``Add`` join; squeeze-and-excitation is a ``Multiply`` join
inside its residual branch. Nothing here knows layer names: the structure alone decides.

Keras is imported lazily (only where a model is read).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from resgen.importers.errors import NotExpressible

# Keras layer classes, by class name, and the kind each is read as.
KINDS = {
    "InputLayer": "input",
    "ZeroPadding2D": "pad",
    "Conv2D": "conv",
    "BatchNormalization": "bn",
    "GroupNormalization": "gn",
    "Activation": "activation",
    "ReLU": "relu",
    "MaxPooling2D": "max_pool",
    "AveragePooling2D": "avg_pool",
    "GlobalAveragePooling2D": "gap",
    "Dense": "dense",
    "Add": "add",
    "Multiply": "multiply",
    "Flatten": "flatten",
    "Dropout": "dropout",
    "Reshape": "reshape",
    "Conv1D": "conv1d",
}
# Keras operations called on a functional model's tensors (keras.ops.add(x, y), keras.ops.relu(x)).
OPERATION_KINDS = {"Add": "add", "Multiply": "multiply", "Relu": "relu", "Sigmoid": "sigmoid"}
# The layers resgen's generated Keras files define (their configs say what they do).
GENERATED_KINDS = {
    "ZeroPadShortcut": "zero_pad_shortcut",
    "NegInfPadding2D": "neg_inf_pad",
    "BlurPool2D": "blur_pool",
    "StdConv2D": "conv",
}
JOINS = ("add", "multiply")
ACTIVATIONS = {"relu": "relu", "sigmoid": "sigmoid", "softmax": "softmax", "linear": None}


@dataclass(frozen=True)
class Node:
    """One layer of the model, as the recogniser reads it."""

    name: str
    kind: str
    config: dict[str, Any]
    inputs: tuple[str, ...]
    shape: tuple[int | None, ...]  # output shape without the batch axis
    layer: Any

    @property
    def class_name(self) -> str:
        return type(self.layer).__name__


@dataclass(frozen=True)
class Join:
    """A layer that joins tensors: the branches from `origin` (the last layer every path to it
    passes through) to each of its inputs, in its input order. An empty branch is `origin` itself."""

    node: Node
    origin: str
    branches: tuple[tuple[Item, ...], ...]


Item = Node | Join


@dataclass(frozen=True)
class Graph:
    """The model's layers by name, in an order where every layer follows its inputs."""

    nodes: dict[str, Node]
    order: tuple[str, ...]
    input: str
    output: str

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.nodes.values() if name in n.inputs]


def read_graph(model: Any) -> Graph:
    """The model's layers, each classified; a layer of an unknown kind is refused by name."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise NotExpressible(model.name, "a model with several inputs or outputs is not expressible")
    model_nodes = set(getattr(model, "_nodes", ()))  # Keras 3 keys them "ID_ib-INDEX"
    nodes: dict[str, Node] = {}
    outer: dict[str, str] = {}  # a nested Sequential -> its last layer's node
    for op in model.operations:
        if _is_sequential(op):
            outer[op.name] = _inline(op, _inputs_of(op, model_nodes), nodes)
            continue
        kind = _kind(op)
        inbound = [n for i, n in enumerate(op._inbound_nodes) if f"{id(op)}_ib-{i}" in model_nodes]
        if kind == "input" or not model_nodes:
            inbound = op._inbound_nodes[:1]
        if len(inbound) != 1:
            raise NotExpressible(
                op.name, "a layer applied more than once (shared weights) is not expressible"
            )
        node = inbound[0]
        inputs = tuple(t._keras_history.operation.name for t in node.input_tensors)
        shape = tuple(node.output_tensors[0].shape[1:]) if node.output_tensors else ()
        operation = type(op).__module__.startswith("keras.src.ops.")
        config = {"name": op.name} if operation else dict(op.get_config())
        nodes[op.name] = Node(op.name, kind, config, inputs, shape, op)
    if outer:
        nodes = {
            k: Node(n.name, n.kind, n.config, tuple(outer.get(i, i) for i in n.inputs), n.shape, n.layer)
            for k, n in nodes.items()
        }
    nodes = _split_activations(nodes)
    order = _topological(nodes)
    source = model.inputs[0]._keras_history.operation.name
    output = model.outputs[0]._keras_history.operation.name
    output = outer.get(output, output)
    output = next((n for n in nodes if n.startswith(f"{output}/")), output)
    return Graph(nodes, order, source, output)


def _is_sequential(op: Any) -> bool:
    import keras

    return isinstance(op, keras.Sequential)


def _inputs_of(op: Any, model_nodes: set[Any]) -> tuple[str, ...]:
    inbound = [n for i, n in enumerate(op._inbound_nodes) if f"{id(op)}_ib-{i}" in model_nodes]
    if len(inbound) != 1 and model_nodes:
        raise NotExpressible(op.name, "a layer applied more than once (shared weights) is not expressible")
    node = (inbound or op._inbound_nodes)[0]
    return tuple(t._keras_history.operation.name for t in node.input_tensors)


def _inline(seq: Any, inputs: tuple[str, ...], nodes: dict[str, Node]) -> str:
    """A keras.Sequential used as one layer of the functional model, read as its layers in a
    chain (named SEQUENTIAL/LAYER); the name of its last node."""
    if len(inputs) != 1:
        raise NotExpressible(seq.name, "a Sequential with several inputs is not expressible")
    previous = inputs[0]
    shape = tuple(nodes[previous].shape) if previous in nodes else None
    if shape is None:
        raise NotExpressible(seq.name, "a Sequential reading a tensor of unknown shape is not expressible")
    for layer in seq.layers:
        if _is_sequential(layer):
            raise NotExpressible(
                f"{seq.name}/{layer.name}", "a Sequential inside a Sequential is not expressible"
            )
        name = f"{seq.name}/{layer.name}"
        shape = tuple(layer.compute_output_shape((None, *shape))[1:])
        nodes[name] = Node(name, _kind(layer), dict(layer.get_config()), (previous,), shape, layer)
        previous = name
    if previous == inputs[0]:
        raise NotExpressible(seq.name, "an empty Sequential is not expressible")
    return previous


def _kind(op: Any) -> str:
    name, module = type(op).__name__, type(op).__module__
    if module.startswith("keras.src.ops."):
        kind = OPERATION_KINDS.get(name)
    elif module.startswith("keras."):
        kind = KINDS.get(name)
    else:
        kind = GENERATED_KINDS.get(name)
    if kind is None:
        raise NotExpressible(op.name, f"{name} is not expressible in a spec")
    if kind == "activation":
        activation = op.get_config()["activation"]
        mapped = ACTIVATIONS.get(activation) if isinstance(activation, str) else None
        if mapped is None:
            raise NotExpressible(op.name, f"activation {activation!r} is not expressible in a spec")
        return mapped
    if kind == "relu":
        config = op.get_config()
        if config.get("max_value") is not None or config.get("negative_slope") or config.get("threshold"):
            raise NotExpressible(
                op.name, "a ReLU with max_value, negative_slope or threshold is not expressible"
            )
    return kind


def _unfused(node: Node) -> list[Node]:
    """An activation a convolution or dense layer applies itself, read as a layer of its own (named
    LAYER/ACTIVATION); none where it applies none."""
    if node.kind not in ("conv", "dense", "conv1d"):
        return []
    activation = node.config.get("activation", "linear")
    if activation == "linear":
        return []
    mapped = ACTIVATIONS.get(activation) if isinstance(activation, str) else None
    if mapped is None:
        raise NotExpressible(node.name, f"activation {activation!r} is not expressible in a spec")
    return [Node(f"{node.name}/{mapped}", mapped, {}, (node.name,), node.shape, None)]


def _split_activations(nodes: dict[str, Node]) -> dict[str, Node]:
    """Every activation a convolution or dense layer applies itself becomes a layer of its own,
    read by what read the layer."""
    out: dict[str, Node] = {}
    renamed: dict[str, str] = {}
    for node in nodes.values():
        out[node.name] = node
        for extra in _unfused(node):
            out[extra.name] = extra
            renamed[node.name] = extra.name
    for node in list(out.values()):
        if node.layer is None:
            continue
        inputs = tuple(renamed.get(i, i) for i in node.inputs)
        out[node.name] = Node(node.name, node.kind, node.config, inputs, node.shape, node.layer)
    return out


def _topological(nodes: dict[str, Node]) -> tuple[str, ...]:
    order: list[str] = []
    seen: set[str] = set()
    pending = dict.fromkeys(nodes)
    while pending:
        ready = [n for n in pending if all(i in seen for i in nodes[n].inputs)]
        if not ready:
            raise NotExpressible("", "the model's graph has a cycle")
        for name in ready:
            order.append(name)
            seen.add(name)
            del pending[name]
    return tuple(order)


def dominators(graph: Graph) -> dict[str, str]:
    """Each layer's immediate dominator: the last layer that every path from the input to it passes."""
    index = {name: i for i, name in enumerate(graph.order)}
    idom: dict[str, str] = {graph.input: graph.input}
    for name in graph.order:
        node = graph.nodes[name]
        if name == graph.input:
            continue
        if not node.inputs:
            raise NotExpressible(name, "a second input (or a constant layer) is not expressible")
        best = node.inputs[0]
        for other in node.inputs[1:]:
            a, b = best, other
            while a != b:
                while index[a] > index[b]:
                    a = idom[a]
                while index[b] > index[a]:
                    b = idom[b]
            best = a
        idom[name] = best
    return idom


def sequence(graph: Graph, idom: dict[str, str], start: str, end: str) -> tuple[Item, ...]:
    """The layers from `start` (excluded) to `end` (included), joins folded into `Join` items."""
    items: list[Item] = []
    name = end
    while name != start:
        node = graph.nodes[name]
        if len(node.inputs) == 1:
            items.append(node)
            name = node.inputs[0]
            continue
        if node.kind not in JOINS or len(node.inputs) != 2:
            raise NotExpressible(name, f"{node.class_name} of {len(node.inputs)} inputs is not expressible")
        origin = idom[name]
        branches = tuple(sequence(graph, idom, origin, i) for i in node.inputs)
        items.append(Join(node, origin, branches))
        name = origin
    return tuple(reversed(items))


def unused(graph: Graph) -> list[str]:
    """Layers the output does not depend on."""
    needed = {graph.output}
    for name in reversed(graph.order):
        if name in needed:
            needed.update(graph.nodes[name].inputs)
    return [n for n in graph.order if n not in needed]
