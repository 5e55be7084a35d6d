"""The stem and the head of a Keras model, and how each convolution pads, read as spec sections."""

from __future__ import annotations

from typing import Any

from resgen.importers.errors import NotExpressible
from resgen.importers.keras_blocks import Tok, tokens
from resgen.importers.keras_graph import Item, Join, Node


def conv_settings(tok: Tok) -> dict[str, Any]:
    """Kernel, stride, groups, output channels and the padding mode ("symmetric", "tf_same" or None
    where both read the same) of a convolution token; refused where the spec has no counterpart."""
    node, config = tok.node, tok.node.config
    k = _square(node, config["kernel_size"], "kernel")
    s = _square(node, config["strides"], "stride")
    if _square(node, config.get("dilation_rate", 1), "dilation") != 1:
        raise NotExpressible(node.name, "a dilated convolution is not expressible (yet) by import")
    if config.get("data_format", "channels_last") != "channels_last":
        raise NotExpressible(node.name, "a channels-first convolution is not expressible")
    mode: str | None = None
    half = k // 2
    if tok.pad is not None:
        if config["padding"] != "valid" or tok.pad != ((half, half), (half, half)) or k % 2 == 0:
            raise NotExpressible(node.name, f"padding {tok.pad} of a {k}x{k} convolution is not expressible")
        mode = "symmetric" if s > 1 else None
    elif config["padding"] == "same":
        if k % 2 == 0:
            raise NotExpressible(node.name, f"'same' padding of an even {k}x{k} kernel is not expressible")
        mode = "tf_same" if s > 1 and k > 1 else None
    elif k != 1:
        raise NotExpressible(node.name, f"an unpadded {k}x{k} convolution is not expressible")
    standardize = config.get("ws_epsilon") if node.class_name == "StdConv2D" else None
    return {
        "kernel": k,
        "stride": s,
        "groups": int(config.get("groups", 1)),
        "filters": int(config["filters"]),
        "bias": bool(config["use_bias"]),
        "mode": mode,
        "standardize": standardize,
    }


def _square(node: Node, value: Any, what: str) -> int:
    values = (value, value) if isinstance(value, int) else tuple(value)
    if len(values) != 2 or values[0] != values[1]:
        raise NotExpressible(node.name, f"a non-square {what} {values} is not expressible")
    return int(values[0])


def stem(items: tuple[Item, ...]) -> tuple[dict[str, Any], list[Tok]]:
    """The stem section and its convolution tokens."""
    for item in items:
        if isinstance(item, Join):
            raise NotExpressible(item.node.name, "a join in the stem is not expressible")
    toks = tokens(items)
    i = 0
    input_norm = bool(toks) and toks[0].kind == "norm"
    i += input_norm
    convs: list[tuple[Tok, bool]] = []
    while i < len(toks) and toks[i].kind == "conv":
        conv = toks[i]
        normed = [t.kind for t in toks[i + 1 : i + 3]] == ["norm", "relu"]
        convs.append((conv, normed))
        i += 3 if normed else 1
    if not convs:
        where = toks[i].node.name if i < len(toks) else ""
        raise NotExpressible(where, "a stem without a convolution is not expressible")
    settings = [conv_settings(c) for c, _ in convs]
    every_conv = [c for c, _ in convs]
    last = settings[-1]
    conv_pool = len(convs) >= 2 and last["stride"] == 2 and last["kernel"] == 3 and convs[-1][1]
    if conv_pool:  # timm's replace_stem_pool: a 3x3/2 convolution + BatchNorm + ReLU downsamples
        settings.pop()
        convs.pop()
    data: dict[str, Any]
    if len(convs) == 1:
        first = settings[0]
        data = {"kind": "conv", "filters": first["filters"], "kernel_size": first["kernel"]}
        data |= {"stride": first["stride"], "norm": convs[0][1]}
        if input_norm:
            data["input_norm"] = True
    else:
        if input_norm:
            raise NotExpressible(
                toks[0].node.name, "input normalization before a deep stem is not expressible"
            )
        for (conv, normed), s in zip(convs, settings, strict=True):
            last = conv is convs[-1][0]
            if (
                s["kernel"] != 3
                or (s["stride"] != 1 and conv is not convs[0][0])
                or (not last and not normed)
            ):
                raise NotExpressible(conv.node.name, "a stem convolution that no deep stem has")
        data = {"kind": "deep", "widths": [s["filters"] for s in settings], "stride": settings[0]["stride"]}
        data["norm"] = convs[-1][1]
    if conv_pool:
        data["conv_pool"] = True
    rest = toks[i:]
    if rest:
        data["pool"], rest = _pool(rest)
    if rest:
        raise NotExpressible(rest[0].node.name, f"{rest[0].node.class_name} in the stem is not expressible")
    return data, every_conv


def _pool(toks: list[Tok]) -> tuple[dict[str, Any], list[Tok]]:
    first = toks[0]
    config = first.node.config
    if first.kind == "avg_pool":
        size, stride = (
            _square(first.node, config["pool_size"], "pool"),
            _square(first.node, config["strides"], "stride"),
        )
        if config["padding"] != "valid":
            raise NotExpressible(first.node.name, "a padded average pool in the stem is not expressible")
        return {"kind": "avg", "kernel_size": size, "stride": stride, "padding": 0}, toks[1:]
    if first.kind != "max_pool":
        raise NotExpressible(first.node.name, f"{first.node.class_name} in the stem is not expressible")
    size, stride = (
        _square(first.node, config["pool_size"], "pool"),
        _square(first.node, config["strides"], "stride"),
    )
    if config["padding"] != "valid":
        raise NotExpressible(
            first.node.name, "a 'same' max-pool in the stem is not expressible; pad explicitly"
        )
    pad = 0
    if first.pad is not None:
        pad = first.pad[0][0]
        if first.pad != ((pad, pad), (pad, pad)):
            raise NotExpressible(first.node.name, f"asymmetric padding {first.pad} before a max-pool")
    pool: dict[str, Any] = {"kernel_size": size, "stride": stride, "padding": pad}
    if first.pad_node is not None and first.pad_node.kind == "neg_inf_pad":
        pool["pad_with"] = "-inf"
    rest = toks[1:]
    if rest and rest[0].kind == "blur_pool" and stride == 1:
        blur = rest[0].node.config
        pool["stride"] = int(blur["stride"])
        pool["anti_alias"] = {"kind": "blur", "filter_size": int(blur.get("filter_size", 3))}
        rest = rest[1:]
    return pool, rest


def head(items: tuple[Item, ...]) -> tuple[dict[str, Any], list[Node]]:
    """The head section and its classifier layers (for the initialization and L2 readers)."""
    for item in items:
        if isinstance(item, Join):
            raise NotExpressible(item.node.name, "a join in the head is not expressible")
    nodes = [i for i in items if isinstance(i, Node)]
    kinds = [n.kind for n in nodes]
    data: dict[str, Any] = {}
    i = 0
    if kinds[:2] in (["bn", "relu"], ["gn", "relu"]):
        data["norm"] = True
        i = 2
    if not nodes[i:]:
        raise NotExpressible("", "a model without a classifier head is not recognised by import")
    pool = nodes[i]
    if pool.kind == "gap":
        data["kind"] = "global_pool"
        keepdims = bool(pool.config.get("keepdims"))
    elif pool.kind == "avg_pool" and [n.kind for n in nodes[i + 1 : i + 2]] == ["flatten"]:
        data["kind"] = "pool_flatten"
        size = _square(pool, pool.config["pool_size"], "pool")
        if _square(pool, pool.config["strides"], "stride") != size or pool.config["padding"] != "valid":
            raise NotExpressible(pool.name, "an average pool whose stride is not its size")
        data["pool_size"] = size
        keepdims = False
        i += 1
    else:
        raise NotExpressible(pool.name, f"{pool.class_name} where the head pools is not expressible")
    rest = nodes[i + 1 :]
    if keepdims:  # GlobalAveragePooling2D(keepdims=True) then Flatten (a dropout between): a pooled vector
        at = 1 if rest[:1] and rest[0].kind == "dropout" else 0
        if [n.kind for n in rest[at : at + 1]] == ["flatten"]:
            rest = rest[:at] + rest[at + 1 :]
            keepdims = False
    if rest and rest[0].kind == "dropout" and not rest[0].config.get("noise_shape"):
        data["dropout"] = float(rest[0].config["rate"])
        rest = rest[1:]
    if not rest:
        raise NotExpressible(pool.name, "a head without a classifier is not recognised by import")
    classifier = rest[0]
    if classifier.kind == "dense" and not keepdims:
        classes = int(classifier.config["units"])
        rest = rest[1:]
    elif classifier.kind == "conv" and keepdims and [n.kind for n in rest[1:2]] == ["flatten"]:
        if _square(classifier, classifier.config["kernel_size"], "kernel") != 1:
            raise NotExpressible(classifier.name, "a classifier convolution that is not 1x1")
        data["classifier"] = "conv1x1"
        classes = int(classifier.config["filters"])
        rest = rest[2:]
    else:
        raise NotExpressible(classifier.name, f"{classifier.class_name} as the classifier is not expressible")
    if not classifier.config.get("use_bias", True):
        raise NotExpressible(classifier.name, "a classifier without bias is not expressible")
    data["classes"] = classes
    if rest and rest[0].kind == "softmax":
        data["output"] = "softmax"
        rest = rest[1:]
    if rest:
        raise NotExpressible(rest[0].name, f"{rest[0].class_name} after the classifier is not expressible")
    return data, [classifier]
