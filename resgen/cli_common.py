"""What every command shares: one-line errors and exit code 2, the ``--debug`` switch, output paths.

`guarded` turns each failure into one line on stderr: a located spec error, a file error naming the file,
the extra to install when a framework is missing, or (for a bug in resgen) an "internal error" line
asking for a report. With ``resgen --debug`` or ``RESGEN_DEBUG=1`` the traceback is printed first, for
bug reports.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from resgen.compiler import Compiled, compile_spec
from resgen.errors import SpecErrors, shown
from resgen.files import OutputError

F = TypeVar("F", bound=Callable[..., Any])

# Modules that parity, weights and import need, and the extra that installs them.
FRAMEWORK_EXTRA = "frameworks"
OPTIONAL_MODULES = frozenset(
    {"torch", "torchvision", "numpy", "keras", "tensorflow", "jax", "safetensors", "h5py", "timm"}
)
_debug = {"on": False}


def set_debug(on: bool) -> None:
    """Print tracebacks of failures (``resgen --debug``); RESGEN_DEBUG=1 does the same."""
    _debug["on"] = on


def debugging() -> bool:
    return _debug["on"] or os.environ.get("RESGEN_DEBUG", "") not in ("", "0")


def fail(message: str) -> None:
    """Print one line (whatever the message holds) and exit 2."""
    click.echo(" ".join(message.split()), err=True)
    sys.exit(2)


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The message for a framework that is not installed, or None when `exc` is about something else."""
    top = (exc.name or "").split(".")[0]
    if top not in OPTIONAL_MODULES:
        return None
    ctx = click.get_current_context(silent=True)
    command = f"`{ctx.command_path}`" if ctx is not None else "this command"
    return (
        f"resgen: error: {command} needs {top}, which is not installed; "
        f"install the frameworks extra: pip install 'resgen[{FRAMEWORK_EXTRA}]'"
    )


def guarded(func: F) -> F:
    """Turn every failure into located messages on stderr and exit code 2; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from resgen.generate import RenderError

        try:
            return func(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except BrokenPipeError:
            sys.stderr.close()
            sys.exit(0)
        except Exception as exc:
            _report(exc, RenderError)
            raise

    return wrapper  # type: ignore[return-value]


def _report(exc: BaseException, render_error: type[Exception]) -> None:
    """Print `exc` as one line (or one per spec error) and exit 2; return for what is not ours."""
    if isinstance(exc, SpecErrors):
        for error in exc.errors:
            click.echo(str(error), err=True)
        sys.exit(2)
    if isinstance(exc, OutputError | render_error):
        fail(str(exc) if isinstance(exc, OutputError) else f"resgen: error: {exc}")
    if isinstance(exc, ModuleNotFoundError) and (message := missing_extra(exc)):
        fail(message)
    if isinstance(exc, OSError):
        where = shown(exc.filename) if exc.filename else "resgen"
        fail(f"{where}: error: {exc.strerror or exc}")
    if isinstance(exc, Exception):  # a bug in resgen: say so in one line
        if debugging():
            traceback.print_exception(exc, file=sys.stderr)
        fail(
            f"resgen: internal error: {type(exc).__name__}: {exc}. "
            "This is a bug in resgen; please report it with the spec that caused it "
            "(run with --debug for the traceback)."
        )


class OutputPath(click.ParamType):
    """A file to write: never empty, never a directory (a trailing slash names one); ``-`` is stdout
    where `stdout` allows it."""

    name = "FILE"

    def __init__(self, *, stdout: bool) -> None:
        self.stdout = stdout

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, Path):
            return value
        text = str(value)
        if text == "-" and self.stdout:
            return text
        if not text.strip():
            self.fail("the path is empty; give a file name", param, ctx)
        if text.endswith(("/", os.sep)) or os.path.isdir(text):
            self.fail(f"'{shown(text)}' is a directory; give a file name", param, ctx)
        return Path(text) if not self.stdout else text


class OutputDir(click.ParamType):
    """A directory to write into: never empty (that would be the current directory by accident), never
    an existing file."""

    name = "DIR"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = os.fspath(value)
        if not text.strip():
            self.fail("the path is empty; give a directory", param, ctx)
        if os.path.lexists(text) and not os.path.isdir(text):
            self.fail(f"'{shown(text)}' is not a directory", param, ctx)
        return Path(text)


def shell_quote(arg: str) -> str:
    """`arg` quoted for a shell command line users copy; bash's $'...' where it has control characters,
    so that the line printed is one line and carries no escapes."""
    if arg.isprintable():
        return shlex.quote(arg)
    body = "".join(
        ch if ch.isprintable() and ch not in "\\'" else ("\\" + ch if ch in "\\'" else _escape(ch))
        for ch in arg
    )
    return f"$'{body}'"


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def input_size(_ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
    """--input-size H W: both between 1 and 4096, as the spec's input section allows."""
    if value is not None and not all(1 <= side <= 4096 for side in value):
        raise click.BadParameter(
            f"{value[0]} {value[1]}: height and width must each be between 1 and 4096",
            param_hint="'--input-size'",
        )
    return value


def buildable(compiled: Compiled) -> Compiled:
    """`compiled`, or exit 2 before anything is allocated when it is too large to build."""
    from resgen.report import size_problem

    if problem := size_problem(compiled):
        fail(f"{shown(compiled.doc.file)}: error: {problem}")
    return compiled


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
    with contextlib.suppress(ImportError):  # Triton's native library (torch.export, ONNX export) too:
        import triton.runtime  # noqa: F401  loaded after TensorFlow's, it crashes the process
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
