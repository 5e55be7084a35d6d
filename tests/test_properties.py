"""Property tests of the front half: random valid specs compile; single-field mutations are located."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resgen import load
from resgen.compiler import compile_document
from resgen.errors import SpecErrors
from tests.strategies import leaf_paths, spec_data

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
