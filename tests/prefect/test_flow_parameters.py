"""The deployable flows' parameter forms: every parameter described, choices as enums."""

from __future__ import annotations

import pytest
from prefect import Flow
from prefect.utilities.callables import parameter_schema

import flows.backup
import flows.checks
import flows.storage

FLOWS = [obj for mod in (flows.backup, flows.checks, flows.storage)
         for obj in vars(mod).values() if isinstance(obj, Flow)]


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.name)
def test_every_flow_parameter_is_described(flow: Flow) -> None:
    props = parameter_schema(flow.fn).model_dump()["properties"]
    missing = [name for name, spec in props.items() if not spec.get("description")]
    assert not missing, f"{flow.name}: parameters without a description: {missing}"


def test_tier_and_verify_mode_offer_their_choices() -> None:
    schema = parameter_schema(flows.backup.backup.fn).model_dump()
    defs = schema.get("definitions") or schema.get("$defs") or {}

    def choices(name: str) -> list[str]:
        spec = schema["properties"][name]
        ref = spec.get("$ref") or next((s["$ref"] for s in spec.get("allOf", [])), "")
        return spec.get("enum") or defs[ref.rsplit("/", 1)[-1]]["enum"]

    assert choices("tier") == ["full", "incremental", "differential", "snapshot",
                               "replication", "monthly_archive"]
    assert choices("verify_mode") == ["structure", "subset", "read-data"]
