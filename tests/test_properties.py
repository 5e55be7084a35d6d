"""Property tests of the front half: random valid specs compile; single-field mutations are located."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from resgen import load
from resgen.compiler import compile_document
from resgen.errors import SpecErrors
from resgen.generate import render
from tests.schema_coverage import format_choices, used_choices
from tests.strategies import leaf_paths, schema_spec_data, spec_data

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def as_doc(data: dict[str, Any], name: str = "random.json") -> load.Document:
    return load.parse(json.dumps(data, indent=1).encode(), name, json_input=True)


@SETTINGS
@given(spec_data())
def test_random_valid_specs_compile(data: dict[str, Any]) -> None:
    compiled = compile_document(as_doc(data))
    counted = compiled.analysis.totals()
    assert counted["params"] > 0
    assert compiled.analysis.shape("head.fc") == (data["head"]["classes"],)


@SETTINGS
@given(spec_data())
def test_json_and_yaml_spellings_compile_to_the_same_spec(data: dict[str, Any]) -> None:
    from_json = compile_document(as_doc(data)).spec
    yaml_text = json.dumps(data)  # JSON is YAML 1.2: the YAML reader must agree with the JSON reader
    from_yaml = compile_document(load.parse(yaml_text.encode(), "random.yaml")).spec
    assert from_json.canonical_json() == from_yaml.canonical_json()


def _wrong_value(value: Any) -> Any:
    """A replacement that no field accepts where `value` was valid: a different type."""
    if isinstance(value, bool) or value is None:
        return "maybe"
    if isinstance(value, (int, float)):
        return "12"
    return 12


@SETTINGS
@given(spec_data(), st.data())
def test_single_field_mutation_is_reported_at_that_field(data: dict[str, Any], pick: st.DataObject) -> None:
    paths = [p for p in leaf_paths(data) if p != ("stem", "pool")]
    path = pick.draw(st.sampled_from(paths))
    mutated = copy.deepcopy(data)
    parent = mutated
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = _wrong_value(parent[path[-1]])
    with pytest.raises(SpecErrors) as info:
        compile_document(as_doc(mutated))
    assert path in {e.path for e in info.value.errors}, [str(e) for e in info.value.errors]
    assert all(e.line is not None for e in info.value.errors)


@SETTINGS
@given(spec_data(), st.data())
def test_unknown_key_is_reported_where_it_was_added(data: dict[str, Any], pick: st.DataObject) -> None:
    mappings = [p[:-1] for p in leaf_paths(data) if len(p) >= 1 and not isinstance(p[-1], int)]
    where = pick.draw(st.sampled_from(sorted(set(mappings), key=str)))
    mutated = copy.deepcopy(data)
    target = mutated
    for part in where:
        target = target[part]
    target["unexpected_key"] = 1
    with pytest.raises(SpecErrors) as info:
        compile_document(as_doc(mutated))
    assert (*where, "unexpected_key") in {e.path for e in info.value.errors}


def test_whole_schema_strategy_reaches_every_kind_and_enumeration() -> None:
    """schema_spec_data's valid draws use every Literal value and both values of every boolean of the
    format (read from its models, so a new kind fails this until the strategy draws it)."""
    used: set[tuple[str, str, object]] = set()
    valid = []

    @settings(max_examples=300, deadline=None, derandomize=True, database=None)
    @given(schema_spec_data())
    def collect(data: dict[str, Any]) -> None:
        try:
            compiled = compile_document(as_doc(data))
        except SpecErrors:
            valid.append(False)
            return
        valid.append(True)
        used.update(used_choices(compiled.spec))

    collect()
    assert format_choices() - used == set()
    assert sum(valid) > 0.7 * len(valid)  # refusals are the exception, not what the property runs on


# What the property found (each a class fixed in resgen): timm's ResNetV2 paths with a blur-pooled stem,
# L2 by role and a classifier initialized as torch's default; a Keras bias initializer of a bottleneck
# whose first 1x1 is narrowed by reduce_first.
TIMM_V2_FOUND = {
    "format_version": 1,
    "name": "a",
    "input": {"height": 16, "width": 16, "channels": 1},
    "stem": {
        "kind": "conv",
        "filters": 2,
        "kernel_size": 1,
        "stride": 1,
        "norm": False,
        "pool": {"kernel_size": 3, "stride": 1, "padding": 1, "anti_alias": {"kind": "blur"}},
    },
    "block": {"kind": "basic", "preactivation": True},
    "stages": [{"blocks": 1, "filters": 4, "stride": 2}],
    "shortcut": {"kind": "projection", "norm": False, "source": "preactivated"},
    "regularization": {"l2": 1e-4},
    "init": {"dense": "uniform_fan_in"},
    "head": {"kind": "global_pool", "norm": True, "classes": 1, "classifier": "conv1x1"},
    "torch_paths": "timm_resnetv2",
}
REDUCE_FIRST_FOUND = {
    "format_version": 1,
    "name": "a",
    "input": {"height": 16, "width": 16, "channels": 1},
    "stem": {"kind": "deep", "widths": [2, 2], "stride": 1, "norm": False},
    "block": {"kind": "bottleneck", "expansion": 1, "reduce_first": 2, "stride_on": "conv1"},
    "stages": [{"blocks": 1, "filters": 2, "stride": 1}],
    "shortcut": {"kind": "zero_pad"},
    "conv_bias": "all",
    "padding": "tf_same",
    "head": {"kind": "global_pool", "classes": 1},
}


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(schema_spec_data())
@example(TIMM_V2_FOUND)
@example(REDUCE_FIRST_FOUND)
def test_whole_schema_valid_specs_render_both_targets(data: dict[str, Any]) -> None:
    try:
        compiled = compile_document(as_doc(data))
    except SpecErrors:
        assume(False)
        return
    for target in ("torch", "keras"):
        compile(render(compiled, target), f"<{target}>", "exec")


def test_timm_resnetv2_refuses_a_3x3_projection_at_its_field() -> None:
    data = copy.deepcopy(TIMM_V2_FOUND)
    data["shortcut"]["kernel_size"] = 3
    with pytest.raises(SpecErrors) as info:
        compile_document(as_doc(data))
    assert [e.path for e in info.value.errors] == [("shortcut", "kernel_size")]
    assert "1x1" in info.value.errors[0].message


def test_weight_standardizing_a_single_weight_kernel_is_refused_at_conv_kind() -> None:
    """Found by the whole-schema property: a 1x1 convolution of one input channel, weight-standardized,
    has every weight set to 0 and torch refuses to run it."""
    data = copy.deepcopy(REDUCE_FIRST_FOUND)
    data["padding"] = "symmetric"
    data["stem"] = {"kind": "conv", "filters": 2, "kernel_size": 1, "stride": 1}
    data["conv"] = {"kind": "weight_standardized"}
    with pytest.raises(SpecErrors) as info:
        compile_document(as_doc(data))
    assert [e.path for e in info.value.errors] == [("conv", "kind")]
    assert (
        "layer stem.conv: a weight-standardized 1x1 convolution of 1 input channel"
        in info.value.errors[0].message
    )
