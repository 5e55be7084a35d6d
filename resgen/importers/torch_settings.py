"""Network-wide settings of a traced model: normalization, convolution kind, padding, convolution
bias, stochastic depth and initialization (read from the parameters the model starts with)."""

from __future__ import annotations

from typing import Any

from resgen.importers.errors import NotExpressible, agreed
from resgen.importers.torch_blocks import BlockRead
from resgen.importers.torch_trace import TraceOp


def _norm(ops: list[TraceOp], notes: dict[str, str]) -> dict[str, Any]:
    norms = [op for op in ops if op.kind == "norm"]
    if not norms:
        raise NotExpressible("", "a model without normalization is not expressible")
    kind = agreed(norms, "normalization", lambda op: op.attrs["norm"], among="layers")
    eps = agreed(norms, "epsilon", lambda op: op.attrs["eps"], among="layers")
    if kind == "group":
        groups = agreed(norms, "GroupNorm groups", lambda op: op.attrs["groups"], among="layers")
        notes["norm"] = f"GroupNorm({groups}, C, eps={eps:g})"
        return {"kind": "group", "groups": groups, "epsilon": eps}
    momentum = agreed(norms, "BatchNorm momentum", lambda op: op.attrs["momentum"], among="layers")
    notes["norm"] = f"torch momentum {momentum:g}"
    return {"epsilon": eps, "momentum": round(1.0 - momentum, 12)}


def _padding(convs: list[TraceOp]) -> str:
    """symmetric or tf_same; a 1x1 convolution pads nothing in either."""
    wide = [op for op in convs if op.attrs["kernel"] != (1, 1)] or convs
    tf_same = agreed(wide, "TensorFlow 'same' padding", lambda op: op.attrs["tf_same"], among="layers")
    for op in convs:
        if tf_same and (op.attrs["tf_same"] or op.attrs["padding"] == (0, 0)):
            continue
        k = op.attrs["kernel"]
        if op.attrs["padding"] != (k[0] // 2, k[1] // 2):
            raise NotExpressible(
                op.path,
                f"padding {op.attrs['padding']} on a {k[0]}x{k[1]} convolution is not expressible",
            )
    return "tf_same" if tf_same else "symmetric"


def _conv_bias(ops: list[TraceOp], convs: list[TraceOp]) -> str:
    normed = {i for op in ops if op.kind == "norm" for i in op.inputs}
    biased = [op.attrs["bias"] for op in convs]
    if not any(biased):
        return "none"
    if all(biased):
        return "all"
    if all(op.attrs["bias"] == (op.index not in normed) for op in convs):
        return "unnormalized"
    odd = next(op for op in convs if op.attrs["bias"] != (op.index not in normed))
    raise NotExpressible(
        odd.path,
        "convolution biases on some normalized convolutions only are not expressible",
    )


def _zeros(op: TraceOp, name: str) -> bool | None:
    """Whether a layer's parameter starts at zero; None where its values cannot be read (meta)."""
    tensor = getattr(op.module, name, None)
    if tensor is None or tensor.is_meta:
        return None
    return bool((tensor == 0).all())


def _init(reads: list[BlockRead], classifier: TraceOp | None, notes: dict[str, str]) -> dict[str, Any]:
    init: dict[str, Any] = {}
    lasts = [r.convs[-1] if r.preactivation else r.norms[-1] for r in reads]
    zeroed = [_zeros(op, "weight") for op in lasts]
    if zeroed and all(zeroed):
        init["zero_init_last"] = True
        notes["init"] = "the last norm of every residual branch starts at 0 (timm's zero_init_last)"
    if classifier is not None and classifier.module is not None and _zeros(classifier, "bias"):
        weight = classifier.module.weight
        std = float(weight.detach().float().std())
        if 0.008 < std < 0.012:
            init["dense"] = "normal_0.01"
            init["bias"] = "zeros"
            notes["init"] = "the classifier starts from N(0, 0.01^2), biases at 0 (timm's ResNetV2)"
    return init


def _drop_path(reads: list[BlockRead], notes: dict[str, str]) -> float:
    rates = [r.drop_path for r in reads]
    if not any(rates):
        return 0.0
    last = rates[-1]
    n = len(rates)
    for k, (r, rate) in enumerate(zip(reads, rates, strict=True)):
        if abs(rate - last * k / (n - 1)) > 1e-6:
            raise NotExpressible(
                r.path,
                f"a drop-path rate {rate:g} off timm's linear schedule is not expressible",
            )
    notes["regularization"] = "timm's drop_path_rate (linear over the blocks)"
    return last


def network_settings(
    ops: list[TraceOp],
    reads: list[BlockRead],
    stem_convs: list[TraceOp],
    classifier: TraceOp | None,
    notes: dict[str, str],
) -> dict[str, Any]:
    """The norm, conv, padding, conv_bias, regularization and init sections."""
    convs = [*stem_convs, *(c for r in reads for c in (*r.convs, *r.shortcut_convs))]
    grouped = {r.convs[1].index for r in reads if r.kind == "bottleneck"}
    for op in convs:
        if op.attrs["dilation"] != (1, 1):
            raise NotExpressible(op.path, "a dilated convolution is not expressible here")
        if op.attrs["stride"][0] != op.attrs["stride"][1]:
            raise NotExpressible(op.path, "a convolution with unequal strides is not expressible")
        if op.attrs["groups"] != 1 and op.index not in grouped:
            raise NotExpressible(
                op.path, "a grouped convolution other than a bottleneck's 3x3 is not expressible"
            )
    out: dict[str, Any] = {"norm": _norm(ops, notes)}
    standardized = agreed(
        convs, "weight standardization", lambda op: op.attrs["standardized"], among="layers"
    )
    if standardized is not None:
        out["conv"] = {"kind": "weight_standardized", "epsilon": standardized}
        notes["conv"] = f"timm's StdConv2d(eps={standardized:g})"
    padding = _padding(convs)
    if padding != "symmetric":
        out["padding"] = padding
    out["conv_bias"] = _conv_bias(ops, convs)
    rate = _drop_path(reads, notes)
    if rate:
        out["regularization"] = {"drop_path": rate}
    init = _init(reads, classifier, notes)
    if init:
        out["init"] = init
    return out


ROLES = ("stem", "blocks", "shortcuts", "head")


def stated_l2(model: Any, notes: dict[str, str]) -> dict[str, float]:
    """L2 by role, where the model's module states its weight decay as resgen's generated torch files
    do (``WEIGHT_DECAY = {"stem": 2r, "blocks": ..., "shortcuts": ..., "head": ...}``, torch weight
    decay 2r for Keras' l2(r)); empty otherwise: weight decay belongs to the optimizer, not the model."""
    table = getattr(type(model).__init__, "__globals__", {}).get("WEIGHT_DECAY")
    if not isinstance(table, dict) or set(table) != set(ROLES):
        return {}
    if not all(isinstance(v, float) and v >= 0 for v in table.values()):
        return {}
    l2 = {role: table[role] / 2 for role in ROLES}
    out = {"l2": l2["blocks"], **{r: v for r, v in l2.items() if v != l2["blocks"]}}
    notes["regularization"] = "the model's WEIGHT_DECAY table: torch weight decay 2r is Keras' l2(r)"
    return out
