"""Loading: YAML as people write it, JSON with positions, and every value located."""

from __future__ import annotations

import pytest

from resgen import load
from resgen.errors import SpecErrors


def parse(text: str, *, json_input: bool = False) -> load.Document:
    return load.parse(text.encode(), "spec.json" if json_input else "spec.yaml", json_input=json_input)


def test_yaml_12_numbers_mean_what_users_mean() -> None:
    doc = parse("epsilon: 1e-5\nmomentum: .9\nl2: 1.0e-4\nblocks: 17\nneg: -3\n")
    assert doc.data == {"epsilon": 1e-5, "momentum": 0.9, "l2": 1e-4, "blocks": 17, "neg": -3}
    assert isinstance(doc.data["epsilon"], float)


def test_yaml_11_booleans_stay_strings() -> None:
    doc = parse("a: yes\nb: on\nc: true\nd: False\n")
    assert doc.data == {"a": "yes", "b": "on", "c": True, "d": False}


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("017", "write 17"),
        ("0o17", "write the decimal integer 15"),
        ("0x1f", "decimal integer 31"),
        ("1_000", "1000"),
        ("-017", "write -17"),
    ],
)
def test_ambiguous_integers_say_what_to_write(text: str, hint: str) -> None:
    with pytest.raises(SpecErrors) as info:
        parse(f"height: {text}\n")
    (error,) = info.value.errors
    assert error.path == ("height",) and (error.line, error.column) == (1, 9)
    assert hint in error.message


def test_positions_of_values_and_keys() -> None:
    doc = parse("stem:\n  kind: conv\nstages:\n  - {blocks: 2, filters: 8}\n")
    assert doc.positions[("stem", "kind")] == (2, 9)
    assert doc.key_positions[("stem", "kind")] == (2, 3)
    assert doc.positions[("stages", 0, "filters")] == (4, 26)
    assert doc.locate(("stages", 0, "missing")) == (4, 5)  # nearest ancestor


def test_quoted_scalars_are_recorded() -> None:
    doc = parse("a: '3'\nb: 3\n")
    assert doc.data == {"a": "3", "b": 3}
    assert ("a",) in doc.quoted and ("b",) not in doc.quoted


def test_json_has_positions_too() -> None:
    doc = parse('{\n  "input": {"height": 32,\n            "width": 40}\n}\n', json_input=True)
    assert doc.data == {"input": {"height": 32, "width": 40}}
    assert doc.positions[("input", "width")] == (3, 22)


def test_json_duplicate_key_names_both_lines() -> None:
    with pytest.raises(SpecErrors) as info:
        parse('{"a": 1,\n "b": 2,\n "a": 3}', json_input=True)
    (error,) = info.value.errors
    assert (error.line, error.path) == (3, ("a",))
    assert "first defined on line 1" in error.message


def test_yaml_duplicate_key_names_both_lines() -> None:
    with pytest.raises(SpecErrors) as info:
        parse("a: 1\nb: 2\na: 3\n")
    assert str(info.value) == "spec.yaml:3:1: error: a: duplicate key (first defined on line 1)"


def test_crlf_files_are_fine() -> None:
    assert parse("a: 1\r\nb: two\r\n").data == {"a": 1, "b": "two"}


def test_byte_order_mark_is_skipped() -> None:
    assert load.parse("\ufeffa: 1\n".encode(), "x.yaml").data == {"a": 1}


def test_alias_expansion_is_bounded() -> None:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    with pytest.raises(SpecErrors, match="more than 50,000 values"):
        parse("\n".join(lines) + "\n")


def test_small_aliases_are_allowed() -> None:
    doc = parse("base: &b {blocks: 2}\ncopy: *b\n")
    assert doc.data["copy"] == {"blocks": 2}


def test_presets_resolve_by_bare_name() -> None:
    assert load.resolve("resnet50").name == "resnet50.yaml"
    assert "resnet50" in load.preset_names() and len(load.preset_names()) == 58  # 26 + 32 of timm's family


def test_unknown_spec_argument_is_a_located_error() -> None:
    with pytest.raises(SpecErrors, match="no such file, and no preset of that name"):
        load.load("resnet51")


def test_missing_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(SpecErrors, match="no such file"):
        load.load(str(tmp_path / "absent.yaml"))
