"""The op kind and settings of a functional operation in a traced forward (``F.relu(x)``,
``x + y``, ``F.pad(x, ...)``, ``torch.flatten(x, 1)``, ``x[:, :, ::2, ::2]``, ``x.mean((2, 3))``).

Operations that reshape a tensor without changing its values are ``flatten`` (to (N, C)),
``reshape`` (any other shape; only channel attention uses them) or ``identity``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from resgen.importers.errors import NotExpressible

_IDENTITY_METHODS = {"contiguous", "expand_as", "view_as", "clone", "float", "type_as"}


def _name(node: Any) -> str:
    target = node.target
    if isinstance(target, str):
        return target
    return getattr(target, "__name__", str(target))


def _arg(node: Any, index: int, key: str, default: Any, value: Callable[[Any], Any]) -> Any:
    if len(node.args) > index:
        return value(node.args[index])
    return value(node.kwargs.get(key, default))


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(x) for x in v)
    return (v[0], v[0]) if len(v) == 1 else (v[0], v[1])


def _slice_stride(index: Any, shape: tuple[int, ...], where: str) -> dict[str, Any]:
    """x[:, :, ::s, ::s]: a subsampling by s (option A shortcuts)."""
    items = index if isinstance(index, tuple) else (index,)
    full = slice(None, None, None)
    if (
        len(items) == 4
        and items[0] == full
        and items[1] == full
        and all(isinstance(i, slice) for i in items[2:])
    ):
        h, w = items[2], items[3]
        if (
            h.start in (None, 0)
            and w.start in (None, 0)
            and h.stop is None
            and w.stop is None
            and h.step == w.step
        ):
            return {"stride": int(h.step or 1)}
    raise NotExpressible(where, f"indexing a tensor with {index!r} is not expressible")


def function_op(
    node: Any,
    value: Callable[[Any], Any],
    in_shapes: list[tuple[int, ...]],
    out_shape: tuple[int, ...],
    path: str,
    cls: str,
) -> tuple[str, dict[str, Any]]:
    """(kind, attrs) of the call_function / call_method node `node`."""
    import torch
    import torch.nn.functional as F

    name = _name(node)
    where = path or "forward"
    target = node.target
    if target in (operator.add, operator.iadd, torch.add) or name in ("add", "add_", "__add__", "__iadd__"):
        if len(in_shapes) != 2:
            raise NotExpressible(where, "adding a constant to a tensor is not expressible")
        alpha = _arg(node, 2, "alpha", 1, value)
        if alpha != 1:
            raise NotExpressible(
                where, f"an addition with alpha={alpha} (a scaled tensor) is not expressible"
            )
        return "add", {}
    if target in (operator.mul, operator.imul, torch.mul) or name in ("mul", "mul_"):
        if len(in_shapes) != 2:
            raise NotExpressible(where, "scaling a tensor by a constant is not expressible")
        return "mul", {}
    if target in (torch.relu, F.relu, torch.relu_) or name in ("relu", "relu_"):
        return "relu", {}
    if target in (torch.sigmoid, F.sigmoid) or name in ("sigmoid", "sigmoid_"):
        return "sigmoid", {}
    if target is F.pad or name == "pad":
        pads = tuple(int(p) for p in _arg(node, 1, "pad", (), value))
        mode = _arg(node, 2, "mode", "constant", value)
        fill = _arg(node, 3, "value", 0.0, value)
        return "pad", {"pads": pads, "mode": mode, "value": float(fill or 0.0)}
    if target is operator.getitem:
        return "subsample", _slice_stride(value(node.args[1]), in_shapes[0], where)
    if target is torch.squeeze or name == "squeeze":
        return _squeeze(node, in_shapes[0], out_shape, where)
    if target in (torch.flatten,) or name in ("flatten", "view", "reshape"):
        if len(out_shape) == 2 and out_shape[0] == in_shapes[0][0]:
            return "flatten", {}
        if out_shape == in_shapes[0]:
            return "identity", {}
        return "reshape", {}
    if name in _IDENTITY_METHODS:
        return "identity", {}
    if target is F.avg_pool2d or name == "avg_pool2d":
        kernel = _pair(_arg(node, 1, "kernel_size", None, value))
        stride = _arg(node, 2, "stride", None, value)
        if _arg(node, 6, "divisor_override", None, value):
            raise NotExpressible(where, "avg_pool2d with divisor_override is not expressible")
        literal = not _computed(node.args[1] if len(node.args) > 1 else node.kwargs.get("kernel_size"))
        return "avg_pool", {
            "kernel": kernel,
            "stride": _pair(stride) if stride else kernel,
            "padding": _pair(_arg(node, 3, "padding", 0, value)),
            "ceil": bool(_arg(node, 4, "ceil_mode", False, value)),
            "count_pad": bool(_arg(node, 5, "count_include_pad", True, value)),
            "literal": literal,
        }
    if target is F.max_pool2d or name == "max_pool2d":
        kernel = _pair(_arg(node, 1, "kernel_size", None, value))
        stride = _arg(node, 2, "stride", None, value)
        if _pair(_arg(node, 4, "dilation", 1, value)) != (1, 1) or _arg(
            node, 6, "return_indices", False, value
        ):
            raise NotExpressible(where, "max_pool2d with dilation or indices is not expressible")
        return "max_pool", {
            "kernel": kernel,
            "stride": _pair(stride) if stride else kernel,
            "padding": _pair(_arg(node, 3, "padding", 0, value)),
            "ceil": bool(_arg(node, 5, "ceil_mode", False, value)),
        }
    if target is F.adaptive_avg_pool2d or name == "adaptive_avg_pool2d":
        if _pair(_arg(node, 1, "output_size", None, value)) != (1, 1):
            raise NotExpressible(where, "adaptive pooling to more than 1x1 is not expressible")
        return "global_pool", {"keepdim": True}
    if target is torch.mean or name == "mean":
        dims = _arg(node, 1, "dim", None, value)
        rank = len(in_shapes[0])
        dims = tuple(sorted(d % rank for d in ((dims,) if isinstance(dims, int) else dims or ())))
        if dims == (2, 3):
            return "global_pool", {"keepdim": bool(_arg(node, 2, "keepdim", False, value))}
    if target in (F.softmax, torch.softmax) or name == "softmax":
        dim = _arg(node, 1, "dim", None, value)
        if dim not in (1, -1) or len(out_shape) != 2:
            raise NotExpressible(where, f"softmax over dimension {dim} is not expressible")
        return "softmax", {}
    if target is F.dropout or name == "dropout":
        p = float(_arg(node, 1, "p", 0.5, value))
        return ("identity", {}) if p == 0 else ("dropout", {"p": p})
    owner = f" (in {cls})" if cls else ""
    raise NotExpressible(where, f"{name}{owner} is not expressible")


def _squeeze(
    node: Any, shape: tuple[int, ...], out: tuple[int, ...], where: str
) -> tuple[str, dict[str, Any]]:
    """Squeezing a pooled (N, C, 1, 1) map: ``squeeze(-1)`` twice, ``squeeze((2, 3))`` or ``squeeze()``.
    The trace runs one image, so ``squeeze()`` drops the batch axis too; with a batch it keeps it."""
    pooled = len(shape) == 4 and shape[2:] == (1, 1)
    if out == shape:
        return "identity", {}
    if len(shape) >= 2 and out[:2] == shape[:2] and all(d == 1 for d in out[2:]) and pooled:
        return ("flatten", {}) if len(out) == 2 else ("identity", {})
    no_dims = len(node.args) < 2 and "dim" not in node.kwargs
    if no_dims and pooled and shape[0] == 1 and out == (shape[1],):
        return "flatten", {}
    raise NotExpressible(where, f"squeezing a tensor of shape {shape} to {out} is not expressible")


def _computed(arg: Any) -> bool:
    """Whether an argument is computed in forward (``x.size(3)``) rather than written as a number."""
    from torch import fx

    if isinstance(arg, fx.Node):
        return True
    if isinstance(arg, (list, tuple)):
        return any(_computed(a) for a in arg)
    return False
