"""The JSON Schema is the users' reference: every key documented, and what afctl prints."""

from __future__ import annotations

import json

from afctl.cli import main
from components.config.facility import FacilityConfig


def _properties(schema: dict):
    yield "FacilityConfig", schema.get("properties", {})
    for name, definition in schema.get("$defs", {}).items():
        yield name, definition.get("properties", {})


def test_every_key_is_documented():
    schema = FacilityConfig.model_json_schema(by_alias=True)
    undocumented = [
        f"{model}.{key}"
        for model, properties in _properties(schema)
        for key, prop in properties.items()
        if not prop.get("description")
    ]
    assert undocumented == []
    assert all(d.get("additionalProperties") is False for d in schema["$defs"].values() if "properties" in d)


def test_schema_command_prints_the_models_schema(capsys):
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["properties"].keys() == FacilityConfig.model_json_schema(by_alias=True)["properties"].keys()
    assert "nodeGroups" in printed["$defs"]["Cluster"]["properties"]
    assert "k3s" in printed["$defs"]["Cluster"]["properties"]
