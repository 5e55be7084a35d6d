"""PyTorch backend: the view model of templates/torch/ for one layer graph.

The generated module reads like torchvision's ``models/resnet.py``: ``conv3x3``/``conv1x1``
helpers, one block class with ``expansion``, and a ``ResNet`` class whose ``_make_layer`` builds
every stage in a loop, so the file grows with the number of stages, not with depth. Module paths are
torchvision's (`resgen.naming.torch_path`), so torchvision state dicts load with ``strict=True``.

Where the code comes from:

- the stem and the head are written layer by layer, in graph order, by the handlers of
  `resgen.backends.pytorch_layers` (one per op kind);
- the block class, ``_make_layer`` and ``_shortcut`` are written from the blocks' layers and the
  network's block design and shortcut rule (`resgen.backends.pytorch_blocks`);
- BatchNorm, L2 and padding settings are the network's, stated once (`resgen.graph.Network`).

Options beyond torchvision: ``build_model(channels_last=True)``; ``build_model(sync_batchnorm=True)``
(BatchNorm networks), every BatchNorm2d as nn.SyncBatchNorm for multi-GPU DistributedDataParallel; and
``fuse_batchnorm(model)``, an inference copy with each BatchNorm that reads only a convolution folded
into it.
"""

from __future__ import annotations

from typing import Any

from resgen.backends import (
    blocks,
    pytorch_backbone,
    pytorch_blocks,
    pytorch_freeze,
    pytorch_fuse,
    pytorch_helpers,
    pytorch_stages,
)
from resgen.backends.pytorch_layers import HANDLERS, Code, Context
from resgen.codegen import CodegenError, call_lines, comment, docstring, indented, literal, plural
from resgen.graph import (
    LayerGraph,
    PadMode,
    Scope,
)
from resgen.passes import Analysis

template = "torch/model.py.j2"
allowed_imports = frozenset(
    {"__future__", "collections", "copy", "math", "torch"}
)  # the generated module needs nothing else

MODEL_CLASS = "ResNet"


def _top_level(scope: Scope, ctx: Context, seen: set[str]) -> tuple[list[str], list[str]]:
    """__init__ and forward lines of the stem or the head, layer by layer in graph order.

    Layers whose paths are places in one nn.Sequential become that Sequential, built in one statement
    and called once: numbered places (timm's deep stem: conv1.0, conv1.1, ...) or named ones (timm's
    ResNetV2: stem.conv, stem.pool; head.fc), the latter through an OrderedDict.
    """
    init: list[str] = []
    forward: list[str] = []
    scoped = [x for x in ctx.graph if x.scope is scope]
    codes = [HANDLERS[x.kind](x, ctx) for x in scoped]
    taps = pytorch_backbone.stem_taps(ctx.graph)
    i = 0
    while i < len(codes):
        code = codes[i]
        parent, _, place = (code.attr or "").partition(".")
        if place:
            run: list[Code] = []
            for c in codes[i:]:
                if (c.attr or "").partition(".")[0] != parent:
                    break
                run.append(c)
            places = [(c.attr or "").partition(".")[2] for c in run]
            if place.isdigit() and places != [str(n) for n in range(len(run))]:
                raise CodegenError(f"{parent}: the places of its nn.Sequential are not 0, 1, 2, ...")
            if not place.isdigit() and not all(p.isidentifier() for p in places):
                raise CodegenError(f"{parent}: the places of its nn.Sequential are not all names")
            if place.isdigit():
                init += ["self." + parent + " = nn.Sequential(", *(f"    {c.ctor}," for c in run), ")"]
            else:  # named places, each with its comments, laid out at the OrderedDict's indentation
                entries: list[str] = []
                for c, name in zip(run, places, strict=True):
                    entries += [line for note in c.notes for line in comment(note, ctx.indent + 8)]
                    entries += call_lines(f"{name}={c.call[0]}", c.call[1], ctx.indent + 8, ",")
                init += [
                    f"self.{parent} = nn.Sequential(",
                    "    OrderedDict(",
                    *indented(entries, 2),
                    "    )",
                    ")",
                ]
            forward.append(f"x = self.{parent}(x)")
            if any(x.name in taps for x in scoped[i : i + len(run) - 1]):
                raise CodegenError(f"{parent}: a feature tap inside its nn.Sequential")
            if scoped[i + len(run) - 1].name in taps:
                forward.append(pytorch_backbone.keep())
            seen.add(parent)
            i += len(run)
            continue
        if code.attr is None or code.attr not in seen:  # one module per path (a ReLU is reused)
            init += code.init
        if code.attr is not None:
            seen.add(code.attr)
        forward += code.forward
        if scoped[i].name in taps:
            forward.append(pytorch_backbone.keep())
        i += 1
    return init, forward


def view_model(graph: LayerGraph, analysis: Analysis) -> dict[str, Any]:
    """Every value templates/torch/model.py.j2 prints, already turned into code text."""
    net = graph.network
    tf_same = net.padding is PadMode.TF_SAME
    ctx = Context(graph, analysis, "Conv2dSame" if tf_same else "nn.Conv2d")
    biases = {x.op.bias for x in graph.of_kind("conv2d")}  # type: ignore[union-attr]
    # one setting for every convolution, or None: it differs by layer (the helpers then take bias)
    shared_bias = next(iter(biases)) if len(biases) == 1 else (False if not biases else None)

    seen: set[str] = set()
    stem_init, stem_forward = _top_level(Scope.STEM, ctx, seen)
    head_init, head_forward = _top_level(Scope.HEAD, ctx, seen)
    views = blocks.kind_views(graph)
    classes = [pytorch_blocks.block_view(view, shared_bias) for view in views]
    owners = [(view, block["name"]) for view, block in zip(views, classes, strict=True)]
    stage_classes = [classes[i]["name"] for i in blocks.stage_kinds(graph)]
    stages = pytorch_stages.stages_view(graph, stage_classes, shared_bias)
    return {
        "module_doc": pytorch_helpers.module_doc(graph, analysis),
        "bn": pytorch_helpers.bn_view(graph),
        "l2_lines": pytorch_helpers.l2_lines(graph),
        "l2_paths": pytorch_helpers.l2_paths_view(graph),
        "drop_path_lines": pytorch_helpers.drop_path_lines(graph),
        "helper_sections": pytorch_helpers.helper_sections(graph),
        "se": pytorch_helpers.se_view(graph),
        "eca": pytorch_helpers.eca_view(graph),
        "std_conv": pytorch_helpers.std_conv_view(graph),
        "stdlib_imports": pytorch_helpers.stdlib_imports(graph),
        "tail_sections": ["torch/param_groups.py.j2"] if graph.network.l2.any else [],
        **pytorch_helpers.conv_helpers_view(graph, ctx.conv_class, shared_bias),
        "blocks": classes,
        "model": {
            "name": MODEL_CLASS,
            "docstring": docstring(
                [
                    _model_summary(graph, stage_classes),
                ],
                4,
            ),
            "init_params": "self" if graph.classes is None else f"self, num_classes: int = {graph.classes}",
            "in_planes": literal(graph.blocks[0].in_channels),
            "stem_init": stem_init,
            "forward_type": pytorch_backbone.forward_type(graph),
            "stem_forward": [*pytorch_backbone.forward_setup(graph), *stem_forward],
            "head_init": [*head_init, *pytorch_backbone.feature_info(graph, analysis)],
            "init_weights": [
                *pytorch_helpers.init_lines(graph, owners),
                *pytorch_freeze.init_lines(graph),
            ],
            "head_forward": pytorch_backbone.head_forward(graph, head_forward),
            **stages,
            "methods": [*stages["methods"], *pytorch_freeze.methods(graph, MODEL_CLASS)],
            "stage_forward": pytorch_backbone.stage_forward(graph, stages["stage_forward"]),
        },
        "build_doc": docstring(
            [
                f"The network of spec {net.name}, freshly initialized.",
                *(
                    []
                    if graph.classes is None
                    else [
                        f"num_classes sets the classifier's outputs (the spec's: {graph.classes}), as "
                        "torchvision's constructors do: to fine-tune on another label set, build with "
                        "yours and load the other weights with ``strict=False`` or without the "
                        "classifier."
                    ]
                ),
                "channels_last=True stores the convolution weights in torch.channels_last (NHWC) "
                "memory format, often faster on GPUs and with oneDNN on CPUs; feed it inputs "
                "converted with ``x.to(memory_format=torch.channels_last)``. The function it "
                "computes is the same.",
                *_sync_doc(graph),
            ],
            4,
        ),
        "fuse": pytorch_fuse.fuse_view(graph, owners, MODEL_CLASS),
        **_build_model_view(graph),
    }


def _model_summary(graph: LayerGraph, stage_classes: list[str]) -> str:
    """The model class's first docstring line: its stages, their block classes and block counts."""
    net = graph.network
    counts = [s.blocks for s in net.stages]
    if len(set(stage_classes)) == 1:
        return (
            f"{net.name}: {plural(len(net.stages), 'stage')} of {stage_classes[0]} blocks "
            f"({', '.join(str(n) for n in counts)})."
        )
    runs = ", ".join(f"{n} {name}" for n, name in zip(counts, stage_classes, strict=True))
    return f"{net.name}: {plural(len(net.stages), 'stage')}, each of its own block class ({runs})."


def _build_model_view(graph: LayerGraph) -> dict[str, Any]:
    """build_model's signature and the model class's arguments: num_classes where there is a
    classifier (a backbone has none)."""
    params = ["channels_last: bool = False"]
    if graph.classes is not None:
        params.insert(0, f"num_classes: int = {graph.classes}")
    sync = not graph.network.norm.group  # GroupNorm has no batch statistics to synchronize
    if sync:
        params.append("sync_batchnorm: bool = False")
    signature = call_lines("def build_model", ["*", *params], 0, f" -> {MODEL_CLASS}:")
    return {
        "build_signature": signature,
        "model_args": "" if graph.classes is None else "num_classes=num_classes",
        "build_sync": (
            [
                "if sync_batchnorm:",
                "    model = nn.SyncBatchNorm.convert_sync_batchnorm(model)",
            ]
            if sync
            else []
        ),
    }


def _sync_doc(graph: LayerGraph) -> list[str]:
    """build_model's paragraph on sync_batchnorm (BatchNorm networks only)."""
    if graph.network.norm.group:
        return []
    return [
        "sync_batchnorm=True converts every BatchNorm2d to nn.SyncBatchNorm, for "
        "DistributedDataParallel on several GPUs: each BatchNorm then uses the statistics of "
        "the whole global batch. State dict keys are unchanged.",
    ]
