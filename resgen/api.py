"""The public Python API: what the command line and the tests call.

    import resgen

    net = resgen.compile("resnet50")                 # a preset, a .yaml/.json path, a dict or a Spec
    timm_net = resgen.compile("timm:resnet50d")      # or a model in code, imported exactly
    source = resgen.render(net, "torch")             # generated PyTorch source, as text
    print(resgen.summary(net)["params"])             # 25557032
    report = resgen.check(net, "keras", out_dir="models/keras")
    change = resgen.diff("resnet50", "resnet101")    # a semantic architecture diff

Every function raises `resgen.SpecErrors` for a spec that is not valid, each error located at the
field responsible (``FILE:LINE:COL: error: field.path: message``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resgen import compiler, files
from resgen.compiler import Compiled
from resgen.spec import Spec

if TYPE_CHECKING:
    from resgen.diffs import SpecDiff

Source = str | os.PathLike[str] | Mapping[str, Any] | Spec | Compiled


def compile(source: Source, *, input_size: tuple[int, int] | None = None) -> Compiled:
    """Load, validate, lower and analyse a spec.

    `source` is a preset name, a path to a .yaml/.yml/.json file, a model that exists in code
    (``timm:resnet50d``, ``torchvision:resnet50``, ``keras:ResNet50V2``, ``models.py:resnet20``: see
    `resgen.importers.reference`), the spec as a dict (as a file would hold it), a
    `resgen.spec.Spec`, or an already compiled network (returned as it is unless `input_size` asks
    for another height and width).
    """
    if isinstance(source, Compiled):
        if input_size is None:
            return source
        return compiler.compile_document(compiler.with_input_size(source.doc, *input_size))
    if isinstance(source, Spec):
        source = source.model_dump(mode="json")
    if isinstance(source, Mapping):
        return compiler.compile_data(dict(source), input_size=input_size)
    return compiler.compile_spec(os.fspath(source), input_size=input_size)


def render(network: Source, target: str) -> str:
    """The generated source of `network` for `target` ("torch" or "keras"), as text."""
    from resgen import generate

    return generate.render(compile(network), target)


def summary(network: Source) -> dict[str, Any]:
    """What ``resgen summary --format json`` prints: totals and one row per layer."""
    from resgen import report

    return report.summary(compile(network))


def diff(old: Source, new: Source) -> SpecDiff:
    """The semantic architecture diff of two specs; ``.same`` is True for the same network."""
    from resgen import diffs

    return diffs.diff(compile(old), compile(new))


def check(
    networks: Source | Sequence[Source],
    target: str,
    *,
    output: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
) -> files.CheckReport:
    """Compare what ``resgen render`` would write with the files on disk; write nothing.

    Give `output` (one network, one file) or `out_dir` (NAME.py per network). The report lists
    the files that are up to date, stale or missing (each with its unified diff) and, in `out_dir`,
    orphans: files resgen generated for `target` that none of the networks renders any more.
    """
    from resgen import generate

    if isinstance(networks, (str, os.PathLike, Mapping, Spec, Compiled)):
        networks = [networks]
    compiled = [compile(n) for n in networks]
    if (output is None) == (out_dir is None):
        raise ValueError("give output or out_dir")
    if output is not None and len(compiled) != 1:
        raise ValueError("output takes one network; use out_dir for several")
    texts = {
        files.destination(c.name, output=output, out_dir=out_dir): generate.render(c, target)
        for c in compiled
    }
    return files.check(texts, target, out_dir=Path(out_dir) if out_dir is not None else None)
