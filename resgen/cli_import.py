"""``resgen import REF -o FILE [--input-size HxW] [--name NAME] [--force]``: a model in code as a spec."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from resgen.cli_common import OutputPath, fail, guarded
from resgen.errors import SpecErrors, shown

_SIZE = re.compile(r"\s*(\d{1,5})\s*(?:[xX×]\s*(\d{1,5})\s*)?")


def size_option(_ctx: click.Context, _param: click.Parameter, value: Any) -> tuple[int, int] | None:
    """--input-size HxW (or N for a square), each side from 1 to 4096."""
    if value is None:
        return None
    match = _SIZE.fullmatch(str(value))
    if match is None:
        raise click.BadParameter(
            f"{value!r}: write HEIGHTxWIDTH, such as 224x224", param_hint="'--input-size'"
        )
    height = int(match[1])
    width = int(match[2] or match[1])
    if not (1 <= height <= 4096 and 1 <= width <= 4096):
        raise click.BadParameter(
            f"{value}: height and width must each be between 1 and 4096", param_hint="'--input-size'"
        )
    return height, width


def name_option(_ctx: click.Context, _param: click.Parameter, value: Any) -> str | None:
    """--name: a valid spec name."""
    from resgen.spec import IDENTIFIER, name_problem

    if value is None:
        return None
    if not re.fullmatch(IDENTIFIER, value):
        raise click.BadParameter(
            f"{shown(value)!r}: a name is letters, digits and underscores, starting with a letter "
            "(at most 64)",
            param_hint="'--name'",
        )
    if problem := name_problem(value):
        raise click.BadParameter(problem, param_hint="'--name'")
    return value


@click.command(name="import")
@click.argument("reference", metavar="REF")
@click.option(
    "-o",
    "--output",
    type=OutputPath(stdout=True),
    required=True,
    help="The spec file to write, or - for stdout.",
)
@click.option(
    "--input-size",
    "size",
    default=None,
    metavar="HxW",
    callback=size_option,
    help="The input height and width (default: the size the model is published for).",
)
@click.option("--name", default=None, callback=name_option, help="The spec's name (default: the model's).")
@click.option("--force", is_flag=True, help="Replace an existing file that resgen did not write.")
@guarded
def import_command(
    reference: str, output: str, size: tuple[int, int] | None, name: str | None, force: bool
) -> None:
    """Write the spec of a model that exists in code: timm:NAME, torchvision:NAME, keras:NAME
    (keras.applications) or FILE.py:CALLABLE (a class or a function taking no arguments).

    The model is built with random weights (nothing is downloaded) and read exactly; what a spec
    cannot express is an error naming the module at fault, never an approximate spec.

    Example: resgen import timm:resnet50d -o resnet50d.yaml
    """
    from resgen import files
    from resgen.importers.document import reference_error
    from resgen.importers.errors import BadReference, NotExpressible
    from resgen.importers.reference import import_with_origin
    from resgen.importers.yaml_text import IMPORTED_PREFIX

    target = None if output == "-" else Path(output)
    if target is not None:  # refused before the model is built, which can take seconds
        files.refuse_special([target])
        if not force and files.not_generated([target], (files.GENERATED_PREFIX, IMPORTED_PREFIX)):
            fail(
                f"{shown(target)}: error: exists and was not written by resgen (its first line is not "
                f"'{IMPORTED_PREFIX} ...'); nothing was written. Use --force to replace it."
            )
    try:
        imported, origin = import_with_origin(reference, input_size=size, name=name)
    except (BadReference, NotExpressible) as exc:
        fail(str(reference_error(reference, exc)))
        return
    text = checked_text(imported, origin)
    if target is None:
        click.echo(text, nl=False)
        return
    files.write_atomic({target: text})
    click.echo(
        f"wrote {shown(target)} (spec {imported.data.get('name')}, imported from {shown(reference)})",
        err=True,
    )


def checked_text(imported: Any, origin: str) -> str:
    """The YAML of `imported`, after proving that it loads back to the same data and compiles."""
    from resgen import load
    from resgen.compiler import compile_document
    from resgen.importers.yaml_text import to_yaml

    text = to_yaml(imported, origin)
    doc = load.parse(text.encode("utf-8"), imported.source)
    if doc.data != imported.data:
        raise AssertionError(f"the YAML written for {imported.source} does not read back as its spec")
    try:
        compile_document(doc)
    except SpecErrors as exc:  # the import recognised something no spec holds: resgen's bug
        raise AssertionError(f"the spec imported from {imported.source} does not compile: {exc}") from None
    return text
