"""Weight and layer names of both targets, derived from the graph's canonical node names.

The torch target follows torchvision's module paths (``conv1``, ``bn1``, ``layer2.0.conv2``,
``layer2.0.downsample.0``, ``fc``) so torchvision state dicts load with ``strict=True``; timm's
ResNet family keeps them. A network asking for timm's ResNetV2 paths (`TorchPaths.TIMM_RESNETV2`)
gets those instead (``stem.conv``, ``stages.1.blocks.0.norm1``, ``...downsample.conv``, ``norm``,
``head.fc``), so timm's resnetv2 state dicts load strictly too. The Keras
target follows keras.applications' layer names (``conv1_conv``, ``conv3_block1_0_conv``,
``conv3_block1_2_bn``, ``post_bn``, ``predictions``) so its weights load by name. Where neither
reference has the layer (the input BatchNorm of Rosebrock's tutorial, pre-activation blocks in
torch), the names follow the same scheme.

Block roles map one to one: ``convN``/``bnN`` <-> ``_N_conv``/``_N_bn``, the projection shortcut
``downsample.0``/``downsample.1`` <-> ``_0_conv``/``_0_bn``, the pre-activation ``preact_bn`` <->
``_preact_bn``.
"""

from __future__ import annotations

from resgen.graph import Layer, LayerGraph, Scope, TorchPaths

_TORCH_STEM = {
    "input_bn": "input_bn",
    "pool_conv": "maxpool.0",  # timm's replace_stem_pool keeps the name maxpool
    "pool_bn": "maxpool.1",
    "pool_relu": "maxpool.2",
    "conv": "conv1",
    "bn": "bn1",
    "relu": "relu",
    "pool": "maxpool",
}
# timm's resnetblur stems: nn.Sequential(max-pool with stride 1, blur pool carrying the stride)
_TORCH_BLUR_STEM = {"pool": "maxpool.0", "pool_aa": "maxpool.1"}
_KERAS_STEM = {
    "input_bn": "input_bn",
    "pool_conv": "pool1_conv",
    "pool_bn": "pool1_bn",
    "pool_relu": "pool1_relu",
    "conv": "conv1_conv",
    "bn": "conv1_bn",
    "relu": "conv1_relu",
    "pool": "pool1_pool",
    "pool_aa": "pool1_aa",
}
_TORCH_HEAD = {
    "bn": "post_bn",
    "relu": "relu",
    "pool": "avgpool",
    "dropout": "dropout",
    "fc": "fc",
}
_KERAS_HEAD = {
    "bn": "post_bn",
    "relu": "post_relu",
    "pool": "avg_pool",
    "flatten": "flatten",
    "dropout": "dropout",
    "fc": "predictions",
}
_TORCH_BLOCK = {
    "shortcut_conv": "downsample.0",
    "shortcut_bn": "downsample.1",
    "shortcut_pool": "downsample",
    "shortcut_pad": "downsample",
    "preact_relu": "relu",
    "relu1": "relu",
    "relu2": "relu",
    "out_relu": "relu",
    "se_fc1": "se.fc1",  # timm's SEModule
    "se_act": "se.act",
    "se_fc2": "se.fc2",
    "eca_conv": "se.conv",  # timm names every attention module of a block `se`
    "aa": "aa",  # timm's anti-aliasing pool
    "drop_path": "drop_path",  # timm's
}
# timm's avg_down shortcut: nn.Sequential(pool or nn.Identity(), conv, BatchNorm), in every block of
# such a network, so its convolution is downsample.1 even where the block does not stride.
_TIMM_AVG_DOWN = {
    "shortcut_pool": "downsample.0",
    "shortcut_conv": "downsample.1",
    "shortcut_bn": "downsample.2",
}
# timm's ResNetV2: nn.Sequential stem and head with named places; its norm layers apply the ReLU
# themselves (BatchNormAct2d, GroupNormAct), so the ReLUs here are parameter-free modules beside them.
# timm has no anti-aliased ResNetV2 stem pool; its blur pool (no weights) is stem.aa, as a block's is aa.
_TIMM_V2_STEM = {
    "conv": "stem.conv",
    "pool": "stem.pool",
    "pool_aa": "stem.aa",
    "bn": "stem.norm",
    "relu": "stem.act",
}
_TIMM_V2_HEAD = {
    "bn": "norm",
    "relu": "relu",
    "pool": "head.global_pool",
    "dropout": "head.drop",
    "fc": "head.fc",
    "flatten": "head.flatten",
}
_TIMM_V2_BLOCK = {
    "preact_bn": "norm1",
    "bn1": "norm2",
    "bn2": "norm3",
    "preact_relu": "relu",
    "relu1": "relu",
    "relu2": "relu",
    "shortcut_conv": "downsample.conv",
    "shortcut_pool": "downsample.pool",
}
_KERAS_BLOCK = {
    "preact_bn": "preact_bn",
    "preact_relu": "preact_relu",
    "shortcut_conv": "0_conv",
    "shortcut_bn": "0_bn",
    "shortcut_pool": "0_pool",
    "shortcut_pad": "0_pad",
    "out_relu": "out",
    "aa": "aa",
    "se_pool": "se_squeeze",  # as keras.applications' EfficientNet names its squeeze-and-excitation
    "se_fc1": "se_reduce",
    "se_act": "se_relu",
    "se_fc2": "se_expand",
    "se_gate": "se_gate",
    "se_scale": "se_excite",
    "eca_pool": "eca_squeeze",
    "eca_conv": "eca_conv",
    "eca_gate": "eca_gate",
    "eca_scale": "eca_excite",
    "drop_path": "drop_path",
}


# Layers the torch target computes with a function, not a module of their own, by kind and by role.
_TORCH_FUNCTIONAL = frozenset({"input", "add", "flatten", "softmax", "sigmoid", "scale"})
_TORCH_FUNCTIONAL_ROLES = frozenset({"se_pool", "eca_pool"})


def _timm_v2(graph: LayerGraph) -> bool:
    return graph.network.torch_paths is TorchPaths.TIMM_RESNETV2


def torch_path(graph: LayerGraph, name: str) -> str:
    """Module path of a layer in the torch target (torchvision's scheme, timm's for what timm adds)."""
    layer = graph[name]
    if _functional(graph, layer):
        raise ValueError(f"{layer.name} is computed by a function in the torch target, not a module")
    role = layer.role
    if _timm_v2(graph):
        if layer.scope is Scope.STEM:
            kind, index = role.rstrip("0123456789"), role[len(role.rstrip("0123456789")) :]
            return _TIMM_V2_STEM[role] if not index else f"{_TIMM_V2_STEM[kind]}{index}"
        if layer.scope is Scope.HEAD:
            return _TIMM_V2_HEAD[role]
        return (
            f"{torch_block_path(graph, layer.stage or 1, layer.block or 1)}.{_TIMM_V2_BLOCK.get(role, role)}"
        )
    if layer.scope is Scope.STEM:
        if role in _TORCH_BLUR_STEM and "stem.pool_aa" in graph:
            return _TORCH_BLUR_STEM[role]
        return _TORCH_STEM.get(role) or _deep_stem_path(role)
    if layer.scope is Scope.HEAD:
        return _TORCH_HEAD[role]
    block = torch_block_path(graph, layer.stage or 1, layer.block or 1)
    if graph.network.shortcut.avg_down and role in _TIMM_AVG_DOWN:
        return f"{block}.{_TIMM_AVG_DOWN[role]}"
    return f"{block}.{_TORCH_BLOCK.get(role, role)}"


def torch_stage_path(graph: LayerGraph, stage: int) -> str:
    """Module path of a stage (1-based): layer2 (torchvision) or stages.1 (timm's ResNetV2)."""
    return f"stages.{stage - 1}" if _timm_v2(graph) else f"layer{stage}"


def torch_classifier_path(graph: LayerGraph) -> str:
    """Module path of the classifier (fc, or head.fc in timm's ResNetV2), whether or not the graph has one."""
    return _TIMM_V2_HEAD["fc"] if _timm_v2(graph) else _TORCH_HEAD["fc"]


def torch_block_path(graph: LayerGraph, stage: int, block: int) -> str:
    """Module path of a residual block (both 1-based): layer2.0, or stages.1.blocks.0 (timm's ResNetV2)."""
    return f"{torch_stage_path(graph, stage)}{'.blocks' if _timm_v2(graph) else ''}.{block - 1}"


def torch_stage_blocks(graph: LayerGraph) -> str | None:
    """The place holding a stage's blocks inside the stage module (timm's ResNetV2: blocks), or None
    where the stage module is the sequence of blocks itself (torchvision)."""
    return "blocks" if _timm_v2(graph) else None


def torch_path_in_block(graph: LayerGraph, name: str) -> str:
    """A block layer's module path relative to its block: layer2.0.downsample.0 -> downsample.0."""
    layer = graph[name]
    prefix = torch_block_path(graph, layer.stage or 1, layer.block or 1) + "."
    path = torch_path(graph, name)
    if not path.startswith(prefix):
        raise ValueError(f"{name}: module path {path} is not inside its block {prefix[:-1]}")
    return path[len(prefix) :]


def _functional(graph: LayerGraph, layer: Layer) -> bool:
    """Whether the torch target computes a layer with a function rather than a module of its own
    (timm's ResNetV2 head flattens with an nn.Flatten module)."""
    if layer.kind == "flatten" and layer.scope is Scope.HEAD and _timm_v2(graph):
        return False
    return layer.kind in _TORCH_FUNCTIONAL or layer.role in _TORCH_FUNCTIONAL_ROLES


def _deep_stem_path(role: str) -> str:
    """timm's deep stem is one nn.Sequential, conv1: conv, BatchNorm, ReLU, conv, ... (conv2 -> conv1.3)."""
    kind, index = role.rstrip("0123456789"), int(role[len(role.rstrip("0123456789")) :])
    return f"conv1.{3 * (index - 1) + {'conv': 0, 'bn': 1, 'relu': 2}[kind]}"


def torch_module(graph: LayerGraph, name: str) -> str | None:
    """The module path that computes a layer in the torch target; None where a function does."""
    return None if _functional(graph, graph[name]) else torch_path(graph, name)


def keras_name(graph: LayerGraph, name: str) -> str:
    """Name of the Keras layer that computes a graph layer (keras.applications' scheme).

    A softmax after the classifier is fused into it (``Dense(..., activation="softmax")``), as
    keras.applications does, so its layer is the classifier's.
    """
    layer = graph[name]
    if fused_into_dense(graph, name):
        return keras_name(graph, graph.inputs(name)[0])
    return _keras_name(layer, preactivation=graph.network.block.preactivation)


def fused_into_dense(graph: LayerGraph, name: str) -> bool:
    """Whether the Keras target computes this layer inside the dense layer before it."""
    if graph[name].kind != "softmax":
        return False
    (producer,) = graph.inputs(name)
    return graph[producer].kind == "dense"


def keras_names(graph: LayerGraph) -> dict[str, str]:
    """Every graph layer's Keras layer name: for weight transfer, shape checks and parity."""
    return {layer.name: keras_name(graph, layer.name) for layer in graph}


def _keras_name(layer: Layer, *, preactivation: bool) -> str:
    role = layer.role
    if layer.scope is Scope.INPUT:
        return "input"
    if layer.scope is Scope.STEM:
        if role in _KERAS_STEM:
            return _KERAS_STEM[role]
        kind, index = role.rstrip("0123456789"), role[len(role.rstrip("0123456789")) :]
        return f"conv1_{index}_{kind}"  # a deep stem's conv2 -> conv1_2_conv
    if layer.scope is Scope.HEAD:
        return _KERAS_HEAD[role]
    prefix = keras_block_prefix(layer.stage or 0, layer.block or 0)
    if role == "add":
        # keras.applications V2 ends a pre-activation block at the addition and calls it "_out"
        return f"{prefix}_{'out' if preactivation else 'add'}"
    if role in _KERAS_BLOCK:
        return f"{prefix}_{_KERAS_BLOCK[role]}"
    kind, index = role.rstrip("0123456789"), role[len(role.rstrip("0123456789")) :]
    return f"{prefix}_{index}_{kind}"  # conv2 -> _2_conv, bn1 -> _1_bn, relu3 -> _3_relu


def keras_block_prefix(stage: int, block: int) -> str:
    """What the Keras names of a residual block's layers start with (both 1-based): conv3_block1 for
    stage 2, block 1 (keras.applications counts the stem as conv1)."""
    return f"conv{stage + 1}_block{block}"


def keras_eca_reshape_names(layer_name: str) -> tuple[str, str]:
    """Names of the Reshape layers around ECA's Conv1D: conv2_block1_eca_conv -> ..._eca_sequence and
    ..._eca_channels (the channels become a sequence for the convolution, then channels again)."""
    stem = layer_name.removesuffix("_conv")
    return f"{stem}_sequence", f"{stem}_channels"


def keras_pad_name(layer_name: str) -> str:
    """Name of the ZeroPadding2D in front of a layer: conv1_conv -> conv1_pad (keras.applications)."""
    stem, _, _ = layer_name.rpartition("_")
    return f"{stem}_pad"


def torch_paths_doc(graph: LayerGraph) -> str:
    """The sentence of a generated torch module's docstring that says whose module paths it keeps."""
    if _timm_v2(graph):
        return (
            "Module paths follow timm's ResNetV2 (stem.conv, stages.0.blocks.0.norm1, "
            "stages.0.blocks.0.downsample.conv, norm, head.fc), so its state dicts load with strict=True."
        )
    return "Module paths follow torchvision.models.resnet (conv1, layer1.0.conv1, layer1.0.downsample.0, fc)."


def torch_shortcut_place(graph: LayerGraph, role: str) -> str:
    """A projection layer's place in its block's downsample module: 0, 1 (torchvision), 0, 1, 2
    (timm's avg_down), or pool, conv (timm's ResNetV2)."""
    if _timm_v2(graph):
        path = _TIMM_V2_BLOCK[role]
    elif graph.network.shortcut.avg_down and role in _TIMM_AVG_DOWN:
        path = _TIMM_AVG_DOWN[role]
    else:
        path = _TORCH_BLOCK[role]
    return path.removeprefix("downsample.")
