"""Generated source as a module object, in memory: no file, no folder, no lasting `sys.modules` entry.

resgen runs the source it renders (the parity harness, weight conversion, the tests and benchmarks).
`import_generated` compiles that text under a pseudo file name, ``<resgen-generated NAME HASH>``, whose
lines it registers in `linecache` (memory, not a file): tracebacks then show the generated lines, and
`inspect.getsource` works on the module and on its functions and methods (not on its classes, whose
file inspect finds through `sys.modules`). The module is placed in `sys.modules` only while its
top-level code runs and taken out afterwards, whether that code succeeds or raises, so calling it a
thousand times leaves nothing behind but the source lines in `linecache` (one entry per distinct name
and text).

This module imports no framework; the source it runs imports what it needs.
"""

from __future__ import annotations

import hashlib
import linecache
import sys
import types

PSEUDO_FILE_PREFIX = "<resgen-generated "


def pseudo_filename(source: str, name: str) -> str:
    """The file name tracebacks show for `source` imported as `name` (unique per name and text)."""
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:12]
    return f"{PSEUDO_FILE_PREFIX}{name} {digest}>"


def import_generated(source: str, name: str) -> types.ModuleType:
    """Run `source` as a fresh module called `name` and return it, leaving nothing behind.

    The module's ``__name__`` is `name` (classes defined in it report it as their ``__module__``) and
    its ``__file__`` the pseudo file name from `pseudo_filename`, whose lines are kept in `linecache` so
    that tracebacks and `inspect.getsource` find them. While the top-level code runs, the module is
    registered in `sys.modules` under `name` (code that looks itself up there works); afterwards,
    also when that code raises, the entry is removed, and a module that was registered under `name`
    before the call is put back. Every call gives a new module object, even for the same source.
    A `SyntaxError` or the top-level code's exception propagates unchanged.
    """
    filename = pseudo_filename(source, name)
    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    # mtime None: linecache.checkcache leaves the entry alone (there is no file to compare it with).
    linecache.cache[filename] = (len(source), None, lines, filename)
    code = compile(source, filename, "exec", dont_inherit=True)
    module = types.ModuleType(name)
    module.__file__ = filename
    missing = object()
    previous = sys.modules.get(name, missing)
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)
    finally:
        if previous is missing:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
    return module
