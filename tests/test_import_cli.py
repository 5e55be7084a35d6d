"""References and `resgen import`, without a framework: the builders and recognisers are stand-ins
(tests/import_fakes.py) returning shipped presets, so that what is tested here is the plumbing:
parsing, errors and exit codes, the written YAML, and every command taking a reference."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import resgen
from resgen import load
from resgen.importers import reference
from resgen.importers.errors import BadReference
from resgen.importers.result import ImportedSpec
from resgen.importers.yaml_text import IMPORTED_PREFIX, to_yaml
from tests import import_fakes
from tests.helpers import assert_clean_failure, cli
from tests.helpers import run_cli as run


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> import_fakes.Calls:
    return import_fakes.install(monkeypatch)


# --- what is a reference --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "timm:resnet50d",
        "timm:resnet50.a1_in1k",
        "torchvision:resnext50_32x4d",
        "keras:ResNet50V2",
        "models.py:resnet20",
        "path/to/models.py:ResNet",
        "../my models/cifar.py:resnet20",
        r"C:\work\models.py:resnet20",
        "C:/work/models.PY:resnet20",
        "timm:",
        "models.py:",
        "timm:\x1b[31mred",
    ],
)
def test_references_are_recognised(text: str) -> None:
    assert reference.is_reference(text)


@pytest.mark.parametrize(
    "text",
    [
        "resnet50",
        "cifar_resnet20",
        "specs/resnet50.yaml",
        "my.spec.json",
        r"C:\specs\resnet50.yaml",
        "C:/specs/resnet50.yml",
        r"\\server\share\spec.yaml",
        "timm:resnet50d.yaml",
        "keras:ResNet50.YML",
        "torchvision:resnet50.json",
        "models.py",
        "models.py.yaml",
        "a:b",
        "Timm:resnet50",
        "http://example.com/spec.yaml",
        "",
        "-",
        " timm:resnet50",
        "tiny\x1b[2J",
    ],
)
def test_spec_paths_and_preset_names_are_not_references(text: str) -> None:
    assert not reference.is_reference(text)


def test_an_existing_file_is_a_spec_whatever_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("timm:resnet50d").write_text(Path(load.presets_dir() / "resnet18.yaml").read_text())
    assert not reference.is_reference("timm:resnet50d")
    code, out, _ = run("validate", "timm:resnet50d")
    assert code == 0 and "ok: resnet18" in out


@pytest.mark.parametrize(
    ("text", "kind", "name", "path"),
    [
        ("timm:resnet50.a1_in1k", "timm", "resnet50.a1_in1k", None),
        ("torchvision:resnet50", "torchvision", "resnet50", None),
        ("keras:ResNet50V2", "keras", "ResNet50V2", None),
        ("dir/models.py:resnet20", "file", "resnet20", Path("dir/models.py")),
        (r"C:\dir\models.py:ResNet", "file", "ResNet", Path(r"C:\dir\models.py")),
        ("a:b/models.py:f", "file", "f", Path("a:b/models.py")),
    ],
)
def test_a_reference_is_parsed_into_its_parts(text: str, kind: str, name: str, path: Path | None) -> None:
    assert reference.parse_reference(text) == reference.Reference(text, kind, name, path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("timm:", "no model name; write timm:NAME"),
        ("keras:", "no model name; write keras:NAME"),
        ("timm:res net", "'res net' is not a model name"),
        ("torchvision:\x1b[31m", "'\\x1b[31m' is not a model name"),
        ("timm:../../etc/passwd", "is not a model name"),
        ("models.py:", "no callable named"),
        ("models.py:os.system", "'os.system' is not a Python name"),
        ("models.py:1st", "'1st' is not a Python name"),
        ("resnet50", "not a reference"),
    ],
)
def test_a_malformed_reference_is_refused(text: str, message: str) -> None:
    with pytest.raises(BadReference, match=None) as caught:
        reference.parse_reference(text)
    assert message in str(caught.value)
    assert str(caught.value).isprintable()


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("resnet50d", "resnet50d"),
        ("resnet50.a1_in1k", "resnet50_a1_in1k"),
        ("ResNet50V2", "ResNet50V2"),
        ("1x1net", "model_1x1net"),
        ("list", "list_model"),
        ("class", "class_model"),
        ("copy", "copy_model"),
        ("x" * 80, "x" * 64),
        ("---", "imported"),
    ],
)
def test_the_spec_name_comes_from_the_model_name(model: str, name: str) -> None:
    assert reference.spec_name(model) == name


# --- resgen import ------------------------------------------------------------------------------


def test_import_writes_a_commented_spec_that_compiles_to_the_same_network(
    calls: import_fakes.Calls, tmp_path: Path
) -> None:
    out = tmp_path / "r.yaml"
    code, stdout, err = run("import", "timm:resnet50d", "-o", str(out))
    assert code == 0 and stdout == "", err
    assert f"wrote {out} (spec resnet50d, imported from timm:resnet50d)" in err
    text = out.read_text()
    lines = text.splitlines()
    assert lines[0] == f"{IMPORTED_PREFIX} from timm:resnet50d (timm 9.9.9)."
    assert "# resnet50d as timm builds it." in lines
    assert any(
        line.startswith("  - {blocks: 4") and line.endswith("# a note on the second stage") for line in lines
    )
    assert any(line.startswith("head:") and line.endswith("# classes: ImageNet") for line in lines)
    assert load.load(str(out)).data == load.load("resnet50d").data
    assert resgen.summary(str(out)) == resgen.summary("resnet50d")
    assert run("diff", str(out), "resnet50d")[0] == 0
    framework, model, kwargs = calls.seen[-1]
    assert (framework, model.library, model.name) == ("torch", "timm", "resnet50d")
    assert kwargs == {"name": "resnet50d", "input_size": (224, 224), "source": "timm:resnet50d"}


def test_import_to_stdout_with_a_name_and_an_input_size(calls: import_fakes.Calls) -> None:
    code, out, _ = run("import", "keras:ResNet50V2", "-o", "-", "--name", "k50v2", "--input-size", "160x128")
    assert code == 0
    data = load.parse(out.encode(), "stdout.yaml").data
    assert data["name"] == "k50v2" and data["input"]["height"] == 160 and data["input"]["width"] == 128
    assert calls.seen[-1][0] == "keras" and calls.seen[-1][2]["input_size"] == (160, 128)
    assert run("import", "torchvision:resnet18", "-o", "-", "--input-size", "96")[0] == 0
    assert calls.seen[-1][2]["input_size"] == (96, 96)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input-size", "0x5"], "between 1 and 4096"),
        (["--input-size", "224x99999"], "between 1 and 4096"),
        (["--input-size", "big"], "write HEIGHTxWIDTH"),
        (["--name", "9lives"], "letters, digits and underscores"),
        (["--name", "class"], "Python keyword"),
        (["--name", "a\x1bb"], "letters, digits and underscores"),
    ],
)
def test_bad_options_are_refused_before_anything_is_built(
    calls: import_fakes.Calls, args: list[str], message: str, tmp_path: Path
) -> None:
    result = cli("import", "timm:resnet50d", "-o", str(tmp_path / "r.yaml"), *args)
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert calls.seen == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("ref", "line"),
    [
        (
            "timm:blurpool",
            "timm:blurpool: error: layer1.0.conv2: BlurPool2d with filter size 5 is not expressible",
        ),
        ("timm:resnet5O", "timm:resnet5O: error: timm has no model 'resnet5O'"),
        ("timm:", "timm:: error: no model name; write timm:NAME (for example timm:resnet50d)"),
        ("nowhere.py:resnet20", "nowhere.py:resnet20: error: nowhere.py: no such file"),
        (
            "resnet50",
            "resnet50: error: not a reference; write timm:NAME, torchvision:NAME, keras:NAME or FILE.py:",
        ),
        ("keras:\x1b[2J", "keras:\\x1b[2J: error: '\\x1b[2J' is not a model name"),
    ],
)
def test_import_errors_are_one_line_exit_2_and_write_nothing(
    calls: import_fakes.Calls, ref: str, line: str, tmp_path: Path
) -> None:
    lines = assert_clean_failure(cli("import", ref, "-o", str(tmp_path / "r.yaml")))
    assert len(lines) == 1 and lines[0].startswith(line)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_framework_names_the_extra(calls: import_fakes.Calls, tmp_path: Path) -> None:
    lines = assert_clean_failure(cli("import", "timm:missing", "-o", str(tmp_path / "r.yaml")))
    assert len(lines) == 1 and lines[0].startswith("resgen: error: `")
    assert lines[0].endswith(
        " import` needs timm, which is not installed; install the frameworks extra: "
        "pip install 'resgen[frameworks]'"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_file_resgen_did_not_write_is_replaced_only_with_force(
    calls: import_fakes.Calls, tmp_path: Path
) -> None:
    out = tmp_path / "r.yaml"
    out.write_text("# my own spec\n")
    lines = assert_clean_failure(cli("import", "timm:resnet50d", "-o", str(out)))
    assert "exists and was not written by resgen" in lines[0] and "--force" in lines[0]
    assert out.read_text() == "# my own spec\n" and calls.seen == []
    assert run("import", "timm:resnet50d", "-o", str(out), "--force")[0] == 0
    assert out.read_text().startswith(IMPORTED_PREFIX)
    assert run("import", "torchvision:resnet50", "-o", str(out))[0] == 0  # resgen's own: replaced
    assert load.load(str(out)).data["name"] == "resnet50"


def test_a_directory_or_device_is_never_the_output(calls: import_fakes.Calls, tmp_path: Path) -> None:
    assert run("import", "timm:resnet50d", "-o", str(tmp_path))[0] == 2
    if os.path.exists("/dev/null"):
        code, _, err = run("import", "timm:resnet50d", "-o", "/dev/null", "--force")
        assert code == 2 and "character device" in err and "Traceback" not in err


# --- every command takes a reference --------------------------------------------------------------


def test_diff_summary_graph_render_and_validate_take_references(calls: import_fakes.Calls) -> None:
    assert run("diff", "torchvision:resnet50", "resnet50")[0] == 0
    code, out, _ = run("diff", "torchvision:resnet50", "timm:resnet50d", "--format", "json")
    assert code == 1 and json.loads(out)["same"] is False
    code, out, _ = run("summary", "timm:resnet18", "--format", "json")
    assert code == 0 and json.loads(out)["params"] == resgen.summary("resnet18")["params"]
    code, out, _ = run("graph", "keras:ResNet50", "--format", "dot")
    assert code == 0 and out == run("graph", "keras_resnet50", "--format", "dot")[1].replace(
        "keras_resnet50", "ResNet50"
    )
    code, out, _ = run("render", "torchvision:resnet18", "--target", "torch", "-o", "-")
    assert code == 0 and "def build_model(" in out
    assert run("validate", "timm:resnet50d", "resnet18")[0] == 0


@pytest.mark.parametrize(
    "args",
    [
        ["summary", "timm:blurpool"],
        ["diff", "timm:blurpool", "resnet50"],
        ["graph", "timm:blurpool"],
        ["render", "timm:blurpool", "--target", "keras", "-o", "-"],
        ["parity", "timm:blurpool"],
        ["validate", "timm:blurpool"],
    ],
)
def test_every_command_reports_an_inexpressible_model_at_the_reference(
    calls: import_fakes.Calls, args: list[str]
) -> None:
    lines = assert_clean_failure(cli(*args))
    assert lines == ["timm:blurpool: error: layer1.0.conv2: BlurPool2d with filter size 5 is not expressible"]


def test_parity_builds_a_reference_at_the_size_asked(calls: import_fakes.Calls) -> None:
    compiled = resgen.compile("torchvision:resnet18", input_size=(64, 96))
    assert calls.seen[-1][2]["input_size"] == (64, 96)
    assert resgen.summary(compiled)["input_shape"] == [3, 64, 96]


def test_an_invalid_imported_spec_is_located_at_the_reference(calls: import_fakes.Calls) -> None:
    with pytest.raises(resgen.SpecErrors) as caught:
        resgen.compile("timm:badspec")
    (error,) = caught.value.errors
    assert str(error).startswith("timm:badspec: error: stages[0].blocks: ")


def test_api_takes_references(calls: import_fakes.Calls) -> None:
    assert resgen.diff("torchvision:resnet50", "resnet50").same
    assert resgen.summary(Path("timm:resnet18"))["params"] == resgen.summary("resnet18")["params"]


# --- the written YAML ------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", load.preset_names())
def test_every_preset_written_as_imported_yaml_reads_back_exactly(preset: str) -> None:
    data = load.load(preset).data
    notes = {"stem": "the stem", "stages.0": "first", "norm.epsilon": "eps", "head": "x" * 120, "nope": "?"}
    text = to_yaml(ImportedSpec(data, f"timm:{preset}", ("a note",), notes), "timm 9.9.9")
    assert load.parse(text.encode(), "r.yaml").data == data
    assert max(len(line) for line in text.splitlines() if line.lstrip().startswith("#")) <= 100
    assert "# nope: ?" in text


@pytest.mark.parametrize(
    "value",
    [
        "none",
        "null",
        "yes",
        "No",
        "true",
        "1e-5",
        "0x10",
        "017",
        "-inf",
        "inf",
        ".nan",
        "a: b",
        "#x",
        "'q'",
        "é ü",
        "[1]",
        "{a}",
        "- x",
        "",
        " pad ",
        'quote"d',
        "back\\slash",
        "*alias",
        "&a",
        "!tag",
    ],
)
def test_hostile_strings_are_written_as_the_same_strings(value: str) -> None:
    data = {"name": "x", "description": value, "extra": {"k": value, "list": [value, 1, 1.5, True, None]}}
    text = to_yaml(ImportedSpec(data, "timm:x", (), {"description": value}), "timm 9.9.9")
    assert load.parse(text.encode(), "r.yaml").data == data


def test_floats_keep_their_value() -> None:
    data = {"a": 1.001e-5, "b": 0.9, "c": 1e-5, "d": 2.0, "e": 1e16, "f": -0.0, "g": 123456789.125}
    back = load.parse(to_yaml(ImportedSpec(data, "timm:x"), "timm").encode(), "r.yaml").data
    assert back == data and all(isinstance(v, float) for v in back.values())


def test_notes_with_control_characters_are_escaped_comments() -> None:
    data = load.load("resnet18").data
    hostile = "line\nbreak \x1b[31mred\u202e \x00"
    text = to_yaml(ImportedSpec(data, "timm:x", (hostile,), {"stem": hostile, "nowhere": hostile}), "timm")
    assert load.parse(text.encode(), "r.yaml").data == data
    assert "\\x1b[31mred\\u202e \\x00" in text and "\x1b" not in text
