"""`resgen summary` lists, for every layer, only names that exist in the generated code.

The torch column must be a module of the built torch model (or null where torch uses a function), the
Keras column a layer of the built Keras model, for presets that cover every layer kind: stems with
and without pooling and input BatchNorm, every shortcut kind, both heads, softmax output.
"""

from __future__ import annotations

import pytest

import resgen
from resgen.generated_module import import_generated

pytestmark = pytest.mark.framework

PRESETS = [
    "resnet18",
    "keras_resnet50",
    "keras_resnet50v2",
    "cifar_resnet20",
    "rosebrock_cifar10",
    "resnet26d",
    "seresnet50",
    "ecaresnet26t",
]


@pytest.mark.parametrize("name", PRESETS)
def test_every_listed_name_exists_in_both_built_models(name: str) -> None:
    net = resgen.compile(name, input_size=(32, 32))
    torch_module = import_generated(resgen.render(net, "torch"), f"summary_names_torch_{name}")
    keras_module = import_generated(resgen.render(net, "keras"), f"summary_names_keras_{name}")
    modules = dict(torch_module.build_model().named_modules())
    keras_model = keras_module.build_model()
    keras_layers = {layer.name for layer in keras_model.layers}
    rows = resgen.summary(net)["layers"]
    functional = {row["op"] for row in rows if row["torch"] is None}
    assert functional <= {"input", "add", "flatten", "softmax", "sigmoid", "scale", "global_avg_pool"}
    for row in rows:
        if row["torch"] is not None:
            assert row["torch"] in modules, f"{row['name']}: no torch module {row['torch']}"
        assert row["keras"] in keras_layers, f"{row['name']}: no Keras layer {row['keras']}"
    # every module with weights and every Keras layer with weights is listed
    listed_torch = {row["torch"] for row in rows}
    weighted = {path for path, m in modules.items() if path and list(m.parameters(recurse=False))}
    assert weighted <= listed_torch
    assert {layer.name for layer in keras_model.layers if layer.weights} <= {row["keras"] for row in rows}
