"""Keras 3 backend, where a layer is written: the straight code of ``build_model`` (the stem and
the head, names as literals) or the body of the block function (names as f-strings on ``name``,
channel counts and strides as the function's parameters). The handlers of `resgen.backends.keras3`
ask their `Site` for names, input and output variables, channels and strides.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from resgen.backends import blocks
from resgen.backends.keras3_blocks import tensor_of
from resgen.backends.keras3_init import BLOCK_DIM_CODE
from resgen.codegen import CodegenError, literal
from resgen.graph import CLASSIFIER, Conv2d, Layer, LayerGraph
from resgen.naming import keras_name, keras_pad_name
from resgen.passes import Analysis


@dataclass
class Site(ABC):
    """How a handler writes a layer at one place: its name, input and output variables, values."""

    graph: LayerGraph
    analysis: Analysis
    indent: int

    @abstractmethod
    def name_text(self, keras_layer_name: str) -> str:
        """Code text of a Keras layer name written here."""

    def name(self, layer: Layer) -> str:
        """Code text of the layer's name."""
        return self.name_text(keras_name(self.graph, layer.name))

    def pad_name(self, layer: Layer) -> str:
        """Code text of the name of the ZeroPadding2D in front of the layer."""
        return self.name_text(keras_pad_name(keras_name(self.graph, layer.name)))

    @abstractmethod
    def src(self, layer: Layer, index: int = 0) -> str:
        """The variable holding the layer's `index`-th input."""

    @abstractmethod
    def dst(self, layer: Layer) -> str:
        """The variable the layer's output is assigned to."""

    def channels(self, layer: Layer) -> str:
        """Code text of a convolution's output channels (the classifier's: build_model's num_classes)."""
        assert isinstance(layer.op, Conv2d)
        return "num_classes" if layer.name == CLASSIFIER else literal(layer.op.out_channels)

    def stride(self, layer: Layer) -> str:
        return literal(getattr(layer.op, "stride", 1))

    def may_stride(self, layer: Layer) -> bool:
        """Whether the layer written here can carry a stride > 1 (then its padding is explicit)."""
        return bool(getattr(layer.op, "stride", 1) > 1)

    def dilation(self, layer: Layer) -> str:
        """Code text of a convolution's dilation ("1" for none)."""
        return literal(getattr(layer.op, "dilation", 1))


@dataclass
class StraightSite(Site):
    """The stem and the head: written once each in ``build_model``, names as literals."""

    def name_text(self, keras_layer_name: str) -> str:
        return literal(keras_layer_name)

    def src(self, layer: Layer, index: int = 0) -> str:
        producer = self.graph.inputs(layer.name)[index]
        return "inputs" if self.graph[producer].kind == "input" else "x"

    def dst(self, layer: Layer) -> str:
        return "inputs" if layer.kind == "input" else "x"


@dataclass
class BlockSite(Site):
    """One block, written as the body of the block function: names are f-strings on ``name``,
    channel counts and strides are the function's parameters (the layers' block dimensions)."""

    prefix: str = ""
    params: blocks.BlockParameters | None = None

    @property
    def _params(self) -> blocks.BlockParameters:
        assert self.params is not None
        return self.params

    def _suffix(self, layer_name: str) -> str:
        if not layer_name.startswith(self.prefix + "_"):
            raise CodegenError(f"layer {layer_name} does not start with its block's {self.prefix}")
        return layer_name[len(self.prefix) :]

    def name_text(self, keras_layer_name: str) -> str:
        return f'f"{{name}}{self._suffix(keras_layer_name)}"'

    def src(self, layer: Layer, index: int = 0) -> str:
        if layer.role == "add" and index == 1:
            return "skip"  # every shortcut branch, the identity included, ends in `skip`
        producer = self.graph[self.graph.inputs(layer.name)[index]]
        if (producer.stage, producer.block) != (layer.stage, layer.block):
            return "x"  # the block's input
        return tensor_of(producer.role)

    def dst(self, layer: Layer) -> str:
        return tensor_of(layer.role)

    def channels(self, layer: Layer) -> str:
        assert layer.dims is not None
        return BLOCK_DIM_CODE[layer.dims[1]]

    def stride(self, layer: Layer) -> str:
        return blocks.stride_text(layer, self._params)

    def may_stride(self, layer: Layer) -> bool:
        return layer.role in self._params.stride_roles

    def dilation(self, layer: Layer) -> str:
        return blocks.dilation_text(layer, self._params)
