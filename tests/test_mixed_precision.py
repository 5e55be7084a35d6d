"""Mixed precision (issue 17): torch autocast to bfloat16 and Keras' mixed_bfloat16 policy, from the
same weights, agree on the top-1 class of random inputs, with BatchNorm kept in float32 in both.

The torch weights are random with BatchNorm scales of both signs (`resgen.parity.randomize_torch`),
then moved into the Keras model by name, as `resgen parity` does.
"""

from __future__ import annotations

import numpy as np
import pytest

import resgen
from resgen import parity
from resgen.generate import render
from resgen.generated_module import import_generated

torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")

INPUTS = 256


@pytest.mark.parametrize(("name", "size"), [("resnet50d", (48, 40))])
def test_bfloat16_top1_agrees_across_frameworks(name: str, size: tuple[int, int]) -> None:
    net = resgen.compile(name, input_size=size)
    torch_model, _ = parity.build_models(net)
    parity.randomize_torch(net, torch_model, seed=0, signed_scales=True)
    torch_model.eval()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        keras_model = import_generated(render(net, "keras"), f"mixed_{name}").build_model()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    parity.torch_to_keras_model(net, torch_model, keras_model)

    # BatchNorm stays in float32: torch's parameters and statistics, Keras' variables
    norms = [m for m in torch_model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.weight.dtype == m.running_var.dtype == torch.float32 for m in norms)
    keras_norms = [x for x in keras_model.layers if isinstance(x, keras.layers.BatchNormalization)]
    assert keras_norms and all(x.variable_dtype == "float32" for x in keras_norms)
    assert {x.compute_dtype for x in keras_model.layers if isinstance(x, keras.layers.Conv2D)} == {"bfloat16"}

    x = np.random.default_rng(1).normal(size=(INPUTS, *size, 3)).astype("float32")
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = torch_model(torch.from_numpy(x).permute(0, 3, 1, 2))
    assert out.dtype == torch.bfloat16  # autocast ran the classifier in bfloat16
    torch_logits = out.float().numpy()
    keras_logits = np.asarray(keras.ops.convert_to_numpy(keras_model(x, training=False)), dtype=np.float32)
    assert torch_logits.dtype == keras_logits.dtype == np.float32
    agree = float(np.mean(torch_logits.argmax(axis=1) == keras_logits.argmax(axis=1)))
    assert agree >= 0.99, f"{name}: top-1 agrees on {agree:.1%} of {INPUTS} inputs"
