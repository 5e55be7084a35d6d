"""What every command shares: located errors instead of tracebacks, and compiling several specs."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from resgen.compiler import Compiled, compile_spec
from resgen.errors import SpecErrors

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> None:
    """Print one line (whatever the message holds) and exit 2."""
    click.echo(" ".join(message.split()), err=True)
    sys.exit(2)


def guarded(func: F) -> F:
    """Turn every failure into located messages on stderr and exit code 2; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from resgen.generate import RenderError

        try:
            return func(*args, **kwargs)
        except SpecErrors as exc:
            for error in exc.errors:
                click.echo(str(error), err=True)
            sys.exit(2)
        except RenderError as exc:
            fail(f"resgen: error: {exc}")
        except BrokenPipeError:
            sys.stderr.close()
            sys.exit(0)
        except OSError as exc:
            where = exc.filename or "resgen"
            fail(f"{where}: error: {exc.strerror or exc}")
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug in resgen: say so in one line
            fail(
                f"resgen: internal error: {type(exc).__name__}: {exc}. "
                "This is a bug in resgen; please report it with the spec that caused it."
            )

    return wrapper  # type: ignore[return-value]


def compile_all(specs: tuple[str, ...]) -> list[Compiled]:
    """Compile every spec, reporting all failing specs before giving up."""
    compiled: list[Compiled] = []
    errors = []
    for arg in specs:
        try:
            compiled.append(compile_spec(arg))
        except SpecErrors as exc:
            errors.extend(exc.errors)
    if errors:
        raise SpecErrors(errors)
    return compiled
