"""Hostile input, round two (issue 15): what resgen reads cannot leak, replace, truncate or mislead.

1. ``render --check`` reads only regular files resgen would write: a symbolic link is stale and never
   opened; bytes are compared, not decoded text; a CRLF-only difference is one line.
2. ``-o`` / ``graph -o`` never replace a FIFO, socket or device, never take a directory (a trailing
   slash) or an empty path for a file.
3. Two specs rendering to one file in one ``--out-dir`` are refused, naming both.
4. File names and spec text never become live markup or CI commands in messages.
5. Bad command-line values are blamed on the option; ``--debug`` shows the traceback.
6. No false refusal of a one-pixel side; identical layer graphs are the same network.

None of these tests imports a framework.
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from resgen.compiler import compile_spec
from tests.helpers import assert_clean_failure, cli

TINY: dict[str, Any] = {
    "format_version": 1,
    "name": "tiny",
    "description": "",
    "input": {"height": 8, "width": 8, "channels": 3},
    "stem": {"kind": "conv", "filters": 4, "kernel_size": 3, "stride": 1},
    "block": {"kind": "basic"},
    "stages": [{"blocks": 1, "filters": 4, "stride": 1}],
    "head": {"kind": "global_pool", "classes": 2, "output": "softmax"},
}


def spec_file(folder: Path, file: str = "tiny.json", **fields: Any) -> str:
    path = folder / file
    path.write_text(json.dumps({**TINY, **fields}), encoding="utf-8")
    return str(path)


def rendered(folder: Path, spec: str, target: str = "torch") -> bytes:
    """What render writes for `spec`, by rendering it into a scratch folder."""
    scratch = folder / "scratch"
    result = cli("render", spec, "--target", target, "-o", str(scratch / "x.py"))
    assert result.exit_code == 0, result.output
    return (scratch / "x.py").read_bytes()


# --- 1. --check reads only regular files, compares bytes ------------------------------------------


@pytest.mark.parametrize("target_kind", ["secret", "dangling", "dev_zero", "directory"])
def test_check_reports_a_link_as_stale_without_reading_or_printing_its_target(
    target_kind: str, tmp_path: Path
) -> None:
    spec = spec_file(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("AWS_SECRET=hunter2\n", encoding="utf-8")
    targets = {
        "secret": secret,
        "dangling": tmp_path / "nowhere",
        "dev_zero": Path("/dev/zero"),
        "directory": tmp_path / "victim",
    }
    (tmp_path / "victim").mkdir()
    (out / "tiny.py").symlink_to(targets[target_kind])
    result = cli("render", spec, "--target", "torch", "--out-dir", str(out), "--check")
    assert result.exit_code == 1, result.output
    assert "hunter2" not in result.output and str(targets[target_kind]) not in result.output
    assert f"stale: {out / 'tiny.py'} (a symbolic link;" in result.stdout
    assert "\n+" not in result.stdout  # no diff: the link itself is what is stale


def test_check_never_follows_a_link_even_to_the_right_content(tmp_path: Path) -> None:
    spec = spec_file(tmp_path)
    good = tmp_path / "good.py"
    good.write_bytes(rendered(tmp_path, spec))
    link = tmp_path / "link.py"
    link.symlink_to(good)
    result = cli("render", spec, "--target", "torch", "-o", str(link), "--check")
    assert result.exit_code == 1 and "a symbolic link" in result.stdout
    assert cli("render", spec, "--target", "torch", "-o", str(good), "--check").exit_code == 0


def test_crlf_only_difference_is_one_line(tmp_path: Path) -> None:
    spec = spec_file(tmp_path)
    target = tmp_path / "tiny.py"
    target.write_bytes(rendered(tmp_path, spec).replace(b"\n", b"\r\n"))
    result = cli("render", spec, "--target", "torch", "-o", str(target), "--check")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"stale: {target} (CRLF line endings; resgen writes LF)"
    assert len(lines) == 3, lines  # the note, the count, the fixing command


@pytest.mark.parametrize("bad", [b"\xff", b"\xc3", b"\xed\xa0\x80"])
def test_bytes_that_decode_to_a_replacement_character_are_stale(bad: bytes, tmp_path: Path) -> None:
    """The spec's description holds U+FFFD; the file holds invalid UTF-8 there instead."""
    spec = spec_file(tmp_path, description="odd \ufffd char")
    good = rendered(tmp_path, spec)
    assert "\ufffd".encode() in good
    target = tmp_path / "tiny.py"
    target.write_bytes(good.replace("\ufffd".encode(), bad))
    result = cli("render", spec, "--target", "torch", "-o", str(target), "--check")
    assert result.exit_code == 1, result.output
    assert "\ufffd" in result.stdout and "\\x" in result.stdout  # the diff shows the bytes escaped
    target.write_bytes(good)
    assert cli("render", spec, "--target", "torch", "-o", str(target), "--check").exit_code == 0


def test_a_stale_file_cannot_put_terminal_escapes_in_the_log(tmp_path: Path) -> None:
    spec = spec_file(tmp_path)
    target = tmp_path / "tiny.py"
    target.write_bytes(b"\x1b[2J\x1b]0;owned\x07\n::error ::fake\n")
    result = cli("render", spec, "--target", "torch", "-o", str(target), "--check")
    assert result.exit_code == 1
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert not any(line.startswith("::") for line in result.stdout.splitlines())


# --- 2. never replace what is not a regular file; a directory or nothing is not a file name ------------


def special_files(folder: Path) -> dict[str, Path]:
    fifo = folder / "fifo.py"
    os.mkfifo(fifo)
    sock_path = folder / "sock.py"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    sock.close()
    found = {"fifo": fifo, "socket": sock_path}
    if Path("/dev/null").exists():
        found["device"] = Path("/dev/null")
    return found


@pytest.mark.parametrize("command", ["render", "graph", "check"])
def test_a_fifo_socket_or_device_at_the_output_is_refused(command: str, tmp_path: Path) -> None:
    spec = spec_file(tmp_path)
    for kind, path in special_files(tmp_path).items():
        before = os.lstat(path)
        args = {
            "render": ["render", spec, "--target", "torch", "-o", str(path)],
            "graph": ["graph", spec, "-o", str(path)],
            "check": ["render", spec, "--target", "keras", "-o", str(path), "--check"],
        }[command]
        lines = assert_clean_failure(cli(*args))
        assert lines == [f"{path}: error: {describe(kind)} is in the way; resgen replaces only regular files"]
        after = os.lstat(path)
        assert (after.st_ino, stat.S_IFMT(after.st_mode)) == (before.st_ino, stat.S_IFMT(before.st_mode))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo.py", "sock.py", "tiny.json"]


def describe(kind: str) -> str:
    return {"fifo": "a FIFO (named pipe)", "socket": "a socket", "device": "a character device"}[kind]


@pytest.mark.parametrize("command", ["render", "graph"])
@pytest.mark.parametrize("suffix", ["out/", "existing", ".", ""])
def test_a_directory_or_empty_output_path_is_refused(command: str, suffix: str, tmp_path: Path) -> None:
    spec = spec_file(tmp_path)
    (tmp_path / "existing").mkdir()
    path = "" if suffix == "" else str(tmp_path / suffix) + ("/" if suffix == "out/" else "")
    args = ["render", spec, "--target", "torch"] if command == "render" else ["graph", spec]
    result = cli(*args, "-o", path)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "Invalid value for '-o' / '--output'" in result.stderr
    assert ("the path is empty" if suffix == "" else "is a directory; give a file name") in result.stderr
    assert "internal error" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing", "tiny.json"]
    assert list((tmp_path / "existing").iterdir()) == []


def test_an_empty_out_dir_is_refused(tmp_path: Path) -> None:
    spec = spec_file(tmp_path)
    result = cli("render", spec, "--target", "torch", "--out-dir", "")
    assert result.exit_code == 2 and "internal error" not in result.stderr, result.output


# --- 3. two specs, one file ------------------------------------------------------------------------


@pytest.mark.parametrize("second_name", ["tiny", "TINY"])
def test_two_specs_rendering_to_one_file_are_refused(second_name: str, tmp_path: Path) -> None:
    first = spec_file(tmp_path, "a.json")
    second = spec_file(tmp_path, "b.yaml.json", name=second_name, description="another")
    out = tmp_path / "out"
    for extra in ([], ["--check"]):
        lines = assert_clean_failure(
            cli("render", first, second, "-t", "keras", "--out-dir", str(out), *extra)
        )
        assert len(lines) == 1 and first in lines[0] and second in lines[0], lines
        assert "both render to" in lines[0]
    assert not out.exists()


def test_the_same_spec_twice_is_one_spec(tmp_path: Path) -> None:
    spec = spec_file(tmp_path)
    result = cli("render", spec, spec, "-t", "torch", "--out-dir", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["tiny.py"]


# --- 4. file names and spec text in messages ----------------------------------------------------------

INJECTED = "x\n::error file=a::pwned\r\x1b[31m"


def assert_no_injected_lines(output: str) -> None:
    assert "\x1b" not in output and "\r" not in output
    assert not any(line.startswith("::") for line in output.splitlines()), output


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "{spec}"],
        ["render", "{spec}", "-t", "torch", "-o", "{out}"],
        ["render", "{spec}", "-t", "torch", "-o", "{out}", "--check"],
        ["graph", "{spec}", "-o", "{out}"],
        ["diff", "{spec}", "{spec}"],
    ],
)
def test_a_file_name_cannot_start_a_line_in_a_ci_log(args: list[str], tmp_path: Path) -> None:
    spec = spec_file(tmp_path, f"{INJECTED}.json")
    out = str(tmp_path / f"{INJECTED}.py")
    result = cli(*[a.format(spec=spec, out=out) for a in args])
    assert result.exit_code in (0, 1), result.output
    assert_no_injected_lines(result.output)


def test_a_bad_spec_with_a_hostile_file_name_is_one_escaped_line(tmp_path: Path) -> None:
    spec = spec_file(tmp_path, f"{INJECTED}.json", name="1bad")
    lines = assert_clean_failure(cli("validate", spec))
    assert len(lines) == 1 and "\\n::error" in lines[0], lines
    assert_no_injected_lines("\n".join(lines))


@pytest.mark.parametrize(
    "description",
    [
        "[click me](https://evil.example) ![x](https://evil.example/t.png)",
        "<img src=x onerror=alert(1)> <details open>",
        "`` ` `` [a](javascript:alert(1)) ``",
        "see https://evil.example and www.evil.example, cc @octocat",
        "| broken | table |",
    ],
)
def test_markdown_diff_shows_spec_text_literally(description: str, tmp_path: Path) -> None:
    old = spec_file(tmp_path, "old.json")
    new = spec_file(tmp_path, "new.json", description=description)
    result = cli("diff", old, new, "--format", "markdown")
    assert result.exit_code == 0, result.output
    body = result.stdout
    outside_code = re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", body)
    assert "](" not in outside_code.replace("\\](", "")  # no link or image
    assert not re.search(r"(?<!\\)<[a-z]", outside_code)  # no HTML tag
    for line in body.splitlines():
        if line.startswith("|"):
            assert len(re.findall(r"(?<!\\)\|", line)) in (4, 5), line  # cells intact
    description_row = next(line for line in body.splitlines() if line.startswith("| `description`"))
    cells = re.split(r"(?<!\\)\|", description_row)
    new_cell = cells[3].strip()
    fence = re.match("`+", new_cell)
    assert fence and new_cell.endswith(fence[0]), new_cell  # the whole text is one code span


# --- 5. options, --debug --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [("0", "5"), ("5", "-1"), ("4097", "8")])
def test_a_bad_input_size_is_blamed_on_the_option(size: tuple[str, str], tmp_path: Path) -> None:
    result = cli("parity", spec_file(tmp_path), "--input-size", *size)
    assert result.exit_code == 2
    assert "Invalid value for '--input-size'" in result.stderr, result.stderr
    assert "tiny.json" not in result.stderr


def test_debug_prints_the_traceback_of_an_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_args: Any) -> Any:
        raise RuntimeError("deep")

    monkeypatch.setattr("resgen.lower.lower", boom)
    plain = cli("validate", "cifar_resnet20")
    assert plain.exit_code == 2 and "Traceback" not in plain.stderr
    assert "run with --debug" in plain.stderr
    debug = cli("--debug", "validate", "cifar_resnet20")
    assert debug.exit_code == 2 and "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1].startswith("resgen: internal error: RuntimeError: deep")
    monkeypatch.setenv("RESGEN_DEBUG", "1")
    assert "Traceback" in cli("validate", "cifar_resnet20").stderr


def test_bad_input_is_never_a_traceback_even_with_debug(tmp_path: Path) -> None:
    spec = spec_file(tmp_path, name="1bad")
    lines = assert_clean_failure(cli("--debug", "validate", spec))
    assert len(lines) == 1


# --- 6. no false refusals; the diff verdict --------------------------------------------------------


@pytest.mark.parametrize(("height", "width"), [(64, 1), (1, 64), (1, 1), (2, 1)])
def test_a_one_pixel_side_through_a_stride_two_stem_is_not_a_collapse(height: int, width: int) -> None:
    compiled = compile_spec(
        "resnet18", input_size=(height, width)
    )  # 7x7/2 stem, 3x3/2 max-pool, three stride-2 stages
    shape = compiled.analysis.shape("stem.conv")
    assert shape[1:] == ((height + 1) // 2, (width + 1) // 2)


def test_identical_layer_graphs_are_the_same_network(tmp_path: Path) -> None:
    data = compile_spec("resnet18").spec.model_dump(mode="json")
    data["shortcut"]["stride_only"] = "max_pool"  # resnet18 never changes resolution alone
    data["description"] = "changed"
    path = tmp_path / "same.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    for fmt in ("text", "markdown", "json"):
        result = cli("diff", "resnet18", str(path), "--format", fmt)
        assert result.exit_code == 0, result.output
        if fmt == "json":
            report = json.loads(result.stdout)
            assert report["same"] is True
        else:
            assert "same network" in result.stdout.splitlines()[2 if fmt == "markdown" else 0]


# --- 7. the core install: a missing framework names the extra -------------------------------------


@pytest.mark.parametrize("module", ["torch", "numpy"])
@pytest.mark.parametrize(
    "args",
    [
        ["parity", "cifar_resnet20"],
        ["weights", "convert", "cifar_resnet20", "--from", "torch", "in.pt", "--to", "keras", "out.h5"],
    ],
)
def test_without_a_framework_the_message_names_the_extra(
    module: str, args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on a core install: the frameworks, and `module`, cannot be imported (None in sys.modules)."""
    for blocked in {"torch", "keras", "tensorflow", "safetensors", "h5py", module}:
        monkeypatch.setitem(sys.modules, blocked, None)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.pt").write_bytes(b"")
    lines = assert_clean_failure(cli(*args))
    assert len(lines) == 1, lines
    assert "internal error" not in lines[0]
    assert "pip install 'resgen[frameworks]'" in lines[0], lines
    assert list(tmp_path.iterdir()) == [tmp_path / "in.pt"]


# --- 8. absurd sizes: warned about, never allocated ------------------------------------------------

HUGE = {
    **TINY,
    "name": "huge",
    "input": {"height": 4096, "width": 4096, "channels": 3},
    "stem": {"kind": "conv", "filters": 1024, "kernel_size": 7, "stride": 1},
    "block": {"kind": "bottleneck"},
    "stages": [{"blocks": 8, "filters": 4096, "stride": 1}],
}
WIDE_MAPS = {**TINY, "name": "wide", "input": {"height": 4096, "width": 4096, "channels": 3}}
WIDE_MAPS["stem"] = {"kind": "conv", "filters": 512, "kernel_size": 3, "stride": 1}
WIDE_MAPS["stages"] = [{"blocks": 2, "filters": 512, "stride": 1}]


@pytest.mark.parametrize(("data", "what"), [(HUGE, "parameters"), (WIDE_MAPS, "layer outputs of one image")])
def test_an_absurd_size_warns_in_validate_and_summary_and_is_refused_by_builders(
    data: dict[str, Any], what: str, tmp_path: Path
) -> None:
    spec = spec_file(tmp_path, "big.json", **{k: v for k, v in data.items() if k in TINY})
    for args in (["validate", spec], ["summary", spec, "--format", "json"]):
        result = cli(*args)
        assert result.exit_code == 0, result.output
        warnings = [line for line in result.stderr.splitlines() if ": warning: " in line]
        assert len(warnings) == 1 and what in warnings[0] and "more than resgen builds" in warnings[0]
    monkey_blocked = {"torch": None, "keras": None, "tensorflow": None}
    with pytest.MonkeyPatch.context() as monkeypatch:  # refused before any framework is imported
        for name, value in monkey_blocked.items():
            monkeypatch.setitem(sys.modules, name, value)
        for args in (
            ["parity", spec],
            ["weights", "convert", spec, "--from", "torch", "a.pt", "--to", "keras", "b.weights.h5"],
        ):
            lines = assert_clean_failure(cli(*args))
            assert len(lines) == 1 and lines[0].startswith(f"{spec}: error: ") and what in lines[0], lines


def test_an_ordinary_network_gets_no_size_warning() -> None:
    result = cli("validate", "resnet152", "wide_resnet101_2")
    assert result.exit_code == 0 and "warning" not in result.stderr


@pytest.mark.framework
@pytest.mark.parametrize(("height", "width"), [(64, 1), (1, 9)])
def test_a_one_pixel_side_builds_and_runs_in_both_frameworks(height: int, width: int) -> None:
    from resgen.compiler import compile_document
    from resgen.generate import render
    from resgen.generated_module import import_generated
    from tests.test_hostile import as_doc, check_keras, check_torch

    data = {
        **TINY,
        "input": {"height": height, "width": width, "channels": 3},
        "stem": {"kind": "conv", "filters": 4, "kernel_size": 7, "stride": 2, "pool": {"padding": 1}},
        "stages": [{"blocks": 1, "filters": 4, "stride": 1}, {"blocks": 1, "filters": 8, "stride": 2}],
    }
    compiled = compile_document(as_doc(data))
    assert compiled.analysis.shape("stem.conv")[1:] == ((height + 1) // 2, (width + 1) // 2)
    check_torch(compiled, import_generated(render(compiled, "torch"), "one_pixel_torch"))
    check_keras(compiled, import_generated(render(compiled, "keras"), "one_pixel_keras"))
