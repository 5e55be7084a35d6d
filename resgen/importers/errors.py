"""Why a model does not become a spec: the module (or layer) at fault and the construct it uses."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


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


def agreed(items: Sequence[Any], what: str, get: Callable[[Any], Any], *, among: str) -> Any:
    """The value `get` reads from every item (each with a module `path`), where a spec holds one value
    for all of them; the first item that differs is refused: ``layer2.1: epsilon 0.001 where other
    layers have 1e-05 is not expressible``."""
    first = get(items[0])
    for item in items[1:]:
        if get(item) != first:
            raise NotExpressible(
                item.path, f"{what} {get(item)!r} where other {among} have {first!r} is not expressible"
            )
    return first
