"""`resgen weights convert` against checkpoints that do not fit or are not what they claim: every input
is checked against the spec (extra, missing, misshaped tensors listed, nothing written), foreign
files are handled or refused naming the file, pickle payloads never run, BatchNorm counters survive a
round trip, and nothing is left in the temporary directory."""

from __future__ import annotations

import os
import pickle
import stat
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")

from resgen import parity, weights_h5, weights_io  # noqa: E402
from resgen.compiler import compile_spec  # noqa: E402
from tests.helpers import cli  # noqa: E402

KERAS_FORMATS = ("k.h5", "k.weights.h5", "k.safetensors")


def convert(spec: str, source: str, src: Path, target: str, dst: Path) -> tuple[int, str]:
    result = cli("weights", "convert", spec, "--from", source, str(src), "--to", target, str(dst))
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    return result.exit_code, result.stderr


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """cifar_resnet20 and the deeper cifar_resnet32 in every format, with counted BatchNorm batches."""
    folder = tmp_path_factory.mktemp("checkpoints")
    out: dict[str, Path] = {}
    for name in ("cifar_resnet20", "cifar_resnet32"):
        compiled = compile_spec(name)
        torch_module, _ = parity.import_targets(compiled)
        model = torch_module.build_model()
        parity.randomize_torch(compiled, model, seed=4)
        for i, bn in enumerate(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.num_batches_tracked.fill_(100 + i)  # a different count per layer
        start = folder / f"{name}.pt"
        torch.save(model.state_dict(), start)
        out[f"{name}.pt"] = start
        for fmt in KERAS_FORMATS:
            weights_io.convert(compiled, "torch", start, "keras", folder / f"{name}.{fmt}")
            out[f"{name}.{fmt}"] = folder / f"{name}.{fmt}"
    return out


@pytest.mark.parametrize("fmt", ["pt", *KERAS_FORMATS])
def test_a_deeper_networks_checkpoint_is_refused_listing_the_extras(
    checkpoints: dict[str, Path], tmp_path: Path, fmt: str
) -> None:
    source = "torch" if fmt == "pt" else "keras"
    src = checkpoints[f"cifar_resnet32.{fmt}"]
    for target, dst in (("torch", tmp_path / "o.pt"), ("keras", tmp_path / "o.h5")):
        code, err = convert("cifar_resnet20", source, src, target, dst)
        assert code == 2, err
        assert f"{src}: error: the weights do not fit spec 'cifar_resnet20' (" in err
        assert f"{src}: error: extra: " in err and "... and " in err  # a long list is cut
        assert not dst.exists()


@pytest.mark.parametrize("fmt", KERAS_FORMATS)
def test_a_keras_checkpoint_with_extra_conv_biases_is_refused(
    checkpoints: dict[str, Path], tmp_path: Path, fmt: str
) -> None:
    """cifar_resnet20 has bias-free convolutions; a file that gives its stem a bias does not fit, also
    when converted to Keras again."""
    src = tmp_path / f"biased.{fmt}"
    src.write_bytes(checkpoints[f"cifar_resnet20.{fmt}"].read_bytes())
    bias = np.ones(16, dtype=np.float32)
    if fmt == "k.safetensors":
        from safetensors.numpy import load_file, save_file

        save_file({**load_file(str(src)), "conv1_conv/bias": bias}, str(src))
    else:
        with h5py.File(src, "a") as handle:
            if fmt == "k.h5":
                handle["conv1_conv"].create_dataset("conv1_conv/bias", data=bias)
                names = [
                    n if isinstance(n, bytes) else n.encode()
                    for n in handle["conv1_conv"].attrs["weight_names"]
                ]
                handle["conv1_conv"].attrs["weight_names"] = [*names, b"conv1_conv/bias"]
            else:
                model = weights_io.keras_model(compile_spec("cifar_resnet20"))
                group = next(g for g, layer, _ in weights_h5.keras_paths(model) if layer == "conv1_conv")
                handle[f"{group}/vars"].create_dataset("1", data=bias)
    for target, dst in (("torch", tmp_path / "out.pt"), ("keras", tmp_path / "out.h5")):
        code, err = convert("cifar_resnet20", "keras", src, target, dst)
        assert code == 2, err
        assert "(1 extra)" in err and "(16,)" in err, err
        assert not dst.exists()


def test_same_framework_conversions_are_checked(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    """torch -> torch: a misshaped and a missing tensor are both listed, nothing is written."""
    state = torch.load(checkpoints["cifar_resnet20.pt"], weights_only=True)
    state["fc.weight"] = torch.zeros(10, 32)
    del state["bn1.bias"]
    src = tmp_path / "bad.pt"
    torch.save(state, src)
    code, err = convert("cifar_resnet20", "torch", src, "torch", tmp_path / "out.safetensors")
    assert code == 2
    assert "(1 missing, 1 misshaped)" in err
    assert f"{src}: error: missing: bn1.bias (16,)" in err
    assert f"{src}: error: misshaped: fc.weight: (10, 32) in the file, (10, 64) in the spec" in err
    assert not (tmp_path / "out.safetensors").exists()


def test_num_batches_tracked_survives_a_round_trip_through_every_keras_format(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    start = torch.load(checkpoints["cifar_resnet20.pt"], weights_only=True)
    for fmt in KERAS_FORMATS:
        back = tmp_path / f"back_{fmt.replace('.', '_')}.pt"
        code, err = convert("cifar_resnet20", "keras", checkpoints[f"cifar_resnet20.{fmt}"], "torch", back)
        assert code == 0, err
        final = torch.load(back, weights_only=True)
        assert final.keys() == start.keys()
        for key, value in start.items():
            assert torch.equal(final[key], value), (fmt, key)
    counters = [int(v) for k, v in start.items() if k.endswith("num_batches_tracked")]
    assert len(set(counters)) > 1  # the test can see a mix-up between layers


def test_keras_without_counters_gives_zero(tmp_path: Path) -> None:
    """A Keras file that never saw torch (no stored counters) gives torch's value for a fresh model."""
    compiled = compile_spec("cifar_resnet20")
    model = weights_io.keras_model(compiled)
    src = tmp_path / "plain.weights.h5"
    model.save_weights(str(src))  # Keras' own writer: the layout resgen reads must be Keras'
    code, err = convert("cifar_resnet20", "keras", src, "torch", tmp_path / "out.pt")
    assert code == 0, err
    state = torch.load(tmp_path / "out.pt", weights_only=True)
    assert all(int(v) == 0 for k, v in state.items() if k.endswith("num_batches_tracked"))
    for name, values in weights_io.read(compiled, "keras", src).tensors.items():
        for got, want in zip(values, model.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(got, want)


def test_resgen_weights_h5_is_keras_own_layout(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    """The .weights.h5 resgen writes has the groups and datasets Keras' save_weights writes, and Keras
    loads it into the generated model."""
    compiled = compile_spec("cifar_resnet20")
    model = weights_io.keras_model(compiled)
    ours = checkpoints["cifar_resnet20.k.weights.h5"]
    model.load_weights(str(ours))
    theirs = tmp_path / "theirs.weights.h5"
    model.save_weights(str(theirs))

    def tree(path: Path) -> dict[str, tuple[int, ...] | None]:
        items: dict[str, tuple[int, ...] | None] = {}
        with h5py.File(path, "r") as handle:
            handle.visititems(lambda n, o: items.__setitem__(n, getattr(o, "shape", None)))
        return items

    assert tree(ours) == tree(theirs)


def test_half_precision_and_wrapped_state_dicts_are_read(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    state = torch.load(checkpoints["cifar_resnet20.pt"], weights_only=True)
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    bf16 = {k: v.bfloat16() if v.is_floating_point() else v for k, v in state.items()}
    torch.save({"state_dict": half, "epoch": 3}, tmp_path / "wrapped.pt")
    from safetensors.torch import save_file

    save_file(bf16, str(tmp_path / "bf16.safetensors"))
    for name, note in (
        ("wrapped.pt", "note: read the state dict under 'state_dict'"),
        ("wrapped.pt", "note: read 97 float16 tensors as float32"),
        ("bf16.safetensors", "note: read 97 bfloat16 tensors as float32"),
    ):
        code, err = convert("cifar_resnet20", "torch", tmp_path / name, "keras", tmp_path / "o.h5")
        assert code == 0, err
        assert f"{tmp_path / name}: {note}" in err
    out = weights_io.read(compile_spec("cifar_resnet20"), "keras", tmp_path / "o.h5")
    assert out.tensors["conv1_conv"][0].dtype == np.float32


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors", ".h5", ".weights.h5"])
def test_foreign_files_are_refused_naming_the_file(tmp_path: Path, suffix: str) -> None:
    src = tmp_path / f"in{suffix}"
    good = tmp_path / f"good{suffix}"
    compiled = compile_spec("cifar_resnet20")
    torch_module, _ = parity.import_targets(compiled)
    start = tmp_path / "start.pt"
    torch.save(torch_module.build_model().state_dict(), start)
    framework = "torch" if suffix in (".pt", ".safetensors") else "keras"
    weights_io.convert(compiled, "torch", start, framework, good)
    data = good.read_bytes()
    cases = {
        "empty": (b"", "the file is empty"),
        "truncated": (data[: len(data) // 2], "not a readable"),
        "garbage": (bytes(range(256)) * 64, "not a readable"),
    }
    for what, (content, message) in cases.items():
        src.write_bytes(content)
        code, err = convert("cifar_resnet20", framework, src, "torch", tmp_path / "out.pt")
        assert code == 2, (what, err)
        assert err.startswith(f"{src}: error: ") and message in err, (what, err)
        assert not (tmp_path / "out.pt").exists()


def test_pickle_payloads_are_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    for name, obj in (
        ("plain.pt", _Payload(marker)),
        ("wrapped.pt", {"state_dict": {"x": _Payload(marker)}}),
    ):
        src = tmp_path / name
        torch.save(obj, src)
        code, err = convert("cifar_resnet20", "torch", src, "keras", tmp_path / "o.h5")
        assert code == 2 and "ran nothing from it" in err, err
        legacy = tmp_path / f"legacy_{name}"
        legacy.write_bytes(pickle.dumps(obj))
        code, err = convert("cifar_resnet20", "torch", legacy, "keras", tmp_path / "o.h5")
        assert code == 2 and err.startswith(f"{legacy}: error: "), err
    assert not marker.exists()


def test_special_files_and_folders_are_not_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)  # opening it would block forever
    (tmp_path / "dir.pt").mkdir()
    for src in (fifo, tmp_path / "dir.pt", tmp_path / "absent.pt"):
        code, err = convert("cifar_resnet20", "torch", src, "keras", tmp_path / "o.h5")
        assert code == 2 and err.startswith(f"{src}: error: "), err


def test_nothing_left_in_the_temp_dir_and_render_permissions(
    checkpoints: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """parity and every weights conversion in a private TMPDIR leave it empty; every file written gets
    the permissions render gives (0666 less the umask), not a temporary file's 0600."""
    import tempfile

    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setenv("TMPDIR", str(private))
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    out = tmp_path / "out"
    start = str(checkpoints["cifar_resnet20.pt"])
    commands = [
        ["parity", "cifar_resnet20", "--format", "json"],
        ["render", "cifar_resnet20", "--target", "torch", "-o", str(out / "r.py")],
        *(
            [
                "weights",
                "convert",
                "cifar_resnet20",
                "--from",
                "torch",
                start,
                "--to",
                "keras",
                str(out / fmt),
            ]
            for fmt in KERAS_FORMATS
        ),
        *(
            [
                "weights",
                "convert",
                "cifar_resnet20",
                "--from",
                "keras",
                str(out / "k.h5"),
                "--to",
                "torch",
                str(out / name),
            ]
            for name in ("t.safetensors", "t.pt")
        ),
    ]
    umask = os.umask(0o022)
    try:
        for command in commands:
            result = cli(*command)
            assert result.exit_code == 0, result.output
    finally:
        os.umask(umask)
    assert list(private.iterdir()) == []
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert len(modes) == 6 and set(modes.values()) == {0o644}, modes
