"""`resgen import` of ResNets written in the many styles people use (tests/import_models/torch_styles.py,
keras_styles.py): each imports to a spec whose generated model reproduces it, or is refused in one line
naming the module path and the construct."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from resgen.importers.errors import NotExpressible
from resgen.importers.torch_model import spec_from_torch
from tests.helpers import assert_clean_failure, cli, randomize_torch_batch_norm
from tests.import_models import torch_refused, torch_styles
from tests.test_import_torch_files import generated_copy

torch = pytest.importorskip("torch")

STYLES = Path(torch_styles.__file__)
REFUSED = Path(torch_refused.__file__)


def _channels(model: Any) -> int:
    return next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d)).in_channels


@pytest.mark.parametrize("factory", torch_styles.IMPORTS)
def test_torch_style_imports_and_reproduces(factory: str) -> None:
    torch.manual_seed(0)
    model = getattr(torch_styles, factory)()
    randomize_torch_batch_norm(model, 1, signed_scales=True)
    data = spec_from_torch(
        model, name="styled", input_size=(32, 32), source=f"torch_styles.py:{factory}"
    ).data
    ours = generated_copy(model, data).eval()
    x = torch.randn(2, _channels(model), 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got, want = ours(x), model.eval()(x)
    assert got.shape == want.shape
    assert float((got - want).abs().max()) <= 1e-5 * max(1.0, float(want.abs().max()))


def test_styles_read_their_settings() -> None:
    """The settings that differ from the defaults are read, not assumed."""

    def read(factory: str) -> dict[str, Any]:
        model = getattr(torch_styles, factory)()
        return spec_from_torch(model, name="styled", input_size=(32, 32), source="t").data

    gray = read("grayscale_7_classes")
    assert (gray["input"]["channels"], gray["head"]["classes"]) == (1, 7)
    assert read("dropout_head")["head"]["dropout"] == 0.2
    assert read("bn_eps_momentum")["norm"] == {"epsilon": 1e-3, "momentum": 0.99}
    assert read("maxpool_2x2")["stem"]["pool"]["kernel_size"] == 2
    same = read("same_padding_stem")["stem"]
    assert (same["kernel_size"], same["stride"]) == (7, 1)
    nxt = read("resnext")
    assert (nxt["block"]["groups"], [s["stride"] for s in nxt["stages"]]) == (4, [1, 2])
    assert read("bottleneck_stride_on_1x1")["block"]["stride_on"] == "conv1"
    assert [s["blocks"] for s in read("module_list")["stages"]] == [1, 1, 1]
    flat = read("helper_blocks_in_one_sequential")["stages"]  # one container, split where it strides
    assert [(s["blocks"], s["filters"], s["stride"]) for s in flat] == [(1, 8, 1), (2, 16, 2), (1, 32, 2)]


@pytest.mark.parametrize("factory", sorted(torch_refused.REFUSED))
def test_torch_style_is_refused_naming_path_and_construct(factory: str) -> None:
    path, words = torch_refused.REFUSED[factory]
    with pytest.raises(NotExpressible) as caught:
        spec_from_torch(getattr(torch_refused, factory)(), name="styled", input_size=(32, 32), source="t")
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and words in text and "\n" not in text


@pytest.mark.parametrize("name", ["with_defaults", "DefaultsNet"])
def test_a_factory_or_class_with_defaulted_arguments_imports_from_the_cli(name: str, tmp_path: Path) -> None:
    out = tmp_path / "spec.yaml"
    result = cli("import", f"{STYLES}:{name}", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "classes: 5" in out.read_text() if name == "with_defaults" else "classes: 3" in out.read_text()


def test_a_refused_style_exits_2_in_one_line_from_the_cli(tmp_path: Path) -> None:
    lines = assert_clean_failure(cli("import", f"{REFUSED}:relu6", "-o", str(tmp_path / "s.yaml")))
    assert len(lines) == 1 and "layer1.0.act: ReLU6 is not expressible" in lines[0]


# --- Keras ------------------------------------------------------------------------------------------


def _keras_styles() -> Any:
    pytest.importorskip("keras")
    from tests.import_models import keras_styles

    return keras_styles


KERAS_IMPORTS = (
    "applications_style",
    "add_function",
    "relu_layer",
    "relu_ops",
    "flatten_head",
    "keepdims_dropout_flatten_head",
    "grayscale_5_classes",
    "with_defaults",
)


@pytest.mark.parametrize("builder", KERAS_IMPORTS)
def test_keras_style_imports_and_reproduces(builder: str) -> None:
    """Weights copied in order into the model generated from the imported spec give the same outputs."""
    import keras
    import numpy as np

    from resgen import api
    from resgen.generated_module import import_generated
    from resgen.importers.keras_model import spec_from_keras
    from tests.helpers import randomize_keras_batch_norm

    styles = _keras_styles()
    assert builder in styles.IMPORTS
    rng = np.random.default_rng(3)
    model = getattr(styles, builder)()
    randomize_keras_batch_norm(model, rng)
    data = spec_from_keras(model, name="styled", input_size=None, source=f"keras_styles.py:{builder}").data
    ours = import_generated(api.render(data, "keras"), "styled").build_model()
    assert len(ours.weights) == len(model.weights)
    for mine, theirs in zip(ours.weights, model.weights, strict=True):
        mine.assign(theirs.numpy())
    x = rng.normal(0.0, 1.0, (2, *styles.INPUT_SIZE, model.input.shape[-1])).astype("float32")
    want = keras.ops.convert_to_numpy(model(x, training=False))
    got = keras.ops.convert_to_numpy(ours(x, training=False))
    assert float(np.abs(got - want).max()) <= 1e-5 * max(1.0, float(np.abs(want).max()))


def test_a_keras_sequential_inside_a_functional_model_reads_as_its_layers() -> None:
    """A residual branch held in a keras.Sequential: the same network as the branch written out."""
    import resgen
    from resgen.importers.keras_model import spec_from_keras

    styles = _keras_styles()
    nested = spec_from_keras(styles.sequential_branch(), name="styled", input_size=None, source="t").data
    plain = spec_from_keras(styles.build(relu="layer"), name="styled", input_size=None, source="t").data
    d = resgen.diff(nested, plain)
    assert d.same, [c.where for c in d.network_changes]


@pytest.mark.parametrize("builder", ["conv_activation"])
def test_keras_style_is_refused_naming_layer_and_construct(builder: str) -> None:
    from resgen.importers.keras_model import spec_from_keras

    styles = _keras_styles()
    layer, words = styles.REFUSED[builder]
    with pytest.raises(NotExpressible) as caught:
        spec_from_keras(getattr(styles, builder)(), name="styled", input_size=None, source="t")
    text = str(caught.value)
    assert text.startswith(layer) and words in text and "\n" not in text
