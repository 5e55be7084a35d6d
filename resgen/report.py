"""Reports built from a compiled graph: the per-layer summary as data, and as a rich table."""

from __future__ import annotations

from typing import Any

from resgen.compiler import Compiled
from resgen.graph import SHAPE_LAYOUT, format_shape
from resgen.naming import keras_name, torch_module


def summary(compiled: Compiled) -> dict[str, Any]:
    """Everything `resgen summary --format json` prints. Shapes are channels first: [C, H, W].

    Each layer lists the torch module path and the Keras layer name that compute it in the
    generated code; ``null`` where the torch target uses a function (the addition, flatten,
    softmax). A softmax fused into the classifier lists the classifier's Keras layer.
    """
    graph = compiled.graph
    analysis = compiled.analysis
    rows = []
    for layer in graph:
        facts = analysis[layer.name]
        rows.append(
            {
                "name": layer.name,
                "op": layer.kind,
                "torch": torch_module(graph, layer.name),
                "keras": keras_name(graph, layer.name),
                "output_shape": list(facts.shape),
                "params": facts.params,
                "non_trainable_params": facts.non_trainable,
                "macs": facts.macs,
            }
        )
    return {
        "name": compiled.name,
        "spec_hash": graph.network.spec_hash,
        "shape_layout": SHAPE_LAYOUT,
        "input_shape": rows[0]["output_shape"],
        "output_shape": rows[-1]["output_shape"],
        **analysis.totals(),
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
            format_shape(row["output_shape"], " x "),
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
