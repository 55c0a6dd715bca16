"""The config reference in docs/: generated from the models, committed, and kept in step with them."""

from __future__ import annotations

import re

import pytest
from pydantic import Field, create_model

from afctl import cli, reference
from components.config.base import StrictModel
from components.config.facility import FacilityConfig


def rows(text: str) -> dict[str, list[str]]:
    """Table rows by key: [type, default, description, example]."""
    found = {}
    for line in text.splitlines():
        if match := re.match(r"^\| `([^`]+)` \|(.*)\|$", line):
            found[match.group(1)] = [cell.strip() for cell in re.split(r"(?<!\\)\|", match.group(2))]
    return found


def test_the_committed_reference_is_what_the_models_generate():
    assert reference.REFERENCE.read_text(encoding="utf-8") == reference.render(), "run: afctl reference"
    assert cli.main(["reference", "--check"]) == 0


def test_a_new_model_field_without_a_regenerated_reference_fails_the_check(tmp_path, monkeypatch, capsys):
    class Extra(StrictModel):
        colour: str = "blue"
        """A colour for the facility."""

    grown = create_model("Grown", __base__=FacilityConfig, extra=(Extra, Field(default_factory=Extra)))
    text = reference.render(grown.model_json_schema(by_alias=True))
    assert text != reference.REFERENCE.read_text(encoding="utf-8")
    assert rows(text)["af:extra.colour"][:3] == ["string", '`"blue"`', "A colour for the facility."]
    stale = tmp_path / "config-reference.md"
    stale.write_text(text)
    monkeypatch.setattr(reference, "REFERENCE", stale)
    assert cli.main(["reference", "--check"]) == 1
    assert "out of date" in capsys.readouterr().err


def test_every_key_is_documented_typed_and_reachable():
    table = rows(reference.REFERENCE.read_text(encoding="utf-8"))
    undocumented = [key for key, (kind, _, description, _) in table.items() if not description or not kind]
    assert not undocumented, f"fields without a docstring: {undocumented}"
    for key in (
        "af:site.flavors.<name>.vcpus",
        "af:cluster.nodeGroups.<name>.taints[].effect",
        "af:offload.gateways.<name>.slurm.partition",
        "af:offload.gateways.<name>.auth.token",
        "af:cache.upstream.voms",
        "af:autoscaler.triggers[].constraint",
    ):
        assert key in table, key
    assert table["af:cluster.controlPlane.flavor"][1] == "required"
    assert table["af:cluster.controlPlane.count"][1] == "`1`"
    assert table["af:hub.chartVersion"][1] == '`"4.2.0"`'


@pytest.mark.parametrize(("key", "example"), [("af:cluster.nodeGroups.<name>.flavor", '"xlarge"')])
def test_examples_come_from_the_shipped_stacks(key, example):
    assert rows(reference.REFERENCE.read_text(encoding="utf-8"))[key][3] == f"`{example}`"
