"""Hostile input (issue 7): nothing in a spec executes, crashes, hangs, or corrupts files.

1. Random valid specs render in both targets to gated source; per-layer runtime shapes and parameter
   counts are the graph's.
2. Arbitrary text in every string field is rejected with a located error, or reaches the generated
   module only inside string literals; the module imports without side effects and builds.
3. Single-field mutations that tests/test_properties.py lacks (bounds, NaN/Infinity, bool for int,
   quoted numbers in YAML) are reported at that field, by the CLI too.
4. An unexpected internal error is one line asking for a report.
5. Nothing is written when any spec fails to render; the import gate refuses unexpected imports.
6. Generated hostile files (bombs, 2 MB, 10,000 levels deep) are refused by a stated limit with one
   located error (under a hang guard, not a time limit). Small fixed hostile files live in
   tests/bad_specs/ with their messages (tests/test_bad_specs.py).

The tests that build models (in parts 1 and 2) are marked `framework`; the others import no framework.

Hypothesis examples per run: 20 (shapes, plus 1 explicit) + 60 (text) + 150 (mutations) = 231.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import functools
import io
import json
import os
import re
import stat
import tempfile
import tokenize
import types
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from resgen import backends, load
from resgen import files as files_module
from resgen import generate as render_module
from resgen.compiler import Compiled, compile_document
from resgen.errors import SpecError, SpecErrors, format_path
from resgen.files import write_atomic
from resgen.generate import RenderError, check_source, render
from resgen.generated_module import import_generated
from resgen.naming import keras_names, torch_path
from resgen.spec import IDENTIFIER
from tests.helpers import assert_clean_failure, channels_last, cli, hang_guard
from tests.strategies import leaf_paths, spec_data

TARGETS = ("torch", "keras")


def hypothesis_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def as_doc(data: dict[str, Any], *, ensure_ascii: bool = True, json_input: bool = True) -> load.Document:
    raw = json.dumps(data, indent=1, ensure_ascii=ensure_ascii).encode("utf-8")
    return load.parse(raw, "hostile.json" if json_input else "hostile.yaml", json_input=json_input)


# --- 1. random valid specs: both targets, runtime shapes and counts ---------------------------------

# Graph ops the torch target writes as expressions in forward (no module), and the ReLU module one
# block or the stem shares between several graph nodes.
TORCH_UNHOOKED = {"input", "add", "flatten", "softmax", "relu"}


def block_outputs(compiled: Compiled) -> dict[tuple[int, int], str]:
    """The last graph node of every residual block, by (stage, block)."""
    return {key: layers[-1].name for key, layers in compiled.graph.block_layers().items()}


def torch_expected_shapes(compiled: Compiled) -> dict[str, list[tuple[int, ...]]]:
    """Output shapes (C, H, W) the graph predicts, by torch module path: layers, blocks, stages."""
    graph, analysis = compiled.graph, compiled.analysis
    expected: dict[str, list[tuple[int, ...]]] = defaultdict(list)
    for layer in graph:
        if layer.kind in TORCH_UNHOOKED:
            continue
        shape = analysis.shape(layer.name)
        if layer.kind == "global_avg_pool":
            shape = (*shape, 1, 1)  # torchvision pools to (C, 1, 1) and flattens in forward
        expected[torch_path(graph, layer.name)].append(shape)
    for (stage, block), name in block_outputs(compiled).items():
        shape = analysis.shape(name)
        expected[f"layer{stage}.{block - 1}"].append(shape)
        if block == compiled.spec.stages[stage - 1].blocks:
            expected[f"layer{stage}"].append(shape)
    return dict(expected)


def check_torch(compiled: Compiled, module: types.ModuleType) -> None:
    torch = pytest.importorskip("torch")
    graph = compiled.graph
    model = module.build_model().eval()
    modules = dict(model.named_modules())
    expected = torch_expected_shapes(compiled)
    seen: dict[str, list[tuple[int, ...]]] = defaultdict(list)
    for path in expected:
        assert path in modules, f"no torch module at {path}"
        modules[path].register_forward_hook(
            lambda _m, _a, out, path=path: seen[path].append(tuple(out.shape[1:]))
        )
    height, width, channels = graph.input_hwc
    with torch.no_grad():
        out = model(torch.randn(2, channels, height, width))
    assert dict(seen) == expected
    assert tuple(out.shape[1:]) == compiled.analysis.shape(graph.output.name)
    counts = compiled.analysis.totals()
    assert sum(p.numel() for p in model.parameters()) == counts["params"]
    stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    assert stats == counts["non_trainable_params"]


def check_keras(compiled: Compiled, module: types.ModuleType) -> None:
    keras = pytest.importorskip("keras")
    import numpy as np

    graph, analysis = compiled.graph, compiled.analysis
    model = module.build_model()
    by_node = keras_names(graph)  # a softmax fused into its Dense maps to that Dense
    names = list(dict.fromkeys(by_node.values()))
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    x = np.random.default_rng(0).normal(size=(2, *graph.input_hwc))
    runtime = {n: tuple(out.shape[1:]) for n, out in zip(names, probe(x.astype("float32")), strict=True)}
    mismatched = [
        f"{node} ({name}): graph {analysis.shape(node)} (C,H,W), keras {runtime[name]}"
        for node, name in by_node.items()
        if runtime[name] != channels_last(analysis.shape(node))
    ]
    assert not mismatched, "\n".join(mismatched)
    counts = analysis.totals()
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == counts["params"]
    assert sum(int(np.prod(w.shape)) for w in model.non_trainable_weights) == counts["non_trainable_params"]
    keras.backend.clear_session()


# Keras' MaxPooling2D strides default to the pool size, not 1: a stride-1 stem pool must say so.
STRIDE_ONE_POOL = {
    "format_version": 1,
    "name": "a",
    "input": {"height": 17, "width": 17, "channels": 1},
    "stem": {"kind": "conv", "filters": 2, "kernel_size": 1, "stride": 1, "norm": False},
    "block": {"kind": "basic"},
    "stages": [{"blocks": 1, "filters": 4, "stride": 1}],
    "head": {"kind": "global_pool", "classes": 1},
}
STRIDE_ONE_POOL["stem"]["pool"] = {"kernel_size": 3, "stride": 1, "padding": 1}


@pytest.mark.framework
@hypothesis_settings(20)
@given(spec_data())
@example(STRIDE_ONE_POOL)
def test_random_specs_render_and_run_with_the_predicted_shapes(data: dict[str, Any]) -> None:
    compiled = compile_document(as_doc(data))
    sources = {target: render(compiled, target) for target in TARGETS}
    for target, source in sources.items():
        ast.parse(source)
        check_source(source, backends.get(target).allowed_imports, target)
    check_torch(compiled, import_generated(sources["torch"], "random_torch"))
    check_keras(compiled, import_generated(sources["keras"], "random_keras"))


# --- 2. hostile text in string fields --------------------------------------------------------------

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
STRING_FIELDS = ("name", "description")
_SPEC_LINE = re.compile(r"Spec: \S+ \(sha256 [0-9a-f]{16}\)")


def code_without_text(source: str) -> str:
    """The module's syntax tree with every string constant blanked: what the code does."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = ""
    return ast.dump(tree)


def comments(source: str) -> list[str]:
    """Every comment; the header (which a long name may wrap) as one line, its name and hash blanked."""
    header: list[str] = []
    rest: list[str] | None = None  # None until the first code token ends the header
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            (header if rest is None else rest).append(token.string)
        elif token.type not in (tokenize.NL, tokenize.NEWLINE) and rest is None:
            rest = []
    joined = " ".join(line.removeprefix("#").strip() for line in header)
    return [_SPEC_LINE.sub("Spec: <name> (sha256 <hash>)", joined), *(rest or [])]


def import_time_calls(source: str) -> list[str]:
    """Calls that run when the module is imported (everything outside function bodies)."""
    calls: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Call):
            calls.append(ast.unparse(node))
        for name, value in ast.iter_fields(node):
            if name == "body" and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, ast.AST):
                    visit(child)

    visit(ast.parse(source))
    return calls


@contextlib.contextmanager
def no_side_effects() -> Iterator[None]:
    """Run the body in an empty temporary directory; fail if it prints or leaves anything there."""
    out, err = io.StringIO(), io.StringIO()
    with tempfile.TemporaryDirectory() as folder:
        with contextlib.chdir(folder), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield
        assert list(Path(folder).iterdir()) == []
    assert out.getvalue() == "" and err.getvalue() == ""


@functools.cache
def baseline_sources() -> dict[str, str]:
    compiled = compile_document(as_doc(TINY))
    return {target: render(compiled, target) for target in TARGETS}


def assert_rendered_harmlessly(field: str, text: str, compiled: Compiled) -> None:
    """`text` changed nothing but string literals; the module imports quietly and builds."""
    if field == "name":
        assert re.fullmatch(IDENTIFIER, text) and text.isascii()
    for target in TARGETS:
        source = render(compiled, target)  # render gates the text: parses, expected imports only
        baseline = baseline_sources()[target]
        assert code_without_text(source) == code_without_text(baseline), target
        assert comments(source) == comments(baseline), target
        assert import_time_calls(source) == [], target
        with no_side_effects():
            module = import_generated(source, f"hostile_{target}")
            model = module.build_model()
        if target == "keras":
            assert compiled.spec.description == module.DESCRIPTION
            assert model.name == compiled.spec.name
            pytest.importorskip("keras").backend.clear_session()
        elif compiled.spec.description:
            assert " ".join(compiled.spec.description.split()) in " ".join(module.__doc__.split())


def assert_rejected_at(field: str, errors: tuple[SpecError, ...]) -> None:
    """Located errors about the field, or (raw characters the file may not hold) about the file."""
    assert errors
    for error in errors:
        assert error.line is not None and error.column is not None, str(error)
        assert error.path in {(field,), ()}, str(error)
        assert len(str(error).splitlines()) == 1 and str(error).isprintable(), repr(str(error))


def check_text(field: str, text: str, *, ensure_ascii: bool = True, json_input: bool = True) -> bool:
    """Feed `text` as the field; True if accepted (and then rendered harmlessly)."""
    data = {**TINY, field: text}
    try:
        compiled = compile_document(as_doc(data, ensure_ascii=ensure_ascii, json_input=json_input))
    except SpecErrors as exc:
        assert_rejected_at(field, exc.errors)
        return False
    assert getattr(compiled.spec, field) == text
    assert_rendered_harmlessly(field, text, compiled)
    return True


HARMLESS_DESCRIPTIONS = [
    'He said "hi" and it\'s fine',
    '"""',
    "'''",
    'ends with a quote"',
    "ends with a backslash \\",
    "\\n \\r \\x00 \\u2028 \\N{BULLET} are backslashes, not escapes",
    "{{ spec.name }} {% for x in y %}{% endfor %} {# jinja #}",
    "# not a comment",
    "import os; os.system('echo pwned')",
    '"); import os; print("',
    '""" + __import__("os").system("id") + """',
    "ünïcode ✓ 名前 😀 𝔘",
    "a" * 500,
    " ".join(["word"] * 90),
]
REJECTED_DESCRIPTIONS = [
    ("line\nbreak", "control character '\\n'"),
    ("carriage\rreturn", "control character '\\r'"),
    ("vertical\x0btab", "control character '\\x0b'"),
    ("form\x0cfeed", "control character '\\x0c'"),
    ("next\x85line", "control character '\\x85'"),
    ("line\u2028separator", "control character '\\u2028'"),
    ("paragraph\u2029separator", "control character '\\u2029'"),
    ("nul\x00byte", "control character '\\x00'"),
    ("tab\there", "control character '\\t'"),
    ("\x1b[31mred", "control character '\\x1b'"),
    ("bidi \u202e override", "control character '\\u202e'"),
    ("a" * 501, "at most 500 characters"),
]
REJECTED_NAMES = [
    "my model",
    "tiny; import os",
    "tiny\nimport os",
    "naïve",
    "ＡＢＣ",
    "名前",
    "_private",
    "1abc",
    "",
    "a" * 65,
    "class",
    "match",
    "type",
    "print",
    "torch",
    "keras",
    "build_model",
    "__import__",
    "x'",
    '"',
]


@pytest.mark.framework
@pytest.mark.parametrize("text", HARMLESS_DESCRIPTIONS)
def test_hostile_description_is_only_ever_a_string_literal(text: str) -> None:
    assert check_text("description", text, ensure_ascii=False)


@pytest.mark.parametrize(("text", "message"), REJECTED_DESCRIPTIONS)
def test_control_characters_and_long_descriptions_are_rejected(text: str, message: str) -> None:
    with pytest.raises(SpecErrors) as info:
        compile_document(as_doc({**TINY, "description": text}))
    assert_rejected_at("description", info.value.errors)
    assert message in str(info.value)


@pytest.mark.parametrize("name", REJECTED_NAMES)
def test_names_that_are_not_safe_identifiers_are_rejected(name: str) -> None:
    assert not check_text("name", name)


@pytest.mark.framework
@pytest.mark.parametrize("name", ["A", "tiny2", "resnet_50", "x" * 64])
def test_identifier_names_render_harmlessly(name: str) -> None:
    assert check_text("name", name)


FRAGMENTS = [
    '"',
    "'",
    '"""',
    "\\",
    "\n",
    "\r",
    "\x0b",
    "\x0c",
    "\x85",
    "\u2028",
    "\u2029",
    "\x00",
    "{{ x }}",
    "{% if %}",
    "#",
    "import os",
    " ",
    "tiny",
    "_",
    "ü",
    "😀",
]
hostile_text = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=3), max_size=8).map("".join),
    st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,70}", fullmatch=True),
    st.text(min_size=495, max_size=510, alphabet="ab \"'\\"),
)


@pytest.mark.framework
@hypothesis_settings(60)
@given(st.sampled_from(STRING_FIELDS), hostile_text, st.booleans(), st.booleans())
def test_arbitrary_text_is_rejected_or_rendered_harmlessly(
    field: str, text: str, ensure_ascii: bool, json_input: bool
) -> None:
    accepted = check_text(field, text, ensure_ascii=ensure_ascii, json_input=json_input)
    event(f"{field} {'accepted' if accepted else 'rejected'}")


# --- 3. single-field mutations: bounds, non-finite numbers, bool for int, quoted numbers -------------

SENTINEL = "__resgen_mutation__"
BOTH, JSON_ONLY, YAML_ONLY = ("json", "yaml"), ("json",), ("yaml",)
# Replacement text of a scalar, by the type of the valid value it replaces, and the formats it is
# written in. Every one is invalid for every field of that type (zero is handled apart: padding takes 0).
MUTATIONS: dict[type, list[tuple[str, tuple[str, ...]]]] = {
    int: [
        ("1" + "0" * 30, BOTH),
        ("-1", BOTH),
        ("true", BOTH),
        ("false", BOTH),
        ("1.5", BOTH),
        ('"12"', BOTH),
        ("null", BOTH),
        ("[]", BOTH),
    ],
    float: [
        ("NaN", JSON_ONLY),
        ("Infinity", JSON_ONLY),
        ("-Infinity", JSON_ONLY),
        (".nan", YAML_ONLY),
        ("-.inf", YAML_ONLY),
        ("1e400", BOTH),
        ("-1.0", BOTH),
        ("1" + "0" * 30, BOTH),
        ("true", BOTH),
        ('"0.5"', BOTH),
    ],
    bool: [("1", BOTH), ("0", BOTH), ('"true"', BOTH), ("yes", YAML_ONLY), ("null", BOTH)],
    str: [("12", BOTH), ("true", BOTH), ("null", BOTH), ("{}", BOTH)],
}
ZERO_ALLOWED = {("stem", "pool", "padding")}


def yaml_lines(data: dict[str, Any], indent: str = "") -> list[str]:
    """Block-style YAML as people write it; strings double-quoted (as JSON writes them)."""
    lines: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines += [f"{indent}{key}:", *yaml_lines(value, indent + "  ")]
        elif isinstance(value, list):
            lines.append(f"{indent}{key}:")
            for item in value:
                first, *rest = yaml_lines(item, indent + "    ")
                lines += [f"{indent}  - {first.lstrip()}", *rest]
        else:
            lines.append(f"{indent}{key}: {json.dumps(value)}")
    return lines


def with_token(
    data: dict[str, Any], path: tuple[str | int, ...], token: str, fmt: str
) -> tuple[str, int, int]:
    """The spec as `fmt` text with `token` written as the value at `path`, and the token's line and column."""
    mutated = copy.deepcopy(data)
    parent = mutated
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = SENTINEL
    text = json.dumps(mutated, indent=1) if fmt == "json" else "\n".join(yaml_lines(mutated)) + "\n"
    start = text.index(json.dumps(SENTINEL))
    line = text.count("\n", 0, start) + 1
    column = start - (text.rfind("\n", 0, start) + 1) + 1
    return text.replace(json.dumps(SENTINEL), token), line, column


@st.composite
def mutations(draw: st.DrawFn) -> tuple[dict[str, Any], tuple[str | int, ...], str, str]:
    """A valid spec, a leaf path, a replacement token invalid there, and the format to write it in."""
    data = draw(spec_data())
    paths = [p for p in leaf_paths(data) if p != ("stem", "pool")]
    path = draw(st.sampled_from(paths))
    value = data
    for part in path:
        value = value[part]
    options = list(MUTATIONS[type(value)])
    if type(value) is int and path not in ZERO_ALLOWED:
        options.append(("0", BOTH))
    token, formats = draw(st.sampled_from(options))
    return data, path, token, draw(st.sampled_from(formats))


@hypothesis_settings(150)
@given(mutations())
def test_mutated_field_is_reported_at_its_path_and_position(
    case: tuple[dict[str, Any], tuple[str | int, ...], str, str],
) -> None:
    data, path, token, fmt = case
    text, line, column = with_token(data, path, token, fmt)
    file = f"mutated.{fmt}"
    with pytest.raises(SpecErrors) as info:
        compile_document(load.parse(text.encode(), file, json_input=fmt == "json"))
    at_path = [e for e in info.value.errors if e.path == path]
    assert at_path, [str(e) for e in info.value.errors]
    assert (at_path[0].line, at_path[0].column) == (line, column), str(at_path[0])
    if token.startswith('"'):
        assert "write it without quotes" in at_path[0].message

    with tempfile.TemporaryDirectory() as folder, contextlib.chdir(folder):
        Path(file).write_text(text, encoding="utf-8")
        stderr = assert_clean_failure(cli("validate", file))
    assert f"{file}:{line}:{column}: error: {format_path(path)}: {at_path[0].message}" in stderr
    assert all(re.match(rf"{re.escape(file)}:\d+:\d+: error: \S+: ", row) for row in stderr), stderr


# --- 4. unexpected internal errors -----------------------------------------------------------------


def _boom(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("something deep went wrong")


@pytest.mark.parametrize(
    ("target", "args"),
    [
        ("resgen.lower.lower", ["validate", "cifar_resnet20"]),
        ("resgen.lower.lower", ["summary", "cifar_resnet20", "--format", "json"]),
        ("resgen.passes.analyse", ["graph", "cifar_resnet20"]),
        ("resgen.backends.pytorch.view_model", ["render", "cifar_resnet20", "--target", "torch"]),
        ("resgen.backends.keras3.view_model", ["render", "cifar_resnet20", "--target", "keras"]),
    ],
)
def test_internal_error_is_one_line_asking_for_a_report(
    target: str, args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(target, _boom)
    lines = assert_clean_failure(cli(*args))
    assert len(lines) == 1, lines
    assert lines[0].startswith("resgen: internal error: RuntimeError: something deep went wrong")
    assert "please report it" in lines[0]


def test_internal_error_with_a_multi_line_message_is_still_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_args: Any) -> Any:
        raise ValueError("first line\nsecond line")

    monkeypatch.setattr("resgen.lower.lower", boom)
    lines = assert_clean_failure(cli("validate", "cifar_resnet20"))
    assert len(lines) == 1 and lines[0].startswith("resgen: internal error:"), lines


# --- 5. output safety ------------------------------------------------------------------------------


def write_specs(folder: Path, names: list[str]) -> list[str]:
    paths = []
    for name in names:
        path = folder / f"{name}.json"
        path.write_text(json.dumps({**TINY, "name": name}), encoding="utf-8")
        paths.append(str(path))
    return paths


def fail_second_call(original: Callable[..., Any], error: Exception) -> Callable[..., Any]:
    calls = 0

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise error
        return original(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("stage", ["gate", "view_model"])
def test_nothing_is_written_when_one_of_three_specs_fails_to_render(
    target: str, stage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if stage == "gate":
        planted = fail_second_call(check_source, RenderError("generated source for b does not parse"))
        monkeypatch.setattr(render_module, "check_source", planted)
    else:
        backend = backends.get(target)
        monkeypatch.setattr(backend, "view_model", fail_second_call(backend.view_model, KeyError("x")))
    specs = write_specs(tmp_path, ["first", "second", "third"])
    out = tmp_path / "out"
    out.mkdir()
    (out / "first.py").write_text("old", encoding="utf-8")
    lines = assert_clean_failure(cli("render", *specs, "--target", target, "--out-dir", str(out)))
    assert len(lines) == 1 and lines[0].startswith("resgen: "), lines
    assert [p.name for p in out.iterdir()] == ["first.py"]
    assert (out / "first.py").read_text(encoding="utf-8") == "old"


def test_failed_rename_restores_every_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = tmp_path / "old.py", tmp_path / "new.py"
    old.write_text("previous", encoding="utf-8")
    real_replace = files_module.os.replace

    def replace(src: str, dst: Any) -> None:
        if Path(dst) == new and str(src).endswith(".tmp"):
            raise OSError(28, "No space left on device", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(files_module.os, "replace", replace)
    with pytest.raises(OSError):
        write_atomic({old: "replacement", new: "fresh"})
    assert [p.name for p in tmp_path.iterdir()] == ["old.py"]
    assert old.read_text(encoding="utf-8") == "previous"


def test_symlink_in_the_output_is_replaced_never_read_or_written_through(tmp_path: Path) -> None:
    """A pull request can commit out/tiny.py as a link to anything (/dev/zero, a file outside the
    repository): rendering replaces the link itself. A link to a directory shows that nothing reads
    through it (the backup used to copy the target)."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep me", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    (out / "tiny.py").symlink_to(victim)
    (spec,) = write_specs(tmp_path, ["tiny"])
    result = cli("render", spec, "--target", "torch", "--out-dir", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "tiny.py").is_file() and not (out / "tiny.py").is_symlink()
    assert [p.name for p in out.iterdir()] == ["tiny.py"]
    assert [p.name for p in victim.iterdir()] == ["keep.txt"]


def test_a_failed_write_restores_a_symlink_as_a_symlink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link, other = tmp_path / "link.py", tmp_path / "other.py"
    link.symlink_to(tmp_path / "elsewhere.py")  # dangling: exists() is False, the link is still there
    real_replace = files_module.os.replace

    def replace(src: str, dst: Any) -> None:
        if Path(dst) == other:
            raise OSError(28, "No space left on device", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(files_module.os, "replace", replace)
    with pytest.raises(OSError):
        write_atomic({link: "new", other: "new"})
    assert [p.name for p in tmp_path.iterdir()] == ["link.py"]
    assert link.is_symlink() and link.readlink() == tmp_path / "elsewhere.py"


def test_written_files_get_ordinary_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        fresh, kept = tmp_path / "fresh.py", tmp_path / "kept.py"
        kept.write_text("old", encoding="utf-8")
        kept.chmod(0o640)
        write_atomic({fresh: "new", kept: "new"})
    finally:
        os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644  # not mkstemp's 0o600
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640


def test_unwritable_output_path_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("", encoding="utf-8")
    (spec,) = write_specs(tmp_path, ["tiny"])
    lines = assert_clean_failure(
        cli("render", spec, "--target", "torch", "-o", str(tmp_path / "file" / "m.py"))
    )
    assert len(lines) == 1 and ": error: " in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "tiny.json"]


def test_unknown_target_is_a_clear_error() -> None:
    with pytest.raises(RenderError, match="unknown target 'jax'; choose one of: torch, keras"):
        render_module.backend("jax")
    lines = assert_clean_failure(cli("render", "cifar_resnet20", "--target", "jax"))
    assert any("'jax' is not one of" in line for line in lines), lines


@pytest.mark.parametrize(
    "source",
    [
        "import os",
        "import subprocess",
        "import torch, os",
        "import os.path",
        "from os import system",
        "from subprocess import run as safe",
        "from . import sibling",
        "from .. import parent",
        "def build_model():\n    import os\n    return os",
        "import importlib",
        "x = __import__('os')",
        "exec('import os')",
        "eval(\"__import__('os')\")",
        "compile('import os', 'x', 'exec')",
        "__builtins__.open('x', 'w')",
        "def f(:\n    pass",
    ],
)
def test_gate_refuses_unexpected_imports_and_dynamic_code(source: str) -> None:
    with pytest.raises(RenderError, match="generated source for probe"):
        check_source(source, {"torch", "__future__"}, "probe")


def test_gate_accepts_the_expected_imports() -> None:
    check_source(
        "from __future__ import annotations\nimport torch\nfrom torch import nn\n",
        {"torch", "__future__"},
        "probe",
    )


# --- 6. hostile files, generated: each is refused with one located line, without hanging -------------


def _alias_bomb() -> bytes:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 12)]
    return "\n".join(lines).encode()


def _merge_bomb() -> bytes:
    lines = ["a0: &a0 {lol: 1}"]
    lines += [f"a{i}: &a{i} {{<<: [" + ", ".join([f"*a{i - 1}"] * 9) + "]}" for i in range(1, 12)]
    return "\n".join(lines).encode()


HOSTILE_FILES: dict[str, tuple[Callable[[], bytes], str]] = {
    "alias_bomb.yaml": (_alias_bomb, "spec has more than 50,000 values (aliases included)"),
    "merge_bomb.yaml": (_merge_bomb, "merge keys ('<<') are not allowed"),
    "two_megabytes.yaml": (lambda: b"# padding\n" * 209_716, "specs are limited to 1,048,576"),
    "megabyte_of_values.yaml": (
        lambda: b"a: [" + b"1," * 524_000 + b"1]\n",
        "more than 50,000 keys and values",
    ),
    "megabyte_of_keys.yaml": (
        lambda: b"".join(b"k%d: 1\n" % i for i in range(110_000))[: 1 << 20],
        "more than 50,000 keys and values",
    ),
    "deep_block.yaml": (
        lambda: "".join(f"{' ' * i}a:\n" for i in range(1400)).encode(),
        "nested more than 32",
    ),
    "deep_flow.yaml": (lambda: b"[" * 100_000 + b"]" * 100_000, "nested more than 32"),
    "deep_sequence.yaml": (lambda: b"- " * 100_000 + b"x\n", "nested more than 32"),
    "deep_array.json": (lambda: b"[" * 10_000 + b"]" * 10_000, "nested more than 32"),
    "deep_object.json": (lambda: b'{"a": ' * 10_000 + b"1" + b"}" * 10_000, "nested more than 32"),
    "huge_int.json": (lambda: b'{"format_version": 1' + b"0" * 400 + b"}", "a 401-digit integer"),
    "longest_int.yaml": (lambda: b"format_version: " + b"9" * 900_000, "a 900,000-digit integer"),
    "python_object.yaml": (lambda: b"name: !!python/object/new:os.system [id]\n", "is not allowed"),
    "binary.yaml": (lambda: b"name: !!binary aWQ=\n", "is not allowed"),
    "utf16.yaml": (lambda: "name: tiny\n".encode("utf-16"), "save it as UTF-8"),
    "utf32.json": (lambda: '{"name": "tiny"}'.encode("utf-32"), "save it as UTF-8"),
    "latin1.yaml": (lambda: "name: tiny\ndescription: café\n".encode("latin-1"), "not valid UTF-8"),
    "nul.json": (lambda: b'{"name": "ti\x00ny"}', "control character '\\x00'"),
}
UNLOCATED = {"two_megabytes.yaml"}  # refused by size before it is read as text


@pytest.mark.parametrize("file", sorted(HOSTILE_FILES))
def test_hostile_file_is_refused_with_one_located_line(file: str, tmp_path: Path) -> None:
    """Refused by the limit named in the message (not by running out of time or memory); the hang guard
    only turns an endless expansion into a failure."""
    make, message = HOSTILE_FILES[file]
    (tmp_path / file).write_bytes(make())
    with contextlib.chdir(tmp_path), hang_guard():
        lines = assert_clean_failure(cli("validate", file))
    assert len(lines) == 1 and message in lines[0], lines
    where = r"" if file in UNLOCATED else r":\d+:\d+"
    assert re.match(rf"{re.escape(file)}{where}: error: ", lines[0]), lines[0]


def test_symlink_to_an_endless_device_is_refused(tmp_path: Path) -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    (tmp_path / "endless.yaml").symlink_to("/dev/zero")
    with hang_guard():  # reading it to the end would never finish
        lines = assert_clean_failure(cli("validate", str(tmp_path / "endless.yaml")))
    message = "file is more than 1,048,576 bytes; specs are limited to 1,048,576"
    assert lines == [f"{tmp_path / 'endless.yaml'}: error: {message}"]
