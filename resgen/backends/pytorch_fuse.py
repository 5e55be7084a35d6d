"""PyTorch backend, the inference build: the table of BatchNorms that the generated
``fuse_batchnorm`` folds into the convolution before them, by the class that owns both.

Which BatchNorms fold is read off the graph: one that reads a convolution feeding nothing else.
The table is per class (the model and the block class), so the file still grows with the number of
stages only; every block must agree with its class's table.
"""

from __future__ import annotations

from typing import Any

from resgen.codegen import CodegenError, comment, literal
from resgen.graph import LayerGraph
from resgen.naming import torch_module, torch_path, torch_path_in_block


def _conv_bn_pairs(graph: LayerGraph) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(conv, bn) module paths where a BatchNorm reads a convolution that feeds nothing else.

    Only such a BatchNorm folds exactly into the convolution's weights and bias. A BatchNorm in
    front of a convolution (pre-activation, the input BatchNorm of Rosebrock's tutorial) or after an
    addition does not. Returns the pairs of the ``ResNet`` class and those of the block class,
    relative to a block, each in graph order. A pair that crosses a block boundary (the stem's
    convolution read only by the first block's pre-activation BatchNorm) belongs to ``ResNet``.
    """
    model_pairs: list[tuple[str, str]] = []
    block_pairs: list[tuple[str, str]] = []
    held: dict[tuple[int | None, int | None], set[tuple[str, str]]] = {}
    keys = set(graph.block_layers())  # a view of one block kind holds only its blocks
    for bn in graph.of_kind("batch_norm"):
        (source,) = graph.inputs(bn.name)
        conv = graph[source]
        if conv.kind != "conv2d" or len(graph.consumers(source)) != 1:
            continue
        if getattr(conv.op, "standardize", None) is not None:
            continue  # a weight-standardized convolution's kernel is not the weight it computes with
        pair = (torch_path(graph, conv.name), torch_path(graph, bn.name))
        where = (bn.stage, bn.block)
        if bn.stage is None or (conv.stage, conv.block) != where:
            model_pairs.append(pair)
            continue
        if where not in keys:
            continue
        pair = (torch_path_in_block(graph, conv.name), torch_path_in_block(graph, bn.name))
        held.setdefault(where, set()).add(pair)
        if pair not in block_pairs:
            block_pairs.append(pair)
    # The table is per class: a pair must hold in every block that has both modules.
    for (stage, block), layers in graph.block_layers().items():
        present = {
            torch_path_in_block(graph, x.name) for x in layers if torch_module(graph, x.name) is not None
        }
        for pair in block_pairs:
            if set(pair) <= present and pair not in held.get((stage, block), set()):
                raise CodegenError(f"{pair} folds in some blocks but not in stage{stage}.block{block}")
    return model_pairs, block_pairs


def _string(path: str) -> str:
    """A module path as a double-quoted literal, as ruff format writes it."""
    if not all(part.isidentifier() or part.isdigit() for part in path.split(".")):
        raise CodegenError(f"unexpected module path {path!r}")
    return literal(path)


def fuse_view(
    graph: LayerGraph, block_classes: list[tuple[LayerGraph, str]], model_class: str
) -> dict[str, Any]:
    """The ``CONV_BN_PAIRS`` table that ``fuse_batchnorm`` folds, by owning class: the model, then
    each block class with the view of the graph (`resgen.backends.blocks.kind_views`) it is written from."""
    model_pairs = _conv_bn_pairs(graph)[0]
    tables = [(model_class, model_pairs), *((name, _conv_bn_pairs(view)[1]) for view, name in block_classes)]
    owners = [
        {"name": owner, "pairs": [(_string(conv), _string(bn)) for conv, bn in pairs]}
        for owner, pairs in tables
        if pairs
    ]
    head = "CONV_BN_PAIRS: dict[type[nn.Module], list[tuple[str, str]]] = {"
    table = [f"{head}}}"]
    if owners:
        table = [head]
        for owner in owners:
            table += [
                f"    {owner['name']}: [",
                *(f"        ({c}, {b})," for c, b in owner["pairs"]),
                "    ],",
            ]
        table.append("}")
    return {
        "table": table,
        "comment": comment(
            "Each convolution whose output only a BatchNorm reads, by the class that owns both: "
            "fuse_batchnorm folds these BatchNorms into their convolutions. Other BatchNorms "
            "(in front of a convolution, after an addition) stay as they are.",
            0,
        ),
    }
