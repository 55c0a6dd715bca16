"""An operator's mistakes get one clear line each: what was accepted but wrong is refused, values
are shown unless they are secrets, messages are plain words, a profile's mistake names the
profile's file, and a root cause is not buried under its knock-ons."""

from __future__ import annotations

import copy
import re
import shutil
import typing
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import BaseModel
from test_config import JARGON, LINE, base, edit, problems_of

from afctl.stackfile import read_stack
from components.config.base import PATTERN_HELP
from components.config.errors import ConfigError
from components.config.facility import FacilityConfig
from components.config.loader import PROFILES_DIR, SECRET_NAMES, build_config


def one_line(found, path: str) -> str:
    assert [p.path for p in found] == [path], [p.line() for p in found]
    line = found[0].line()
    assert LINE.match(line) and "\n" not in line, line
    assert not any(word in line.split("; allowed: ", 1)[1] for word in JARGON), line
    return line


def dev_problems(section: str, value: Any, secret: set[str] | None = None) -> list:
    values, secrets = read_stack("dev")
    values = copy.deepcopy(values)
    values[section] = value
    with pytest.raises(ConfigError) as info:
        build_config(values, secrets if secret is None else secret)
    return info.value.problems


# --- accepted before, wrong all the same -----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "cidr", "clash"),
    [
        ("site.nodeCidr", "10.42.0.0/24", "af:cluster.podCidr (10.42.0.0/16)"),
        ("site.nodeCidr", "10.43.128.0/24", "af:cluster.serviceCidr (10.43.0.0/16)"),
        ("site.nodeCidr", "10.0.0.0/8", "af:cluster.podCidr (10.42.0.0/16) or af:cluster.serviceCidr"),
        ("cluster.serviceCidr", "10.42.128.0/17", "af:cluster.podCidr (10.42.0.0/16)"),
    ],
)
def test_a_node_network_overlapping_the_pod_or_service_network_is_refused(path: str, cidr: str, clash: str) -> None:
    line = one_line(problems_of(edit(base(), path, cidr)), f"af:{path}")
    assert f'got "{cidr}"' in line and clash in line


def test_separate_networks_pass_and_other_modes_choose_their_own() -> None:
    assert build_config(edit(base(), "site.nodeCidr", "10.44.0.0/24"))
    magnum = edit(edit(base(), "cluster.mode", "magnum"), "site.nodeCidr", "10.42.0.0/24")
    magnum = edit(magnum, "cluster.nodeGroups.gpu.gpu.driver", "preinstalled")
    assert not [p for p in _problems_or_none(magnum) if "Cidr" in p.path]


def _problems_or_none(cfg: dict[str, Any]) -> list:
    try:
        build_config(cfg)
    except ConfigError as exc:
        return exc.problems
    return []


def test_a_gpu_model_other_than_the_flavors_is_refused() -> None:
    line = one_line(
        problems_of(edit(base(), "cluster.nodeGroups.gpu.gpu.model", "t4")), "af:cluster.nodeGroups.gpu.gpu.model"
    )
    assert 'got "t4"' in line and "a100, the GPU model of flavor gpu" in line
    assert build_config(edit(base(), "site.flavors.gpu.gpuModel", "A100"))  # the flavor's spelling is free


def _openssh(key: Any) -> str:
    return key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode() + " operator@laptop"


def test_real_openssh_public_keys_are_accepted() -> None:
    keys = [
        _openssh(ed25519.Ed25519PrivateKey.generate()),
        _openssh(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        _openssh(ec.generate_private_key(ec.SECP256R1())),
    ]
    cfg = build_config(edit(base(), "site.sshPublicKeys", keys))
    assert cfg.site.ssh_public_keys == keys


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("not a key", ""),
        ("ssh-ed25519", ""),
        ("ssh-dss AAAAB3NzaC1kc3M= old", ""),
        ("ssh-ed25519 not-base64!", "not valid base64"),
        (
            _openssh(rsa.generate_private_key(public_exponent=65537, key_size=2048)).replace("ssh-rsa", "ssh-ed25519"),
            "type ssh-rsa",
        ),
    ],
)
def test_what_is_not_a_public_key_is_refused(key: str, why: str) -> None:
    line = one_line(problems_of(edit(base(), "site.sshPublicKeys", [key])), "af:site.sshPublicKeys[0]")
    assert "an OpenSSH public key line" in line and why in line


# --- messages --------------------------------------------------------------------------------------


@pytest.mark.parametrize("given", ["yes", "true", 1, "on", "no", 0])
def test_a_switch_that_is_not_a_boolean_is_reported_as_such(given: Any) -> None:
    """pydantic reads "yes" as true: the cache then asked for its client secret, a knock-on."""
    line = one_line(dev_problems("cache", {"enabled": given}), "af:cache.enabled")
    assert "true or false" in line


def test_every_switch_of_the_config_is_strict() -> None:
    def strict(field: Any) -> bool:
        annotation, metadata = field.annotation, list(field.metadata)
        for arg in typing.get_args(annotation):
            if typing.get_origin(arg) is typing.Annotated:
                annotation, metadata = typing.get_args(arg)[0], [*metadata, *arg.__metadata__]
        return annotation is not bool or any(getattr(m, "strict", False) for m in metadata)

    loose = [f"{m.__name__}.{n}" for m in _models(FacilityConfig) for n, f in m.model_fields.items() if not strict(f)]
    bools = [n for m in _models(FacilityConfig) for n, f in m.model_fields.items() if "bool" in str(f.annotation)]
    assert len(bools) >= 10 and not loose, loose


def _models(model: type[BaseModel], seen: set | None = None) -> list[type[BaseModel]]:
    seen = set() if seen is None else seen
    if model in seen:
        return []
    seen.add(model)
    found = [model]
    for field in model.model_fields.values():
        for inner in re.findall(r"[A-Za-z_.]+", str(field.annotation)):
            cls = _find(inner.rsplit(".", 1)[-1])
            if cls is not None:
                found += _models(cls, seen)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            found += _models(field.annotation, seen)
    return found


def _find(name: str) -> type[BaseModel] | None:
    from components.config import base as config_base

    for cls in _subclasses(config_base.StrictModel):
        if cls.__name__ == name:
            return cls
    return None


def _subclasses(cls: type) -> list[type]:
    return [cls, *(s for sub in cls.__subclasses__() for s in _subclasses(sub))]


def test_every_pattern_of_the_schema_is_explained_in_words() -> None:
    schema = str(FacilityConfig.model_json_schema(by_alias=True))
    patterns = set(re.findall(r"'pattern': '((?:[^'\\]|\\.)*)'", schema))
    decoded = {p.encode().decode("unicode_escape") for p in patterns}
    assert len(decoded) > 15
    assert decoded <= set(PATTERN_HELP), sorted(decoded - set(PATTERN_HELP))


@pytest.mark.parametrize(
    ("section", "value", "path", "words"),
    [
        ("cache", {"origin": "root://cms-xrd-global.cern.ch"}, "af:cache.origin", "no root:// or other scheme"),
        ("hub", {"tls": {"acmeEmail": "admins"}}, "af:hub.tls.acmeEmail", "an e-mail address"),
        ("identity", {"issuer": "iam.cloud.infn.it"}, "af:identity.issuer", "an https:// URL"),
        (
            "cluster",
            {"nodeGroups": {"cpu": {"flavor": "xlarge", "count": "two"}}},
            "af:cluster.nodeGroups.cpu.count",
            "a whole number",
        ),
        (
            "cluster",
            {"nodeGroups": ["cpu"]},
            "af:cluster.nodeGroups",
            "a mapping of names, each to a mapping with the keys count",
        ),
        ("site", {"flavors": {"large": "big"}}, "af:site.flavors.large", "a mapping with the keys gpuModel, gpus"),
    ],
)
def test_messages_are_plain_words(section: str, value: Any, path: str, words: str) -> None:
    values, secret = read_stack("dev")
    values = copy.deepcopy(values)
    values[section] = value if section != "cluster" else {**values.get("cluster", {}), **value}
    with pytest.raises(ConfigError) as info:
        build_config(values, secret)
    found = [p for p in info.value.problems if p.path == path]
    assert found and words in found[0].allowed, [p.line() for p in info.value.problems]


def test_values_in_a_section_holding_a_secret_are_shown_unless_they_are_the_secret() -> None:
    """`pulumi config set --secret --path 'af:identity.clientSecret'` makes all of `af:identity` a
    secret key: its issuer is no secret and is shown; the secret itself, or a key that may be a
    misspelt one, never is."""
    secret = {"identity", "cache", "offload"}
    values, _ = read_stack("cms-bari")
    values = copy.deepcopy(values)
    values["identity"] = {
        "issuer": "http://cms-auth.cern.ch/",
        "clientSecret": "s3cret-value",
        "clientSecrt": "s3cret-2",
    }
    values["cache"] = {"ram": "512m", "blockSize": "6k", "highWatermark": 1.5, "origin": "root://x"}
    with pytest.raises(ConfigError) as info:
        build_config(values, secret)
    lines = {p.path: p for p in info.value.problems}
    text = "\n".join(p.line() for p in info.value.problems)
    assert "s3cret" not in text
    assert lines["af:identity.issuer"].value == '"http://cms-auth.cern.ch/"'
    assert lines["af:identity.clientSecrt"].value == "[secret]"
    assert lines["af:cache.highWatermark"].value == "1.5" and lines["af:cache.origin"].value == '"root://x"'
    assert "clientSecret" in SECRET_NAMES and "kubeconfig" in SECRET_NAMES and "issuer" not in SECRET_NAMES
    # A secret given with the wrong type is still not echoed.
    values["identity"] = {"clientSecret": 123456789}
    with pytest.raises(ConfigError) as info:
        build_config(values, secret)
    assert "123456789" not in str(info.value)


def test_a_mistake_inside_a_profile_names_the_profile_file(tmp_path: Path) -> None:
    profiles = tmp_path / "stacks"
    shutil.copytree(PROFILES_DIR, profiles)
    cms = profiles / "experiments" / "cms.yaml"
    cms.write_text(cms.read_text().replace("cms-xrd-global.cern.ch:1094", "root://cms-xrd-global.cern.ch"))
    values, secret = read_stack("cms-bari")
    with pytest.raises(ConfigError) as info:
        build_config(values, secret, profiles)
    (found,) = info.value.problems
    assert found.path == "af:cache.origin" and found.source == "stacks/experiments/cms.yaml"
    assert "(set in stacks/experiments/cms.yaml)" in found.line() and LINE.match(found.line())
    # The stack's own value for the key: no profile to name.
    values = copy.deepcopy(values)
    values["cache"] = {"origin": "root://elsewhere"}
    with pytest.raises(ConfigError) as info:
        build_config(values, secret, profiles)
    assert [p.source for p in info.value.problems] == [""]


def test_an_unknown_profile_is_reported_before_what_it_would_have_set() -> None:
    values, secret = read_stack("dev")
    values["profiles"] = ["sites/infn-cloud-bari", "experiments/lhcb-not-shipped-x9"]
    with pytest.raises(ConfigError) as info:
        build_config(values, secret)
    assert [p.path for p in info.value.problems] == ["af:profiles[1]"]
    assert "experiments/generic" in info.value.problems[0].allowed
