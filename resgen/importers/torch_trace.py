"""Read a torch model as a list of operations: torch.fx traces `forward`, so functional code
(``F.relu``, ``F.pad`` in a lambda shortcut, ``torch.flatten``, additions) is seen, and the layers
(convolutions, normalizations, pools, linear layers) stay whole so that their settings can be read.

The traced graph is run once on an input of the requested size (zeros; on the meta device when the
model lives there) to learn every tensor's shape and every integer that shapes compute (a kernel size
taken from ``x.size(3)``). The result is a list of `TraceOp`, in execution order, each naming the
module path it comes from; operations that only compute sizes are left out, and so are those that
pass their input through unchanged (``nn.Identity``, dropout and drop-path at rate 0).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from resgen.importers.errors import NotExpressible
from resgen.importers.torch_layers import layer_op

if TYPE_CHECKING:
    import torch


@dataclass
class TraceOp:
    """One operation on tensors: its kind, its settings, the ops whose outputs it reads (by index)."""

    index: int
    kind: str
    path: str
    attrs: dict[str, Any] = field(default_factory=dict)
    inputs: list[int] = field(default_factory=list)
    shape: tuple[int, ...] = ()
    module: Any = None  # the layer (call_module ops): its parameters tell the initialization


def _is_leaf(module: torch.nn.Module) -> bool:
    """Layers whose settings are read rather than traced: torch.nn's own modules, and any module
    holding parameters or buffers of its own (timm's StdConv2d, BlurPool2d, a custom norm)."""
    from torch import nn

    if isinstance(module, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
        return False
    if type(module).__module__.startswith("torch.nn"):
        return True
    if hasattr(module, "drop_prob"):  # drop-path (timm's DropPath): a rate, no parameters
        return True
    own = list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False))
    return bool(own)


def trace(model: torch.nn.Module, input_size: tuple[int, int], channels: int) -> list[TraceOp]:
    """The model's operations on a (1, channels, *input_size) input, in execution order."""
    import torch
    from torch import fx

    class LayerTracer(fx.Tracer):
        def is_leaf_module(self, m: torch.nn.Module, module_qualified_name: str) -> bool:
            return _is_leaf(m)

    was_training = model.training
    model.eval()
    try:
        try:
            graph = LayerTracer().trace(model)
        except Exception as error:
            where = getattr(error, "where", "")
            raise NotExpressible(where, f"forward cannot be traced by torch.fx ({error})") from None
        module = fx.GraphModule(model, graph)
        try:
            param = next(model.parameters())
            device = param.device
        except StopIteration:
            device = torch.device("cpu")
        x = torch.zeros(1, channels, *input_size, device=device)
        values = _run(module, x)
    finally:
        model.train(was_training)
    return _ops(module, graph, values)


def _run(module: Any, x: Any) -> dict[Any, Any]:
    from torch import fx

    values: dict[Any, Any] = {}

    class Recorder(fx.Interpreter):
        def run_node(self, n: fx.Node) -> Any:
            result = super().run_node(n)
            values[n] = result
            return result

    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    try:  # shapes without arithmetic: fake tensors carry sizes only
        with torch.no_grad(), FakeTensorMode(allow_non_fake_inputs=True):
            Recorder(module).run(torch.zeros(x.shape, device=x.device))
        return values
    except Exception:
        values.clear()
    with torch.no_grad():
        Recorder(module).run(x)
    return values


def _owner(node: Any) -> tuple[str, str]:
    """The module path and class name a functional op sits in (torch.fx records the module stack)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "", ""
    path, cls = list(stack.values())[-1]
    name = cls.__name__ if isinstance(cls, type) else str(cls).rsplit(".", 1)[-1].strip("'>")
    return path, name


class _Builder:
    def __init__(self, module: Any, values: dict[Any, Any]) -> None:
        import torch

        self.torch = torch
        self.module = module
        self.values = values
        self.ops: list[TraceOp] = []
        self.of: dict[Any, int] = {}  # fx node -> index of the op whose output it is

    def is_tensor(self, node: Any) -> bool:
        return isinstance(self.values.get(node), self.torch.Tensor)

    def value(self, arg: Any) -> Any:
        """A non-tensor argument's value (ints computed from shapes included)."""
        from torch import fx

        if isinstance(arg, fx.Node):
            return self.values[arg]
        if isinstance(arg, (list, tuple)):
            return type(arg)(self.value(a) for a in arg)
        return arg

    def tensor_inputs(self, node: Any) -> list[int]:
        from torch import fx

        found: list[int] = []

        def visit(arg: Any) -> None:
            if isinstance(arg, fx.Node) and self.is_tensor(arg):
                if arg not in self.of:
                    raise NotExpressible(
                        _owner(node)[0],
                        f"a tensor computed by {arg.target} is not expressible",
                    )
                found.append(self.of[arg])
            elif isinstance(arg, (list, tuple)):
                for a in arg:
                    visit(a)
            elif isinstance(arg, dict):
                for a in arg.values():
                    visit(a)

        visit(node.args)
        visit(node.kwargs)
        return found

    def add(
        self, node: Any, kind: str, path: str, attrs: dict[str, Any], inputs: list[int], module: Any = None
    ) -> None:
        if kind == "identity":
            self.of[node] = inputs[0]
            return
        shape = tuple(self.values[node].shape)
        act = attrs.pop("act", False)
        op = TraceOp(len(self.ops), kind, path, attrs, inputs, shape, module)
        self.ops.append(op)
        if act:  # a norm with its activation (timm's BatchNormAct2d): two ops
            op = TraceOp(len(self.ops), "relu", f"{path}.act", {}, [op.index], shape)
            self.ops.append(op)
        self.of[node] = op.index

    def build(self, graph: Any) -> list[TraceOp]:
        for node in graph.nodes:
            if node.op == "output":
                out = self.tensor_inputs(node)
                if len(out) != 1:
                    raise NotExpressible("", "a model returning several tensors is not expressible")
                self.output = out[0]
                continue
            if not self.is_tensor(node):
                continue
            if node.op == "placeholder":
                self.add(node, "input", "", {}, [])
            elif node.op == "call_module":
                sub = self.module.get_submodule(node.target)
                kind, attrs = layer_op(sub, str(node.target))
                self.add(node, kind, str(node.target), attrs, self.tensor_inputs(node), sub)
            elif node.op == "get_attr":
                raise NotExpressible(
                    str(node.target),
                    "a tensor stored in the model and used in forward is not expressible",
                )
            else:
                self.functional(node)
        return self.ops

    def functional(self, node: Any) -> None:
        from resgen.importers.torch_functions import function_op

        path, cls = _owner(node)
        inputs = self.tensor_inputs(node)
        in_shapes = [self.ops[i].shape for i in inputs]
        out_shape = tuple(self.values[node].shape)
        kind, attrs = function_op(node, self.value, in_shapes, out_shape, path, cls)
        self.add(node, kind, path, attrs, inputs)


def _ops(module: Any, graph: Any, values: dict[Any, Any]) -> list[TraceOp]:
    builder = _Builder(module, values)
    ops = builder.build(graph)
    return _live(ops, builder.output)


def _live(ops: list[TraceOp], output: int) -> list[TraceOp]:
    """Only the ops the output depends on, renumbered; the last one is the output."""
    needed = {output}
    for op in reversed(ops):
        if op.index in needed:
            needed.update(op.inputs)
    kept = [op for op in ops if op.index in needed]
    renumber = {op.index: i for i, op in enumerate(kept)}
    for op in kept:
        op.index = renumber[op.index]
        op.inputs = [renumber[i] for i in op.inputs]
    if kept[-1].index != renumber[output]:
        raise NotExpressible("", "the model's output is not its last operation")
    return kept


ADD = (operator.add, operator.iadd)
MUL = (operator.mul, operator.imul)
