"""The settings of one torch layer (a module the trace keeps whole), as an op kind and attributes.

Kinds: conv, conv1d, norm, relu, sigmoid, max_pool, avg_pool, global_pool, blur, linear, dropout,
drop_path, flatten, pad, softmax, identity. A layer of any other kind is not expressible.
"""

from __future__ import annotations

from typing import Any

from resgen.importers.errors import NotExpressible


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    return (int(value[0]), int(value[1]))


def _string_padding(m: Any, path: str) -> tuple[int, int]:
    """padding="valid" is 0; padding="same" (stride 1) is k // 2 on each side when the dilated kernel
    is odd, and uneven (torch pads the extra row after) when it is even."""
    if m.padding == "valid":
        return (0, 0)
    totals = [d * (k - 1) for k, d in zip(_pair(m.kernel_size), _pair(m.dilation), strict=True)]
    if any(t % 2 for t in totals):
        k = "x".join(str(k) for k in _pair(m.kernel_size))
        raise NotExpressible(path, f"padding='same' with the even kernel {k} pads unevenly; not expressible")
    return (totals[0] // 2, totals[1] // 2)


def _conv(m: Any, path: str) -> tuple[str, dict[str, Any]]:
    from torch import nn

    cls = type(m).__name__
    standardized = None
    tf_same = False
    if type(m).forward is not nn.Conv2d.forward:
        if "StdConv" in cls and "Same" not in cls and hasattr(m, "eps"):
            standardized = float(m.eps)
        elif cls == "Conv2dSame" and _pair(m.padding) == (0, 0):
            tf_same = True  # TensorFlow's "same" padding, computed from the input size
        else:
            raise NotExpressible(path, f"{cls} (a convolution with its own forward) is not expressible")
    if m.padding_mode != "zeros":
        raise NotExpressible(path, f"{cls} with padding_mode {m.padding_mode!r} is not expressible")
    return "conv", {
        "in": m.in_channels,
        "out": m.out_channels,
        "kernel": _pair(m.kernel_size),
        "stride": _pair(m.stride),
        "padding": _string_padding(m, path) if isinstance(m.padding, str) else _pair(m.padding),
        "dilation": _pair(m.dilation),
        "groups": m.groups,
        "bias": m.bias is not None,
        "standardized": standardized,
        "tf_same": tf_same,
    }


def _act(m: Any, path: str) -> bool:
    """Whether a norm layer with an activation (timm's BatchNormAct2d, GroupNormAct) applies ReLU."""
    from torch import nn

    for name in ("drop",):
        sub = getattr(m, name, None)
        if sub is not None and not isinstance(sub, nn.Identity):
            raise NotExpressible(f"{path}.{name}", f"{type(sub).__name__} inside a norm is not expressible")
    act = getattr(m, "act", None)
    if act is None or isinstance(act, nn.Identity):
        return False
    if isinstance(act, nn.ReLU):
        return True
    raise NotExpressible(f"{path}.act", f"{type(act).__name__} activation is not expressible (only ReLU)")


def _norm(m: Any, path: str) -> tuple[str, dict[str, Any]]:
    from torch import nn

    cls = type(m).__name__
    if isinstance(m, nn.BatchNorm2d):
        if not m.affine:
            raise NotExpressible(path, f"{cls} with affine=False (no scale and shift) is not expressible")
        if not m.track_running_stats:
            raise NotExpressible(
                path,
                f"{cls} with track_running_stats=False (batch statistics in eval) is not expressible",
            )
        if type(m).forward is not nn.BatchNorm2d.forward and not hasattr(m, "act"):
            raise NotExpressible(path, f"{cls} is not expressible")
        momentum = m.momentum
        if momentum is None:
            raise NotExpressible(path, f"{cls} with cumulative averaging (momentum=None) is not expressible")
        return "norm", {
            "norm": "batch",
            "channels": m.num_features,
            "eps": float(m.eps),
            "momentum": float(momentum),
            "act": _act(m, path),
        }
    if not m.affine:
        raise NotExpressible(path, f"{cls} without affine parameters is not expressible")
    same_function = cls in ("GroupNorm", "GroupNorm1") and m.num_groups >= 1  # timm's, F.group_norm
    if type(m).forward is not nn.GroupNorm.forward and not hasattr(m, "act") and not same_function:
        raise NotExpressible(path, f"{cls} is not expressible")
    return "norm", {
        "norm": "group",
        "channels": m.num_channels,
        "groups": m.num_groups,
        "eps": float(m.eps),
        "act": _act(m, path),
    }


def _pool(m: Any, path: str) -> tuple[str, dict[str, Any]]:
    from torch import nn

    if isinstance(m, nn.MaxPool2d):
        if _pair(m.dilation) != (1, 1) or m.return_indices:
            raise NotExpressible(path, "MaxPool2d with dilation or indices is not expressible")
        return "max_pool", {
            "kernel": _pair(m.kernel_size),
            "stride": _pair(m.stride or m.kernel_size),
            "padding": _pair(m.padding),
            "ceil": bool(m.ceil_mode),
        }
    if isinstance(m, nn.AvgPool2d):
        if m.divisor_override:
            raise NotExpressible(path, "AvgPool2d with divisor_override is not expressible")
        return "avg_pool", {
            "kernel": _pair(m.kernel_size),
            "stride": _pair(m.stride or m.kernel_size),
            "padding": _pair(m.padding),
            "ceil": bool(m.ceil_mode),
            "count_pad": bool(m.count_include_pad),
            "literal": True,
        }
    if _pair(m.output_size) != (1, 1):
        raise NotExpressible(path, f"{type(m).__name__} to {m.output_size} is not expressible (only 1x1)")
    return "global_pool", {"keepdim": True}


def layer_op(m: Any, path: str) -> tuple[str, dict[str, Any]]:
    """The op kind and settings of layer `m` at module path `path`."""
    from torch import nn

    cls = type(m).__name__
    if isinstance(m, nn.Conv2d):
        return _conv(m, path)
    if isinstance(m, nn.Conv1d):
        return "conv1d", {
            "in": m.in_channels,
            "out": m.out_channels,
            "kernel": m.kernel_size[0],
            "padding": m.padding[0],
            "bias": m.bias is not None,
            "stride": m.stride[0],
        }
    if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
        return _norm(m, path)
    if isinstance(m, nn.ReLU):
        return "relu", {}
    if isinstance(m, nn.Sigmoid):
        return "sigmoid", {}
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
        return _pool(m, path)
    if isinstance(m, nn.Linear):
        return "linear", {"in": m.in_features, "out": m.out_features, "bias": m.bias is not None}
    if isinstance(m, nn.Dropout):
        return ("identity", {}) if m.p == 0 else ("dropout", {"p": float(m.p)})
    if isinstance(m, nn.Identity):
        return "identity", {}
    if isinstance(m, nn.Flatten):
        if m.start_dim != 1 or m.end_dim != -1:
            raise NotExpressible(path, "Flatten other than from dimension 1 is not expressible")
        return "flatten", {}
    if isinstance(m, (nn.ZeroPad2d, nn.ConstantPad2d)):
        return "pad", {"pads": tuple(int(p) for p in m.padding), "value": float(m.value), "mode": "constant"}
    if isinstance(m, nn.Softmax):
        if m.dim not in (1, -1):
            raise NotExpressible(path, f"Softmax over dimension {m.dim} is not expressible")
        return "softmax", {"dim": m.dim}
    if hasattr(m, "drop_prob") and not list(m.parameters()):
        rate = float(m.drop_prob or 0.0)
        return ("identity", {}) if rate == 0 else ("drop_path", {"p": rate})
    if cls == "BlurPool2d" and hasattr(m, "filt"):
        if getattr(m, "pad_mode", "reflect") != "reflect":
            raise NotExpressible(path, f"BlurPool2d with padding mode {m.pad_mode!r} is not expressible")
        return "blur", {"filter_size": int(m.filt.shape[-1]), "stride": int(m.stride)}
    raise NotExpressible(path, f"{cls} is not expressible")
