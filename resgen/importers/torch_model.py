"""A torch model (torchvision, timm, a Python file, resgen's own generated code) recognised as a spec.

The model's forward is traced (`torch_trace`), its trunk split into stem, residual blocks and head
(`torch_structure`), each block read (`torch_blocks`), the stem and head read (`torch_ends`), and
the blocks grouped into stages (`torch_stages`). Whatever the spec language cannot say is refused
with the module path and the construct; nothing is approximated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from resgen.importers.errors import NotExpressible
from resgen.importers.result import ImportedSpec
from resgen.importers.torch_blocks import BlockRead, read_block
from resgen.importers.torch_ends import read_head, read_stem
from resgen.importers.torch_settings import network_settings, stated_l2
from resgen.importers.torch_stages import read_stages
from resgen.importers.torch_structure import Block, Item, Token, tokens
from resgen.importers.torch_trace import TraceOp, trace

if TYPE_CHECKING:
    import torch


def _channels(model: torch.nn.Module) -> int:
    from torch import nn

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return int(m.in_channels)
    raise NotExpressible("", "a model without a 2-D convolution is not expressible")


def _is_op(token: Token, kind: str) -> bool:
    return isinstance(token, TraceOp) and token.kind == kind


def _preact_prefix(before: list[Token], block: Block) -> list[Item]:
    """The norm and ReLU just before a pre-activation block whose shortcut reads their output."""
    if (
        len(before) >= 2
        and block.shortcut
        and _is_op(before[-1], "relu")
        and _is_op(before[-2], "norm")
        and block.split is before[-1]
    ):
        return [before[-2], before[-1]]  # type: ignore[list-item]
    return []


def _split(toks: list[Token]) -> tuple[list[Token], list[BlockRead], list[Token], bool]:
    """Stem tokens, the blocks read, head tokens, and whether the blocks are pre-activation."""
    where = [k for k, t in enumerate(toks) if isinstance(t, Block)]
    if not where:
        raise NotExpressible("", "a model without residual additions is not a ResNet the spec can express")
    after_first = toks[where[0] + 1] if where[0] + 1 < len(toks) else None
    preact = not (after_first is not None and _is_op(after_first, "relu"))
    stem = list(toks[: where[0]])
    reads: list[BlockRead] = []
    between: list[Token] = stem
    for n, k in enumerate(where):
        block = toks[k]
        assert isinstance(block, Block)
        prefix = _preact_prefix(between, block) if preact else []
        if prefix:
            del between[-2:]
        if n and between:
            raise NotExpressible(
                between[0].path,
                f"{between[0].kind} between residual blocks is not expressible",
            )
        source = "preactivated" if prefix else "input"
        reads.append(read_block(block, prefix, source))
        end = where[n + 1] if n + 1 < len(where) else len(toks)
        between = list(toks[k + 1 : end])
        if not preact:
            if not between or not _is_op(between[0], "relu"):
                raise NotExpressible(
                    block.path,
                    "a block without ReLU after its addition, among blocks with one, is not expressible",
                )
            between.pop(0)
    return stem, reads, between, preact


def _torch_paths(reads: list[BlockRead]) -> str:
    parts = reads[0].path.split(".")
    return (
        "timm_resnetv2"
        if len(parts) == 4 and parts[0] == "stages" and parts[2] == "blocks"
        else "torchvision"
    )


def _summary(data: dict[str, Any]) -> str:
    """One line for people: blocks per stage, block design, stem."""
    block, stem = data["block"], data["stem"]
    mixed = any("block" in s for s in data["stages"])
    kind = ("pre-activation " if block.get("preactivation") else "") + (
        "basic and bottleneck" if mixed else block["kind"]
    )
    counts = ", ".join(str(s["blocks"]) for s in data["stages"])
    stem_text = (
        f"a {stem['kernel_size']}x{stem['kernel_size']} stem convolution"
        if stem["kind"] == "conv"
        else f"a deep stem ({', '.join(map(str, stem['widths']))})"
    )
    return f"{len(data['stages'])} stages of {kind} blocks ({counts}) after {stem_text}."


def _check_compiles(data: dict[str, Any], ops: list[TraceOp]) -> None:
    """A spec the recogniser assembled but the compiler refuses is a construct the language lacks;
    one whose parameter count differs from the layers the model runs is a construct it misread."""
    from resgen import api
    from resgen.errors import SpecErrors

    try:
        compiled = api.compile(data)
    except SpecErrors as errors:
        first = str(errors).splitlines()[0].split("error: ", 1)[-1]
        raise NotExpressible("", f"{first} (the spec language cannot say this)") from None
    modules = {id(op.module): op.module for op in ops if op.module is not None}
    theirs = sum(p.numel() for m in modules.values() for p in m.parameters())
    ours = compiled.analysis.totals()["params"]
    if ours != theirs:
        raise NotExpressible(
            "",
            f"the recognised spec has {ours:,} parameters, the layers the model runs {theirs:,}: "
            "a construct the importer does not read",
        )


def spec_from_torch(
    model: torch.nn.Module, *, name: str, input_size: tuple[int, int], source: str
) -> ImportedSpec:
    """The spec that reproduces `model` (an instantiated torch.nn.Module), traced at `input_size`."""
    channels = _channels(model)
    ops = trace(model, input_size, channels)
    toks = tokens(ops)
    stem_tokens, reads, head_tokens, preact = _split(toks)
    notes: dict[str, str] = {}
    if not head_tokens:
        raise NotExpressible(
            reads[-1].path,
            "a model returning its last stage's feature map (no pooling, no classifier) is not expressible",
        )
    try:
        stem, stem_convs = read_stem(stem_tokens, notes)
        head, classifier = read_head(head_tokens, notes)
    except NotExpressible as error:  # functional code in the model's own forward has no module path
        if error.where:
            raise
        raise NotExpressible("forward", error.construct) from None
    block, stages, shortcut = read_stages(reads, preact, notes)
    data: dict[str, Any] = {
        "format_version": 1,
        "name": name,
        "description": f"imported from {source}"[:500],
        "input": {"height": input_size[0], "width": input_size[1], "channels": channels},
        "stem": stem,
        "block": block,
        "stages": stages,
        "shortcut": shortcut,
    }
    data.update(network_settings(ops, reads, stem_convs, classifier, notes))
    l2 = stated_l2(model, notes)
    if l2:
        data["regularization"] = {**data.get("regularization", {}), **l2}
    data["head"] = head
    paths = _torch_paths(reads)
    if paths != "torchvision":
        data["torch_paths"] = paths
        notes["torch_paths"] = "timm's ResNetV2 module paths (stem.conv, stages.0.blocks.0, head.fc)"
    _check_compiles(data, ops)
    header = ("Every layer read from the traced torch model (torch.fx).", _summary(data))
    return ImportedSpec(data=data, source=source, notes=header, field_notes=notes)
