"""What every command shares: located errors instead of tracebacks, and compiling several specs."""

from __future__ import annotations

import contextlib
import functools
import os
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


def import_frameworks_quietly() -> None:
    """Import torch, then Keras with TensorFlow, before a command that needs both (parity, weights).

    TensorFlow's native code writes log lines straight to the process's stderr while it loads (its
    oneDNN notice, absl's "All log messages before absl::InitializeLog()"), which no Python setting
    silences; they are not results. stderr is pointed at /dev/null for the import only, so every
    message of resgen's own, and any error of the import itself, still shows.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with contextlib.suppress(ImportError):
        import torch  # noqa: F401  (first: torch's extensions load cleanly before TensorFlow's)
    if "keras" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as sink:
            os.dup2(sink.fileno(), 2)
            with contextlib.suppress(ImportError):
                import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
