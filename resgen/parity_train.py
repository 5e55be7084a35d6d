"""Train-mode parity: one SGD step, in float64, in both frameworks from identical weights.

`check_training(compiled)` gives the torch model random weights (as `resgen.parity` does), copies them
into a float64 Keras model, takes one SGD step on the same batch in each framework, and compares the
losses (with their L2 terms), every weight update, and the BatchNorm running statistics after the step.
Eval-mode parity (`resgen.parity.check`) cannot see what only training uses: the BatchNorm momentum,
the L2 penalty as weight decay, the unbiased versus biased running variance.

torch and Keras are imported here, lazily, by the functions that need them: importing this module is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from resgen import weights
from resgen.compiler import Compiled
from resgen.parity import import_targets, randomize_torch, torch_to_keras_model


@dataclass
class TrainReport:
    spec: str
    loss_torch: float  # data loss + L2 penalty, computed as Keras does
    loss_keras: float
    max_update_diff: float  # max |delta_torch - delta_keras| over a tensor / the largest update in the net
    worst_tensor: str
    max_mean_diff: float  # BN running mean after the step
    max_var_diff: float  # BN running variance after the step, after the unbiased/biased conversion
    tolerance: float
    notes: list[str] = field(default_factory=list)
    # Tensors that must not change in the step (frozen stages' weights, and the running statistics of
    # BatchNorms in eval mode: frozen_stages, norm_eval), and the largest change either framework
    # made to one of them; 0.0 means bit-identical.
    kept_tensors: int = 0
    max_kept_change: float = 0.0

    @property
    def passed(self) -> bool:
        loss_ok = abs(self.loss_torch - self.loss_keras) <= self.tolerance * max(1.0, abs(self.loss_keras))
        return (
            loss_ok
            and self.max_update_diff <= TRAIN_TOLERANCE
            and self.max_mean_diff <= self.tolerance
            and self.max_var_diff <= self.tolerance
            and self.max_kept_change == 0.0
        )


# Train-mode parity runs in float64. Updates are compared relative to the largest update in the network:
# a tensor whose gradient is zero in theory (a bias followed by a BatchNorm in training mode) has only
# rounding noise to compare.
TRAIN_TOLERANCE = 1e-6


def check_training(
    compiled: Compiled,
    *,
    lr: float = 0.01,
    batch: int = 4,
    seed: int = 0,
    torch_source: str | None = None,
    keras_source: str | None = None,
) -> TrainReport:
    """One SGD step from identical weights on the same batch: losses, updates and BN statistics agree.

    Both frameworks run in float64 here, so that what is compared is the arithmetic each one does (the
    loss, the gradients, the L2 term, the BatchNorm updates) and not float32 rounding, which in a deep
    net's gradients reaches 1e-3 of the largest update by itself.

    Keras' l2(r) adds r * sum(w**2) to the loss; the torch side gets the same through the generated
    param_groups() (weight decay 2r). torch updates the running variance with the unbiased batch
    variance and Keras with the biased one: the comparison converts Keras' value before comparing.
    """
    import keras

    if compiled.graph.of_kind("dropout", "drop_path"):
        raise ValueError(
            "train-mode parity needs a spec without dropout or drop_path (the two frameworks draw "
            "different masks)"
        )
    torch_module, keras_module = import_targets(compiled, torch_source, keras_source)
    shape = compiled.graph.input_hwc
    torch_model = torch_module.build_model()
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        keras_model = keras_module.build_model(input_shape=shape)
        return _train_step_both(
            compiled, torch_module, torch_model, keras_model, lr=lr, batch=batch, seed=seed
        )
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)


def _train_step_both(
    compiled: Compiled,
    torch_module: ModuleType,
    torch_model: Any,
    keras_model: Any,
    *,
    lr: float,
    batch: int,
    seed: int,
) -> TrainReport:
    import keras
    import torch

    shape = compiled.graph.input_hwc
    randomize_torch(compiled, torch_model, seed)
    torch_model.double()
    torch_to_keras_model(compiled, torch_model, keras_model)
    before = {k: v.detach().clone() for k, v in torch_model.state_dict().items()}

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *shape))
    graph = compiled.graph
    if graph.classes is None:  # a backbone: mean squared error of every tap to a random target
        y: Any = [
            rng.standard_normal((batch, *_hwc(compiled.analysis.shape(t.layer)))) for t in graph.network.taps
        ]
    else:
        y = rng.integers(0, graph.classes, size=batch)
    logits = graph.output.kind != "softmax"

    # torch
    torch_model.train()
    groups = torch_module.param_groups(torch_model) if hasattr(torch_module, "param_groups") else None
    optimizer = torch.optim.SGD(groups or torch_model.parameters(), lr=lr)
    # The L2 term that the torch optimizer's weight decay stands for: (decay / 2) * sum(w ** 2) per group.
    penalty = sum(
        group["weight_decay"] / 2 * sum(float((p.detach().double() ** 2).sum()) for p in group["params"])
        for group in optimizer.param_groups
    )
    out = torch_model(torch.from_numpy(_nchw(x)))
    if graph.classes is None:
        mse = torch.nn.functional.mse_loss
        data_loss = sum(mse(o, torch.from_numpy(_nchw(t))) for o, t in zip(out, y, strict=True))
    else:
        target = torch.from_numpy(y)
        data_loss = torch.nn.functional.cross_entropy(out, target) if logits else _nll_of_probs(out, target)
    optimizer.zero_grad()
    data_loss.backward()
    optimizer.step()
    loss_torch = data_loss.item() + penalty

    # Keras
    if graph.classes is None:  # Keras adds the losses of the outputs, as the torch side does
        loss: Any = [keras.losses.MeanSquaredError() for _ in y]
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=logits)
    keras_model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss=loss)
    loss_keras = float(np.asarray(keras_model.train_on_batch(x, y, return_dict=True)["loss"]))

    names = {s.keras_layer for s in weights.weight_slots(compiled)}
    after_keras = weights.keras_to_torch(compiled, {n: keras_model.get_layer(n).get_weights() for n in names})
    after_torch = {k: v.detach().numpy() for k, v in torch_model.state_dict().items()}
    report = TrainReport(compiled.name, loss_torch, loss_keras, 0.0, "", 0.0, 0.0, TRAIN_TOLERANCE)
    bn_inputs = _bn_sample_counts(compiled, batch)
    deltas: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for slot in weights.weight_slots(compiled):
        key = slot.torch_key
        old = before[key].numpy().astype(np.float64)
        got_t, got_k = after_torch[key].astype(np.float64), after_keras[key].astype(np.float64)
        if _kept(compiled, slot):
            report.kept_tensors += 1
            change = max(float(np.max(np.abs(got_t - old))), float(np.max(np.abs(got_k - old))))
            report.max_kept_change = max(report.max_kept_change, change)
        elif slot.role == "moving_mean":
            scale = max(1.0, float(np.max(np.abs(got_k))))
            report.max_mean_diff = max(report.max_mean_diff, float(np.max(np.abs(got_t - got_k))) / scale)
        elif slot.role == "moving_variance":
            # Keras: new = m * old + (1 - m) * var_b; torch: new = m * old + (1 - m) * var_b * n / (n - 1)
            n = bn_inputs[slot.node]
            momentum = compiled.graph.network.norm.momentum
            expected = got_k + (got_k - momentum * old) / (n - 1)
            scale = max(1.0, float(np.max(np.abs(expected))))
            report.max_var_diff = max(report.max_var_diff, float(np.max(np.abs(got_t - expected))) / scale)
        else:
            deltas[key] = (got_t - old, got_k - old)
    largest = max((float(np.max(np.abs(dk))) for _, dk in deltas.values()), default=0.0)
    for key, (delta_t, delta_k) in deltas.items():
        diff = float(np.max(np.abs(delta_t - delta_k))) / max(largest, 1e-12)
        if diff > report.max_update_diff:
            report.max_update_diff, report.worst_tensor = diff, key
    return report


def _kept(compiled: Compiled, slot: weights.WeightSlot) -> bool:
    """Whether one step must leave the tensor as it was: it is in a frozen stage, or it is the
    running statistic of a BatchNorm in eval mode (norm_eval)."""
    layer = compiled.graph[slot.node]
    statistic = slot.role in ("moving_mean", "moving_variance")
    return compiled.graph.frozen(layer) or (statistic and compiled.graph.network.norm_eval)


def _nchw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _hwc(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A (C, H, W) map's shape as Keras holds it, (H, W, C)."""
    return (*shape[1:], shape[0])


def _nll_of_probs(probs: Any, target: Any) -> Any:
    """Cross-entropy of probabilities, clipped as Keras clips them."""
    import torch

    eps = 1e-7
    picked = probs.gather(1, target[:, None]).clamp(eps, 1 - eps)
    return -torch.log(picked).mean()


def _bn_sample_counts(compiled: Compiled, batch: int) -> dict[str, int]:
    """Values per channel each BatchNorm averages over in a training step: batch x H x W."""
    counts = {}
    for bn in compiled.graph.of_kind("batch_norm"):
        shape = compiled.analysis.shape(bn.name)
        counts[bn.name] = batch * (shape[1] * shape[2] if len(shape) == 3 else 1)
    return counts
