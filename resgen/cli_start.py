"""Commands for a place to start: ``resgen show PRESET`` and ``resgen new --from PRESET FILE``."""

from __future__ import annotations

import shlex

import click

from resgen.cli_common import guarded


@click.command()
@click.argument("preset", metavar="PRESET")
@guarded
def show(preset: str) -> None:
    """Print a preset's spec as YAML, every field described in a comment.

    Example: resgen show resnet50
    """
    from resgen import starter

    click.echo(starter.commented(preset), nl=False)


@click.command()
@click.option("--from", "preset", required=True, metavar="PRESET", help="The preset to start from.")
@click.argument("file", metavar="FILE")
@guarded
def new(preset: str, file: str) -> None:
    """Write a preset's spec to FILE (a new .yaml file) for editing; never replaces a file.

    The spec's name becomes FILE's name where that is a valid name.
    Example: resgen new --from resnet50 my_resnet.yaml
    """
    from resgen import starter

    name = starter.write_new(preset, file)
    quoted = shlex.quote(file)
    click.echo(f"wrote {file} (spec {name}, from preset {preset}); edit it, then run", err=True)
    click.echo(f"  resgen validate {quoted} && resgen render {quoted} --target torch", err=True)
