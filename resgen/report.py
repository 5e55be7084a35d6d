"""Reports built from a compiled graph: the per-layer summary as data, and as a rich table."""

from __future__ import annotations

from typing import Any

from resgen.compiler import Compiled
from resgen.lower import layers
from resgen.naming import keras_name, torch_path
from resgen.passes import totals


def summary(compiled: Compiled) -> dict[str, Any]:
    """Everything `resgen summary --format json` prints. Shapes are channels first: [C, H, W]."""
    graph = compiled.graph
    preact = compiled.spec.block.preactivation
    rows = []
    for name in layers(graph):
        node = graph.nodes[name]
        rows.append(
            {
                "name": name,
                "op": node["op"],
                "torch": torch_path(node),
                "keras": keras_name(node, preactivation=preact),
                "output_shape": list(node["shape"]),
                "params": node["params"],
                "non_trainable_params": node["non_trainable"],
                "macs": node["macs"],
            }
        )
    return {
        "name": compiled.name,
        "spec_hash": compiled.spec.content_hash(),
        "input_shape": rows[0]["output_shape"],
        "output_shape": rows[-1]["output_shape"],
        **totals(graph),
        "layers": rows,
    }


def print_summary_table(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{data['name']}  (shapes are C x H x W)", title_justify="left")
    table.add_column("layer")
    table.add_column("op")
    table.add_column("output shape", justify="right")
    table.add_column("params", justify="right")
    table.add_column("MACs", justify="right")
    for row in data["layers"]:
        table.add_row(
            row["name"],
            row["op"],
            " x ".join(str(d) for d in row["output_shape"]),
            f"{row['params']:,}" if row["params"] else "",
            f"{row['macs']:,}" if row["macs"] else "",
        )
    console = Console(width=110)
    console.print(table)
    console.print(f"Learnable params:     {data['params']:,}")
    console.print(
        f"Non-trainable params: {data['non_trainable_params']:,}  (BatchNorm running mean and variance)"
    )
    console.print(
        f"MACs:                 {data['macs']:,}  ({data['macs'] / 1e9:.3f} G; convolutions and dense)"
    )
