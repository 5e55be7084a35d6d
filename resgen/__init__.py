"""resgen: a ResNet architecture-spec compiler.

One declarative spec (YAML, JSON, a dict) becomes verified PyTorch and Keras 3 source. The public
API, which the ``resgen`` command line is built on:

- `compile` (a preset name, a spec file, a dict or a `Spec`) gives a `Compiled` network;
- `render` gives its generated source for a target ("torch" or "keras");
- `check` compares generated files on disk with what `render` gives (``resgen render --check``);
- `summary` gives its layers, shapes, parameters and MACs (``resgen summary --format json``);
- `diff` compares two architectures (``resgen diff``).

The pipeline behind it, one module per stage: load -> spec -> lower -> passes -> backends ->
generate; cli drives it.
"""

from resgen.api import Source, check, compile, diff, render, summary
from resgen.compiler import Compiled
from resgen.errors import SpecError, SpecErrors
from resgen.spec import Spec

__version__ = "0.1.0"

__all__ = [
    "Compiled",
    "Source",
    "Spec",
    "SpecError",
    "SpecErrors",
    "__version__",
    "check",
    "compile",
    "diff",
    "render",
    "summary",
]
