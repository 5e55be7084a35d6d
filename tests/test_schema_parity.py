"""Valid means buildable (issue 15): any spec over the whole format that validates builds and runs in
both targets, and the two compute the same function (resgen.parity.check, both directions of weight
transfer, every stage tap and the output), with the shapes resgen predicts.

The specs come from tests/strategies.py's schema_spec_data, which reaches every kind and enumeration
of the format at tiny sizes (tests/test_properties.py checks that it does). Few examples, derandomized:
the default suite stays fast and deterministic; raise max_examples locally to search harder.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, assume, given, settings

from resgen import load, parity
from resgen.compiler import compile_document
from resgen.errors import SpecErrors
from tests.strategies import schema_spec_data


@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(schema_spec_data())
def test_valid_specs_build_run_and_pass_parity(data: dict[str, Any]) -> None:
    doc = load.parse(json.dumps(data, indent=1).encode(), "random.json", json_input=True)
    try:
        compiled = compile_document(doc)
    except SpecErrors:
        assume(False)
        return
    report = parity.check(compiled, signed_scales=True)
    assert report.passed, parity.format_report(report)
