"""The two ends of a traced model, read as spec sections: the stem (the ops before the first block)
and the head (the ops after the last one)."""

from __future__ import annotations

from typing import Any

from resgen.importers.errors import NotExpressible
from resgen.importers.torch_structure import Token, describe
from resgen.importers.torch_trace import TraceOp


def _take(tokens: list[Token], *kinds: str) -> list[TraceOp] | None:
    """The first len(kinds) tokens when they are ops of these kinds, consumed; else None."""
    if len(tokens) < len(kinds):
        return None
    head = tokens[: len(kinds)]
    if all(isinstance(t, TraceOp) and t.kind == k for t, k in zip(head, kinds, strict=True)):
        del tokens[: len(kinds)]
        return head  # type: ignore[return-value]
    return None


def _square(op: TraceOp, key: str) -> int:
    a, b = op.attrs[key]
    if a != b:
        raise NotExpressible(op.path, f"{op.kind} with unequal {key} {op.attrs[key]} is not expressible")
    return int(a)


def read_stem(tokens: list[Token], notes: dict[str, str]) -> tuple[dict[str, Any], list[TraceOp]]:
    """The stem section and the stem's convolutions; `tokens` is consumed."""
    tokens = list(tokens)
    where = tokens[0].path if tokens else "stem"
    input_norm = _take(tokens, "norm") is not None
    convs: list[TraceOp] = []
    while tokens and isinstance(tokens[0], TraceOp) and tokens[0].kind == "conv":
        if convs and _is_conv_pool(tokens[0], convs):
            break
        conv = tokens.pop(0)
        convs.append(conv)  # type: ignore[arg-type]
        conv.attrs["_norm"] = _take(tokens, "norm", "relu") is not None
        if not conv.attrs["_norm"]:
            break
    if not convs:
        raise NotExpressible(where, "a stem without a convolution is not expressible")
    stem: dict[str, Any] = {}
    first = convs[0]
    if len(convs) == 1:
        k = _square(first, "kernel")
        stem = {
            "kind": "conv",
            "filters": first.attrs["out"],
            "kernel_size": k,
            "stride": _square(first, "stride"),
        }
    else:
        for k, conv in enumerate(convs):
            if conv.attrs["kernel"] != (3, 3) or (k and conv.attrs["stride"] != (1, 1)):
                raise NotExpressible(
                    conv.path,
                    "a deep stem of other than 3x3 convolutions striding first is not expressible",
                )
            if k < len(convs) - 1 and not conv.attrs["_norm"]:
                raise NotExpressible(
                    conv.path,
                    "a deep stem convolution without BatchNorm + ReLU is not expressible",
                )
        widths = [c.attrs["out"] for c in convs]
        stem = {"kind": "deep", "widths": widths, "stride": _square(first, "stride")}
        notes["stem.widths"] = (
            f"{len(widths)} 3x3 convolutions ({'tiered' if widths[0] != widths[1] else 'deep'} stem)"
        )
    stem["norm"] = bool(convs[-1].attrs["_norm"])
    if input_norm:
        if stem["kind"] != "conv":
            raise NotExpressible(where, "normalizing the input before a deep stem is not expressible")
        stem["input_norm"] = True
    conv_pool = _take(tokens, "conv", "norm", "relu")
    if conv_pool:
        c = conv_pool[0]
        if c.attrs["kernel"] != (3, 3) or c.attrs["stride"] != (2, 2):
            raise NotExpressible(c.path, "a stem convolution pool other than 3x3/2 is not expressible")
        stem["conv_pool"] = True
        convs.append(c)
        notes["stem.conv_pool"] = (
            "a strided 3x3 convolution in place of the max-pool (timm's replace_stem_pool)"
        )
    stem["pool"] = _stem_pool(tokens, stem.get("norm", False))
    if tokens:
        raise NotExpressible(
            tokens[0].path,
            f"{describe(tokens[0])} at the end of the stem is not expressible",
        )
    return stem, convs


def _is_conv_pool(op: TraceOp, convs: list[TraceOp]) -> bool:
    """A strided 3x3 convolution after a stem that has already strided: timm's replace_stem_pool."""
    return op.attrs["stride"] != (1, 1) and any(c.attrs["stride"] != (1, 1) for c in convs)


def _stem_pool(tokens: list[Token], after_relu: bool) -> dict[str, Any] | None:
    if not tokens:
        return None
    pad = _take(tokens, "pad")
    ops = _take(tokens, "max_pool") or _take(tokens, "avg_pool")
    if ops is None:
        if pad:
            raise NotExpressible(pad[0].path, "padding at the end of the stem is not expressible")
        return None
    pool = ops[0]
    if pool.attrs["ceil"]:
        raise NotExpressible(pool.path, "a stem pool with ceil_mode is not expressible")
    k, s, p = _square(pool, "kernel"), _square(pool, "stride"), _square(pool, "padding")
    out: dict[str, Any] = {"kernel_size": k, "stride": s, "padding": p}
    if pool.kind == "avg_pool":
        if pad or p:
            raise NotExpressible(pool.path, "a padded average pool in the stem is not expressible")
        return {"kind": "avg", **out}
    if pad:
        pads = pad[0].attrs["pads"]
        if (
            p
            or pad[0].attrs["value"] != 0
            or pad[0].attrs["mode"] != "constant"
            or len(set(pads)) != 1
            or len(pads) != 4
        ):
            raise NotExpressible(pad[0].path, f"padding the stem pool by {pads} is not expressible")
        out["padding"] = pads[0]
        out["pad_with"] = "zeros"
    else:
        out["pad_with"] = "-inf"  # nn.MaxPool2d's padding
    blur = _take(tokens, "blur") or _take(tokens, "avg_pool")
    if blur:
        if s != 1:
            raise NotExpressible(blur[0].path, "anti-aliasing after a strided stem pool is not expressible")
        b = blur[0]
        if b.kind == "blur":
            out["anti_alias"] = {"kind": "blur", "filter_size": b.attrs["filter_size"]}
            out["stride"] = b.attrs["stride"]
        else:
            raise NotExpressible(b.path, "an average pool after the stem's max-pool is not expressible")
    return out


def read_head(tokens: list[Token], classes_notes: dict[str, str]) -> tuple[dict[str, Any], TraceOp | None]:
    """The head section and its classifier op (None for none); `tokens` are the ops after the last
    block's addition (and its ReLU)."""
    tokens = list(tokens)
    head: dict[str, Any] = {}
    if _take(tokens, "norm", "relu"):
        head["norm"] = True
    pool = _take(tokens, "global_pool")
    if pool is None:
        avg = _take(tokens, "avg_pool")
        if avg is None:
            raise NotExpressible(
                tokens[0].path if tokens else "",
                "a head without average pooling is not expressible",
            )
        a = avg[0]
        k = _square(a, "kernel")
        if a.attrs["padding"] != (0, 0) or a.attrs["stride"] != a.attrs["kernel"]:
            raise NotExpressible(
                a.path,
                "a padded or overlapping average pool in the head is not expressible",
            )
        whole = a.shape[2:] == (1, 1) and not a.attrs["literal"]
        if whole:
            head["kind"] = "global_pool"
            classes_notes["head.kind"] = "F.avg_pool2d over the whole map"
        else:
            head["kind"] = "pool_flatten"
            head["pool_size"] = k
        keep = True
    else:
        head["kind"] = "global_pool"
        keep = bool(pool[0].attrs["keepdim"])
    flat = _take(tokens, "flatten") is not None or not keep
    dropout = _take(tokens, "dropout")
    if dropout:
        head["dropout"] = dropout[0].attrs["p"]
    flat = flat or _take(tokens, "flatten") is not None
    if head["kind"] == "pool_flatten" and not flat:
        raise NotExpressible(
            tokens[0].path if tokens else "",
            "a pooled map not flattened is not expressible",
        )
    fc = _take(tokens, "linear")
    classifier = None
    if fc and not flat:
        raise NotExpressible(fc[0].path, "a linear classifier on an unflattened map is not expressible")
    if fc:
        classifier = fc[0]
        if not classifier.attrs["bias"]:
            raise NotExpressible(classifier.path, "a classifier without bias is not expressible")
        head["classes"] = classifier.attrs["out"]
    else:
        conv = _take(tokens, "conv")
        if conv is None or flat:
            raise NotExpressible(
                tokens[0].path if tokens else "",
                "a head without a classifier is not expressible",
            )
        classifier = conv[0]
        if (
            classifier.attrs["kernel"] != (1, 1)
            or not classifier.attrs["bias"]
            or classifier.attrs["standardized"]
        ):
            raise NotExpressible(
                classifier.path,
                "a convolution classifier other than a plain 1x1 with bias is not expressible",
            )
        if _take(tokens, "flatten") is None:
            raise NotExpressible(classifier.path, "a convolution classifier not flattened is not expressible")
        head["classifier"] = "conv1x1"
        head["classes"] = classifier.attrs["out"]
    head["output"] = "softmax" if _take(tokens, "softmax") else "logits"
    if tokens:
        raise NotExpressible(tokens[0].path, f"{describe(tokens[0])} after the classifier is not expressible")
    return head, classifier
