"""``resgen export SPEC --to onnx|torch-export|saved-model -o FILE [--weights W] [--check]``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from resgen.cli_common import buildable, fail, guarded, import_frameworks_quietly
from resgen.compiler import compile_spec
from resgen.errors import shown

# What each format's file (or folder) is called; torch.export.load warns on any other name.
SUFFIXES = {"onnx": ".onnx", "torch-export": ".pt2"}


@click.command()
@click.argument("spec", metavar="SPEC")
@click.option(
    "--to",
    "to",
    type=click.Choice(["onnx", "torch-export", "saved-model"]),
    required=True,
    help="onnx and torch-export export the torch output; saved-model the Keras output (a folder).",
)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True, help="The file (.onnx, .pt2) or folder."
)
@click.option(
    "--weights",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="Weights to export (as `resgen weights convert` reads them); random ones by default.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Run the export against the model at batch 1 and 7, at the spec's size and an odd one; exit 1 "
    "if they differ by more than 1e-4 * max(1, max|output|).",
)
@guarded
def export(spec: str, to: str, output: Path, weights: Path | None, check: bool) -> None:
    """Export SPEC's generated model for serving, batch, height and width dynamic.

    Example: resgen export cifar_resnet20 --to onnx -o cifar_resnet20.onnx --check
    """
    from resgen import export as exporter

    suffix = SUFFIXES.get(to)
    if suffix and output.suffix != suffix:
        raise click.BadParameter(f"'{shown(output)}': a {to} file ends in {suffix}", param_hint="'-o'")
    if to == "saved-model" and output.exists():
        fail(f"{shown(output)}: error: exists; a SavedModel is written to a new folder")
    if suffix and output.is_dir():
        fail(f"{shown(output)}: error: is a directory; give a file name")
    compiled = buildable(compile_spec(spec))
    if exporter.FORMATS[to] == "keras":
        import_frameworks_quietly()
    model = exporter.framework_model(compiled, to, weights)
    exporter.export(compiled, to, output, model)
    click.echo(f"wrote {shown(output)}", err=True)
    if not check:
        return
    results = exporter.check(compiled, to, output, model)
    for r in results:
        verdict = "ok" if r.passed else "MISMATCH"
        click.echo(
            f"batch {r.batch} at {r.height}x{r.width}: max |difference| {r.max_abs_diff:.3g} "
            f"(allowed {exporter.TOLERANCE * r.scale:.3g}) {verdict}"
        )
    passed = all(r.passed for r in results)
    click.echo(f"{to}: {'matches' if passed else 'does not match'} the {exporter.FORMATS[to]} model")
    sys.exit(0 if passed else 1)
