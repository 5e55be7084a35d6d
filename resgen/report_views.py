"""`resgen summary` as a table: per layer (with resgen's, torch's or Keras' names) or per block.

The per-block view is the compact one torchinfo users know from ``depth=1``: one row per stem, residual
block and head, with the output shape and the parameters and MACs of everything in it. With
``--names torch`` or ``keras`` the per-layer view lists each layer by the torch module path or the
Keras layer name that computes it in the generated code; "-" where torch uses a function (the
addition, flatten, softmax). The per-block view adds a column with the block's torch module
(``layer2.0``) or the prefix of its Keras layer names (``conv3_block1``); the stem and head have no
single module and show "-".
"""

from __future__ import annotations

from typing import Any

from resgen.compiler import Compiled
from resgen.graph import Scope, format_shape
from resgen.naming import keras_block_prefix, torch_block_path

NAMES = ("resgen", "torch", "keras")
DEPTHS = ("layers", "blocks")
NO_NAME = "-"


def blocks(compiled: Compiled) -> list[dict[str, Any]]:
    """One row per stem, residual block and head, in network order: its layers' totals and the
    shape of its last layer's output (channels first)."""
    graph = compiled.graph
    analysis = compiled.analysis
    records = {(b.stage, b.block): b for b in graph.blocks}
    groups: dict[str, dict[str, Any]] = {}
    for layer in graph:
        if layer.scope is Scope.INPUT:
            continue
        if layer.scope is Scope.STAGE:
            assert layer.stage is not None and layer.block is not None
            record = records[(layer.stage, layer.block)]
            key = record.prefix
            what = ", ".join(
                [str(graph.network.design(layer.stage).kind)]
                + ([f"stride {record.stride}"] if record.stride > 1 else [])
                + ([str(record.shortcut).replace("_", " ")] if record.shortcut != "identity" else [])
            )
            torch = torch_block_path(graph, layer.stage, layer.block)
            keras = keras_block_prefix(layer.stage, layer.block)
        else:
            key, what = str(layer.scope), ""
            torch = keras = None
        facts = analysis[layer.name]
        row = groups.setdefault(
            key,
            {"name": key, "what": what, "torch": torch, "keras": keras, "layers": 0, "params": 0}
            | {"non_trainable_params": 0, "macs": 0},
        )
        row["layers"] += 1
        row["params"] += facts.params
        row["non_trainable_params"] += facts.non_trainable
        row["macs"] += facts.macs
        row["output_shape"] = list(facts.shape)
    return list(groups.values())


def print_table(data: dict[str, Any], *, names: str = "resgen", depth: str = "layers") -> None:
    """The summary as a rich table on stdout, then the totals."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{data['name']}  (shapes are C x H x W)", title_justify="left")
    if depth == "blocks":
        table.add_column("block")
        if names != "resgen":
            table.add_column("torch module" if names == "torch" else "Keras names")
        table.add_column("layers", justify="right")
        table.add_column("what")
        rows = data["blocks"]
    else:
        table.add_column({"resgen": "layer", "torch": "torch module", "keras": "Keras layer"}[names])
        table.add_column("op")
        rows = data["layers"]
    table.add_column("output shape", justify="right")
    table.add_column("params", justify="right")
    table.add_column("MACs", justify="right")
    for row in rows:
        shown = row[names] if names != "resgen" else row["name"]
        label = shown if shown is not None else NO_NAME
        if depth == "blocks":
            first = [row["name"], *([label] if names != "resgen" else []), str(row["layers"]), row["what"]]
        else:
            first = [label, row["op"]]
        table.add_row(
            *first,
            format_shape(row["output_shape"], " x "),
            f"{row['params']:,}" if row["params"] else "",
            f"{row['macs']:,}" if row["macs"] else "",
        )
    console = Console(width=120)
    console.print(table)
    console.print(f"Learnable params:     {data['params']:,}")
    console.print(
        f"Non-trainable params: {data['non_trainable_params']:,}  (BatchNorm running mean and variance)"
    )
    console.print(
        f"MACs:                 {data['macs']:,}  ({data['macs'] / 1e9:.3f} G; convolutions and dense)"
    )
