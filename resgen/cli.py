"""Stage 7: the command line. Commands parse arguments, call the pipeline, and print.

Exit codes: 0 success, 1 a negative answer (stale files, differing specs, parity mismatch), 2 an
error. Errors print one line each, ``FILE:LINE:COL: error: field.path: message``; bad input never
produces a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from resgen import __version__, cli_export, cli_import, cli_start, load
from resgen.cli_common import (
    OutputDir,
    OutputPath,
    buildable,
    compile_all,
    fail,
    guarded,
    import_frameworks_quietly,
    input_size,
    set_debug,
    shell_quote,
)
from resgen.compiler import compile_spec
from resgen.errors import shown


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="resgen")
@click.option("--debug", is_flag=True, help="Print the traceback of a failure (or set RESGEN_DEBUG=1).")
def main(debug: bool) -> None:
    """resgen: compile a declarative ResNet spec into verified PyTorch and Keras 3 source.

    SPEC is a .yaml/.yml/.json file, the name of a shipped preset (see `resgen presets`), or a model in
    code: timm:NAME, torchvision:NAME, keras:NAME or FILE.py:CALLABLE (see `resgen import`).
    """
    set_debug(debug)


@main.command()
@click.argument("specs", nargs=-1, required=True, metavar="SPEC...")
@guarded
def validate(specs: tuple[str, ...]) -> None:
    """Validate specs and check every layer's shape."""
    from resgen.report import size_problem

    for c in compile_all(specs):
        click.echo(f"{shown(c.doc.file)}: ok: {c.name}")
        if problem := size_problem(c):
            click.echo(f"{shown(c.doc.file)}: warning: {problem}", err=True)


@main.command()
@click.argument("spec", metavar="SPEC")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option(
    "--names",
    type=click.Choice(["resgen", "torch", "keras"]),
    default="resgen",
    show_default=True,
    help="Name layers as resgen does, by their torch module paths, or by their Keras layer names.",
)
@click.option(
    "--depth",
    type=click.Choice(["layers", "blocks"]),
    default="layers",
    show_default=True,
    help="One row per layer, or one per stem, residual block and head (JSON: adds a blocks list).",
)
@guarded
def summary(spec: str, fmt: str, names: str, depth: str) -> None:
    """Per-layer table (name, op, output shape, params, MACs) and totals."""
    from resgen import report, report_views

    compiled = compile_spec(spec)
    if problem := report.size_problem(compiled):
        click.echo(f"{shown(compiled.doc.file)}: warning: {problem}", err=True)
    data = report.summary(compiled)
    if depth == "blocks":
        data["blocks"] = report_views.blocks(compiled)
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        report_views.print_table(data, names=names, depth=depth)


@main.command()
@guarded
def schema() -> None:
    """JSON Schema of the spec format, for editors."""
    from resgen.spec import json_schema

    click.echo(json.dumps(json_schema(), indent=2, sort_keys=True))


@main.command()
@guarded
def presets() -> None:
    """List the shipped specs."""
    from resgen.validation import validate as validate_doc

    for name in load.preset_names():
        spec = validate_doc(load.load(name))
        click.echo(f"{name:<26} {spec.description}")


@main.command()
@click.argument("specs", nargs=-1, required=True, metavar="SPEC...")
@click.option("--target", "-t", type=click.Choice(["torch", "keras"]), required=True)
@click.option(
    "-o",
    "--output",
    type=OutputPath(stdout=True),
    default=None,
    help="Output file, or - for stdout (one spec).",
)
@click.option(
    "--out-dir",
    type=OutputDir(),
    default=None,
    help="Directory for NAME.py per spec.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if any output is stale or missing.")
@click.option(
    "--orphans",
    is_flag=True,
    help="With --check and --out-dir: also fail on files resgen generated there for specs not given.",
)
@click.option("--force", is_flag=True, help="Replace existing files that resgen did not write.")
@guarded
def render(
    specs: tuple[str, ...],
    target: str,
    output: str | None,
    out_dir: Path | None,
    check: bool,
    orphans: bool,
    force: bool,
) -> None:
    """Render generated model source for every SPEC."""
    from resgen import files
    from resgen.generate import render as render_source

    if output is not None and out_dir is not None:
        raise click.UsageError("give -o/--output or --out-dir, not both")
    if output is not None and len(specs) > 1:
        raise click.UsageError("-o/--output takes one spec; use --out-dir for several")
    compiled = compile_all(specs)
    texts = [(c, render_source(c, target)) for c in compiled]  # everything renders before anything is written
    if output in (None, "-") and out_dir is None:
        if check:
            raise click.UsageError("--check needs -o FILE or --out-dir DIR to compare against")
        if len(texts) > 1:
            raise click.UsageError("several specs need --out-dir")
        click.echo(texts[0][1], nl=False)
        return
    outputs = files.destinations(
        [(arg, c.name, text) for arg, (c, text) in zip(specs, texts, strict=True)], output, out_dir
    )
    if check:
        report = files.check(outputs, target, out_dir=out_dir if orphans else None)
        sys.exit(_print_check(report, specs, target, output, out_dir))
    if orphans:
        raise click.UsageError("--orphans goes with --check")
    files.refuse_special(outputs)  # a device, FIFO or socket is refused even with --force
    foreign = [] if force else files.not_generated(outputs)
    for path in foreign:
        click.echo(
            f"{shown(path)}: error: exists and was not written by resgen (its first line is not "
            f"'{files.GENERATED_PREFIX} ...'); nothing was written. Use --force to replace it.",
            err=True,
        )
    if foreign:
        sys.exit(2)
    same = files.unchanged(outputs)
    files.write_atomic({path: text for path, text in outputs.items() if path not in same})
    for path in outputs:
        click.echo(f"unchanged {shown(path)}" if path in same else f"wrote {shown(path)}", err=True)


def _print_check(
    report: Any, specs: tuple[str, ...], target: str, output: str | None, out_dir: Path | None
) -> int:
    """Print what `resgen.check` found: a unified diff per stale file, orphans, the fixing command."""
    for status in report.outdated:
        click.echo(f"{status.state}: {shown(status.path)}" + (f" ({status.note})" if status.note else ""))
        sys.stdout.write(status.unified_diff())
    for path in report.orphans:
        click.echo(
            f"orphan: {shown(path)} (generated by resgen for {target}, but none of the specs renders it)"
        )
    if report.ok:
        click.echo(f"{len(report.fresh)} file(s) up to date")
        return 0
    where = f"-o {shell_quote(output)}" if output else f"--out-dir {shell_quote(str(out_dir))}"
    fix = f"resgen render {' '.join(shell_quote(s) for s in specs)} --target {target} {where}"
    if report.outdated:
        click.echo(f"{len(report.outdated)} file(s) out of date; to regenerate, run:\n  {fix}")
    if report.orphans:
        click.echo(f"{len(report.orphans)} orphaned file(s): delete them, or add their specs to the command")
    return 1


@main.command(name="diff")
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True
)
@guarded
def diff_command(old: str, new: str, fmt: str) -> None:
    """Semantic architecture diff of two specs. Exit 0 same network, 1 different, 2 error."""
    from resgen import diff_formats
    from resgen import diffs as specdiff

    result = specdiff.diff(*compile_all((old, new)))
    render_diff = {
        "text": diff_formats.to_text,
        "markdown": diff_formats.to_markdown,
        "json": diff_formats.to_json_text,
    }
    click.echo(render_diff[fmt](result), nl=False)
    sys.exit(0 if result.same else 1)


@main.command(name="graph")
@click.argument("spec", metavar="SPEC")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot", "svg", "png"]),
    default="mermaid",
    show_default=True,
    help="svg and png need Graphviz's `dot` on PATH.",
)
@click.option(
    "--detail",
    type=click.Choice(["blocks", "layers"]),
    default="blocks",
    show_default=True,
    help="One node per residual block, or one per layer.",
)
@click.option(
    "-o",
    "--output",
    type=OutputPath(stdout=False),
    default=None,
    help="Write to FILE instead of stdout (required for png).",
)
@guarded
def graph_command(spec: str, fmt: str, detail: str, output: Path | None) -> None:
    """Picture of the network with shapes on the edges, as Mermaid or DOT text, or SVG/PNG."""
    from resgen import files, pictures

    if fmt == "png" and output is None:
        raise click.UsageError("--format png writes binary data; give -o FILE")
    drawing = pictures.picture(compile_spec(spec), detail)
    if fmt in pictures.TEXT_FORMATS:
        data = (pictures.to_dot(drawing) if fmt == "dot" else pictures.to_mermaid(drawing)).encode("utf-8")
    else:
        try:
            data = pictures.render_image(pictures.to_dot(drawing), fmt, spec=spec)
        except pictures.GraphvizError as exc:
            fail(f"resgen: error: {exc}")
            return
    if output is None:
        click.echo(data, nl=False)
    else:
        files.write_atomic({output: data})
        click.echo(f"wrote {shown(output)}", err=True)


@main.command()
@click.argument("spec", metavar="SPEC")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option(
    "--input-size",
    type=(int, int),
    default=None,
    metavar="H W",
    callback=input_size,
    help="Build both models at H x W.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@guarded
def parity(spec: str, device: str, input_size: tuple[int, int] | None, fmt: str) -> None:
    """Build both targets, move weights both ways, compare outputs and one tap per stage."""
    from resgen import parity as harness
    from resgen.progress import steps

    compiled = buildable(compile_spec(spec, input_size=input_size))
    # on a terminal only (stderr), cleared when done: pipes and JSON output carry the report alone
    with steps(f"parity {compiled.name}", 1 + harness.CHECK_STEPS) as step:
        step("importing torch and Keras")
        import_frameworks_quietly()
        if device == "cuda":
            import torch

            if not torch.cuda.is_available():
                fail("resgen: error: --device cuda: no CUDA device is available")
        report = harness.check(compiled, device=device, progress=step)
    if fmt == "json":
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(harness.format_report(report))
    sys.exit(0 if report.passed else 1)


@main.group()
def weights() -> None:
    """Move weights between the torch and Keras outputs of a spec."""


@weights.command()
@click.argument("spec", metavar="SPEC")
@click.option(
    "--from",
    "source",
    type=(click.Choice(["torch", "keras"]), Path),
    required=True,
    metavar="FRAMEWORK FILE",
    help="torch .pt/.pth/.bin/.safetensors or keras .weights.h5/.safetensors",
)
@click.option(
    "--to", "target", type=(click.Choice(["torch", "keras"]), Path), required=True, metavar="FRAMEWORK FILE"
)
@guarded
def convert(spec: str, source: tuple[str, Path], target: tuple[str, Path]) -> None:
    """Convert a weight file of SPEC's torch output into its Keras output, or back."""
    from resgen import weights_io
    from resgen.weights_check import WeightsError

    compiled = buildable(compile_spec(spec))
    import_frameworks_quietly()
    try:
        count, notes = weights_io.convert(compiled, source[0], source[1], target[0], target[1])
    except WeightsError as exc:  # every problem on its own line, against the file at fault
        for line in exc.lines:
            click.echo(f"{shown(exc.path)}: error: {' '.join(line.split())}", err=True)
        sys.exit(2)
    for note in notes:
        click.echo(f"{shown(source[1])}: {note}", err=True)
    click.echo(f"wrote {count} tensors to {shown(target[1])}", err=True)


main.add_command(cli_start.show)
main.add_command(cli_start.new)
main.add_command(cli_export.export)
main.add_command(cli_import.import_command)
