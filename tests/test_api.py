"""The public Python API: what `import resgen` offers, and that the command line agrees with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import resgen
from tests.helpers import ROOT, run_cli

TINY = {
    "format_version": 1,
    "name": "tiny",
    "input": {"height": 32, "width": 32},
    "stem": {"kind": "conv", "filters": 8, "kernel_size": 3, "stride": 1},
    "block": {"kind": "basic"},
    "stages": [{"blocks": 1, "filters": 8, "stride": 1}, {"blocks": 1, "filters": 16, "stride": 2}],
    "head": {"kind": "global_pool", "classes": 10},
}


def test_public_names_are_documented() -> None:
    assert set(resgen.__all__) >= {"compile", "render", "check", "summary", "diff", "SpecErrors", "Compiled"}
    for name in ("compile", "render", "check", "summary", "diff"):
        assert getattr(resgen, name).__doc__, name


def test_every_source_kind_compiles_to_the_same_network(tmp_path: Path) -> None:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY), encoding="utf-8")
    from_dict = resgen.compile(TINY)
    from_file = resgen.compile(path)
    from_spec = resgen.compile(from_dict.spec)
    assert from_dict.spec == from_file.spec == from_spec.spec
    assert resgen.compile(from_dict) is from_dict
    assert resgen.summary(from_dict) == resgen.summary(from_file)
    assert resgen.compile("resnet50").analysis.totals()["params"] == 25_557_032  # torchvision's count


def test_input_size_changes_shapes_not_parameters() -> None:
    net = resgen.compile("resnet18")
    small = resgen.compile(net, input_size=(33, 47))
    assert small.graph.input_hwc == (33, 47, 3)
    assert small.analysis.shape("stem.conv") == (64, 17, 24)
    assert small.analysis.totals()["params"] == net.analysis.totals()["params"]


def test_invalid_dict_raises_located_spec_errors() -> None:
    bad = {**TINY, "stem": {**TINY["stem"], "filtres": 8}}
    with pytest.raises(resgen.SpecErrors) as info:
        resgen.compile(bad)
    assert [str(e) for e in info.value.errors] == [
        "<dict>: error: stem.filtres: unknown field 'filtres'; did you mean 'filters'?"
    ]
    with pytest.raises(resgen.SpecErrors, match="control character"):
        resgen.compile({**TINY, "description": "a\u202eb"})  # the loader's checks apply to dicts too


def test_render_is_what_the_command_line_prints() -> None:
    code, out, _ = run_cli("render", "cifar_resnet20", "--target", "keras", "-o", "-")
    assert code == 0
    assert out == resgen.render("cifar_resnet20", "keras")


def test_check_reports_fresh_stale_missing_and_orphans(tmp_path: Path) -> None:
    other = {**TINY, "name": "other"}
    report = resgen.check([TINY, other], "torch", out_dir=tmp_path)
    assert [s.state for s in report.outdated] == ["missing", "missing"] and not report.ok
    (tmp_path / "tiny.py").write_text(resgen.render(TINY, "torch"), encoding="utf-8")
    (tmp_path / "other.py").write_text("# stale\n", encoding="utf-8")
    (tmp_path / "gone.py").write_text(resgen.render({**TINY, "name": "gone"}, "torch"), encoding="utf-8")
    report = resgen.check([TINY, other], "torch", out_dir=tmp_path)
    assert report.fresh == [tmp_path / "tiny.py"]
    assert [(s.state, s.path.name) for s in report.outdated] == [("stale", "other.py")]
    assert "-# stale" in report.outdated[0].unified_diff()
    assert report.orphans == [tmp_path / "gone.py"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gone.py", "other.py", "tiny.py"]  # nothing written


def test_diff_and_summary() -> None:
    change = resgen.diff("resnet50", "resnet101")
    assert not change.same
    assert resgen.diff("resnet50", ROOT / "specs" / "resnet50.yaml").same
    data = resgen.summary("keras_resnet50")
    # keras.applications.ResNet50: 25,636,712 weights, of which 53,120 BatchNorm statistics
    assert (data["params"], data["non_trainable_params"]) == (25_583_592, 53_120)
    assert {row["name"] for row in data["layers"] if row["torch"] is None} >= {"head.softmax", "input"}
