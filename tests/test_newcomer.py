"""A newcomer's first hour: a place to start (`resgen show`, `resgen new`) and help where a user
guesses (did-you-mean presets, fields at the wrong level, YAML syntax hints, the name rule in words)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resgen import load
from resgen.load import parse
from resgen.validation import validate
from tests.helpers import ROOT
from tests.helpers import run_cli as run

CIFAR = (ROOT / "specs" / "cifar_resnet20.yaml").read_text(encoding="utf-8")


# --- resgen show / resgen new ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet50", "rosebrock_cifar10", "keras_resnet50v2", "resnetv2_50x1_bit"])
def test_show_prints_the_preset_commented(name: str) -> None:
    code, out, err = run("show", name)
    assert code == 0, err
    shown = validate(parse(out.encode(), "shown.yaml"))
    assert shown == validate(load.load(name))  # the same network, comments aside
    lines = out.splitlines()
    for key in ("stem:", "stages:", "head:"):
        at = next(i for i, line in enumerate(lines) if line.startswith(key))
        assert lines[at - 1].startswith("#") or "#" in lines[at], f"{key} has no comment"
    assert "seed" not in out.lower()


def test_show_names_the_nearest_presets() -> None:
    code, out, err = run("show", "resnet5")
    assert code == 2 and out == ""
    assert err.startswith("resnet5: error: no preset of that name; did you mean resnet50")
    assert "`resgen presets`" in err and "<root>" not in err


@pytest.mark.parametrize("typo", ["resnt18", "Resnet18", "resnet-18"])
def test_unknown_preset_suggests_the_near_one(typo: str) -> None:
    code, _, err = run("render", typo, "--target", "torch")
    assert code == 2
    assert "did you mean resnet18" in err and "resgen presets" in err


def test_new_writes_an_editable_spec_and_never_replaces_one(tmp_path: Path) -> None:
    target = tmp_path / "my_net.yaml"
    code, _, err = run("new", "--from", "cifar_resnet20", str(target))
    assert code == 0, err
    assert "resgen validate" in err
    spec = validate(load.load(str(target)))
    assert spec.name == "my_net"  # the file's name
    assert spec.stages == validate(load.load("cifar_resnet20")).stages
    before = target.read_bytes()
    code, out, err = run("new", "--from", "resnet50", str(target))
    assert code == 2 and out == ""
    assert err.startswith(f"{target}: error: already exists")
    assert target.read_bytes() == before


def test_new_keeps_the_preset_name_where_the_file_name_is_not_a_name(tmp_path: Path) -> None:
    target = tmp_path / "my-net.yaml"
    assert run("new", "--from", "resnet18", str(target))[0] == 0
    assert validate(load.load(str(target))).name == "resnet18"
    code, _, err = run("new", "--from", "resnet18", str(tmp_path / "net.txt"))
    assert code == 2 and "ending in .yaml" in err
    assert not (tmp_path / "net.txt").exists()
    code, _, err = run("new", "--from", "resnt18", str(tmp_path / "x.yaml"))
    assert code == 2 and "did you mean resnet18" in err
    assert not (tmp_path / "x.yaml").exists()


def test_field_descriptions_name_the_tutorial_not_the_seed() -> None:
    code, out, _ = run("schema")
    assert code == 0
    assert "seed" not in out.lower()
    assert "Rosebrock's tutorial" in json.dumps(json.loads(out))


# --- help where a user guesses -----------------------------------------------------------------------


def _error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    code, out, err = run("validate", str(path))
    assert code == 2 and out == "" and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("replace", "by", "path", "belongs"),
    [
        ("head: {kind: global_pool, classes: 10, output: logits}", "head: {kind: global_pool}\nclasses: 10",
         "classes", "head.classes"),
        ("norm: {epsilon: 1e-5, momentum: 0.9}", "momentum: 0.9", "momentum", "norm.momentum"),
        ("block: {kind: basic}", "block: {kind: basic, blocks: 3}", "block.blocks", "stages[].blocks"),
        ("stem: {", "dropout: 0.2\nstem: {", "dropout", "head.dropout"),
    ],
)  # fmt: skip
def test_a_field_at_the_wrong_level_says_where_it_belongs(
    tmp_path: Path, replace: str, by: str, path: str, belongs: str
) -> None:
    assert replace in CIFAR
    err = _error(tmp_path, CIFAR.replace(replace, by))
    assert f"error: {path}: unknown field {path.split('.')[-1]!r}; it belongs in {belongs}" in err


def test_a_misspelled_field_still_gets_did_you_mean(tmp_path: Path) -> None:
    err = _error(tmp_path, CIFAR.replace("stages:", "stagse:"))
    assert "stagse: unknown field 'stagse'; did you mean 'stages'?" in err


@pytest.mark.parametrize(
    ("text", "where", "hint"),
    [
        ("format_version: 1\nname cifar\ninput: {height: 32}\n", ":3:1", "a key without its colon on line 2"),
        ("format_version: 1\nname: x\n  input: 3\n", ":3:8", "a line indented deeper than the key above"),
        ("stem:\n  kind: conv\n filters: 3\n", ":3:2", "indentation that does not line up"),
        ("stem:\n\tkind: conv\n", ":2:1", "a tab; YAML indents with spaces only"),
        ("stages: [{blocks: 3}\nhead: {}\n", ":2:1", "a [ or { that is not closed"),
    ],
)
def test_yaml_syntax_errors_carry_a_hint(tmp_path: Path, text: str, where: str, hint: str) -> None:
    (line,) = _error(tmp_path, text).splitlines()
    assert line.startswith(f"{tmp_path / 'spec.yaml'}{where}: error: invalid YAML: ")
    assert f"; hint: {hint}" in line


def test_whole_file_errors_name_no_field(tmp_path: Path) -> None:
    err = _error(tmp_path, "- 1\n")
    assert (
        err == f"{tmp_path / 'spec.yaml'}:1:1: error: the top level of a spec must be a mapping of fields\n"
    )


@pytest.mark.parametrize("name", ["1net", "my-net", "x" * 65])
def test_the_name_rule_is_said_in_words(tmp_path: Path, name: str) -> None:
    err = _error(tmp_path, CIFAR.replace("name: cifar_resnet20", f"name: {name}"))
    assert "name: a name starts with a letter, then letters (a-z, A-Z), digits or underscores" in err
    assert "at most 64 characters" in err and "^[" not in err and "pattern" not in err
