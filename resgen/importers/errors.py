"""Why a model does not become a spec: the module (or layer) at fault and the construct it uses."""

from __future__ import annotations


class NotExpressible(Exception):
    """A part of the model that no spec can express, named by its module path (torch) or layer name
    (Keras): ``layer1.0.conv2: BlurPool2d with filter size 5 is not expressible``."""

    def __init__(self, where: str, construct: str) -> None:
        super().__init__(f"{where}: {construct}" if where else construct)
        self.where = where
        self.construct = construct


class BadReference(Exception):
    """A reference that names no model: an unknown prefix, a missing file or callable, a model name
    that timm, torchvision or keras.applications does not register."""
