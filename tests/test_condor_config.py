"""The pool's rendered HTCondor config, read by HTCondor itself (`htcondor2`, CONDOR_CONFIG in
a subprocess) the way each daemon reads it: the image's own defaults first, then the pool
fragment and the role's. Expressions are evaluated with classad2; the SciTokens group plugin
is run as HTCondor runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import classad2
import pytest
from conftest import local_values as stack_values  # the pool's own groups: gateways left out

from components.batch.config import worker_groups
from components.batch.files import HERE as CONDORFILES
from components.batch.htcondor import PACKING_RANK, PLUGIN, PLUGIN_CONFIG, render_client, render_execute
from components.batch.pods import RUNTIME, rendered_files
from components.config.loader import build_config
from components.facility import cache_client
from components.names import (
    BEARER_TOKEN_FILE,
    CA_CERT_DIR,
    PREFERENCE_ATTRIBUTE,
    WORKER_GROUP_ATTRIBUTE,
    WORKER_POD_ATTRIBUTE,
)

STACKS = ["cms-bari", "atlas-cnaf"]

IMAGE_DEFAULTS = """\
# What the official images' config.d sets before the facility's fragments (01-*.conf):
# host-based, token-or-FS authentication and anonymous reads. The fragments must override it.
use SECURITY : With_Authentication
use SECURITY : Host_Based
ALLOW_ADMINISTRATOR = root@$(FULL_HOSTNAME) condor@$(FULL_HOSTNAME) $(ALLOW_ADMINISTRATOR)
SEC_DEFAULT_AUTHENTICATION_METHODS = FS, TOKEN
ALLOW_READ = *
SEC_READ_AUTHENTICATION = OPTIONAL
ENABLE_KERNEL_TUNING = False
"""

_DUMP = "import json, htcondor2; print(json.dumps({k: str(htcondor2.param[k]) for k in htcondor2.param.keys()}))"


def condor_params(tmp_path: Path, *fragments: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """Every parameter HTCondor sees with this config (a fresh process: the bindings read
    CONDOR_CONFIG once). A config HTCondor rejects fails the test with HTCondor's message."""
    path = tmp_path / "condor_config"
    path.write_text(IMAGE_DEFAULTS + "\n".join(fragments))
    done = subprocess.run(
        [sys.executable, "-c", _DUMP],
        env={"PATH": os.environ["PATH"], "CONDOR_CONFIG": str(path), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def _cfg(stack: str):
    return build_config(*stack_values(stack))


def _files(stack: str) -> dict[str, str]:
    return rendered_files(_cfg(stack), cache_client(_cfg(stack)))


def daemon_params(tmp_path: Path, stack: str, role_file: str, **env: str) -> dict[str, str]:
    files = _files(stack)
    return condor_params(tmp_path, files["pool.conf"], files[role_file], env=env)


def _entries(value: str) -> list[str]:
    return [e for e in re.split(r"[\s,]+", value) if e]


def assert_secure(params: dict[str, str]) -> None:
    """Authentication required at every level, only real methods, no anonymous access."""
    assert params["SEC_DEFAULT_AUTHENTICATION"] == "REQUIRED"
    for key, value in params.items():
        if re.fullmatch(r"SEC_\w+_AUTHENTICATION", key) and not key.startswith("SEC_ENABLE_"):
            assert value == "REQUIRED", key
        if key.endswith("AUTHENTICATION_METHODS"):
            methods = {m.upper() for m in _entries(value)}
            assert not methods & {"CLAIMTOBE", "ANONYMOUS", "PASSWORD"}, (key, value)
        if key.startswith(("ALLOW_", "DENY_")) and key != "ALLOW_CLIENT" and value not in ("True", "False"):
            for entry in _entries(value):
                user, _, host = entry.partition("/")
                assert "@" in user and user.split("@")[1] not in ("*", ""), (key, entry)
                assert host in ("", "*"), (key, entry)
    methods = _entries(params["SEC_DEFAULT_AUTHENTICATION_METHODS"])
    assert {"IDTOKENS", "SCITOKENS"} <= set(methods)
    assert _entries(params["SEC_CLIENT_AUTHENTICATION_METHODS"]) == ["FS", "IDTOKENS"]
    assert params["SEC_DEFAULT_ENCRYPTION"] == params["SEC_DEFAULT_INTEGRITY"] == "REQUIRED"
    assert params["SEC_ENABLE_TOKEN_REQUEST"] == params["SEC_ENABLE_TOKEN_FETCH"] == "False"
    assert params["SEC_TOKEN_POOL_SIGNING_KEY_FILE"] == f"{RUNTIME.key_dir}/POOL"
    assert params["SEC_TOKEN_SYSTEM_DIRECTORY"] == RUNTIME.token_dir
    assert "*@unmapped" in params["DENY_WRITE"] and "*@unmapped" in params["DENY_READ"]
    assert params["COLLECTOR_HOST"] == f"{RUNTIME.central_manager}:{RUNTIME.port}"


def _users(stack: str) -> str:
    return f"*@users.{_cfg(stack).site.dns_name}"


@pytest.mark.parametrize("stack", STACKS)
def test_central_manager_config(tmp_path, stack):
    params = daemon_params(tmp_path, stack, "central-manager.conf")
    assert_secure(params)
    assert {"COLLECTOR", "NEGOTIATOR"} <= set(_entries(params["DAEMON_LIST"]))
    assert _users(stack) in _entries(params["ALLOW_READ"]) and _users(stack) not in params["ALLOW_WRITE"]
    assert params["CERTIFICATE_MAPFILE"] == f"{RUNTIME.files_dir}/mapfile"
    assert params["AUTH_SSL_SERVER_CERTFILE"] == f"{RUNTIME.tls_dir}/tls.crt"
    assert params["NETWORK_HOSTNAME"] == RUNTIME.central_manager
    assert params["SCITOKENS_SERVER_AUDIENCE"] == "https://wlcg.cern.ch/jwt/v1/any"
    assert params["NEGOTIATOR_INTERVAL"] == str(_cfg(stack).condor.negotiator_interval_seconds)
    # The packing policy, as HTCondor reads it: depth first, slots ranked by the rendered rank.
    assert params["NEGOTIATOR_DEPTH_FIRST"].lower() == "true"
    assert params["NEGOTIATOR_PRE_JOB_RANK"] == PACKING_RANK


def _pslot(preference: int, jobs: int, started: int, cpus: int = 16, gpus: int = 0) -> classad2.ClassAd:
    """A worker's partitionable slot as its startd advertises it (the attributes the rank reads)."""
    ad = classad2.ClassAd(
        {
            "MyType": "Machine",
            "PartitionableSlot": True,
            "SlotID": 1,
            "Rank": 0.0,
            "Cpus": cpus - jobs,
            "Memory": 60000 - 2000 * jobs,
            "GPUs": gpus,
            "TotalSlotCpus": cpus,
            "NumDynamicSlots": jobs,
            "DaemonStartTime": started,
            PREFERENCE_ATTRIBUTE: preference,
        }
    )
    ad["Requirements"] = classad2.ExprTree("TARGET.RequestCpus <= Cpus")
    return ad


@pytest.mark.parametrize("stack", STACKS)
def test_the_negotiator_fills_the_busiest_worker_of_the_preferred_group_first(tmp_path, stack):
    """NEGOTIATOR_PRE_JOB_RANK as HTCondor reads it from the central manager's config, evaluated by
    classad2 as the negotiator does (MY: a slot, TARGET: the job), orders matching slots: a lower group
    preference first whatever the rest, then the slot running more jobs, then the older worker. The
    schedd keeps CLAIM_PARTITIONABLE_LEFTOVERS (HTCondor's default), which depth-first filling needs."""
    params = daemon_params(tmp_path, stack, "central-manager.conf")
    rank = classad2.ExprTree(params["NEGOTIATOR_PRE_JOB_RANK"])
    job = _job(RequestCpus=1)
    year, day = 365 * 86_400, 86_400
    slots = {
        "cpu, busiest": _pslot(0, 12, 1_767_225_600),
        "cpu, 3 jobs, old": _pslot(0, 3, 1_767_225_600 - year),
        "cpu, 3 jobs, new": _pslot(0, 3, 1_767_225_600 + day),
        "cpu, idle, oldest": _pslot(0, 0, 1_767_225_600 - 3 * year),
        "gpu, busiest of all": _pslot(10, 15, 1_767_225_600 - 3 * year, gpus=1),
        "offload": _pslot(100, 0, 1_767_225_600),
    }
    assert all(job.matches(slot) for slot in slots.values())
    order = sorted(slots, key=lambda name: -rank.eval(slots[name], job))
    assert order == list(slots)
    submit = daemon_params(tmp_path, stack, "submit.conf")
    assert submit["CLAIM_PARTITIONABLE_LEFTOVERS"].lower() == "true"


@pytest.mark.parametrize("stack", STACKS)
def test_schedd_config(tmp_path, stack):
    params = daemon_params(tmp_path, stack, "submit.conf")
    assert_secure(params)
    assert "SCHEDD" in _entries(params["DAEMON_LIST"])
    assert _users(stack) in _entries(params["ALLOW_WRITE"]) and _users(stack) in _entries(params["ALLOW_READ"])
    assert params["SPOOL"] == RUNTIME.spool_dir
    assert params["NETWORK_HOSTNAME"] == params["TCP_FORWARDING_HOST"] == RUNTIME.schedd
    command = params[f"SEC_SCITOKENS_PLUGIN_{PLUGIN}_COMMAND"].split()
    assert command == [RUNTIME.python, f"{RUNTIME.files_dir}/af_batch_users.py", f"{RUNTIME.files_dir}/{PLUGIN_CONFIG}"]


@pytest.mark.parametrize("stack", STACKS)
def test_worker_configs(tmp_path, stack):
    cfg = _cfg(stack)
    for group in worker_groups(cfg.condor, cfg.cluster, cfg.site.flavors).values():
        pod = f"af-condor-worker-{group.name}-7d9f-x2x"
        params = daemon_params(tmp_path, stack, f"execute-{group.name}.conf", POD_NAME=pod)
        assert_secure(params)
        assert "STARTD" in _entries(params["DAEMON_LIST"]), group.name
        assert params["SLOT_TYPE_1_PARTITIONABLE"].lower() == "true" and params["SLOT_TYPE_1"] == "100%"
        assert (int(params["NUM_CPUS"]), int(params["MEMORY"])) == (group.slot_cpus, group.slot_memory_mib)
        assert ("MACHINE_RESOURCE_INVENTORY_GPUs" in params) == (group.gpus > 0)
        assert params[WORKER_GROUP_ATTRIBUTE] == f'"{group.name}"' and params[WORKER_POD_ATTRIBUTE] == f'"{pod}"'
        assert int(params[PREFERENCE_ATTRIBUTE]) == group.preference
        assert {WORKER_GROUP_ATTRIBUTE, PREFERENCE_ATTRIBUTE, WORKER_POD_ATTRIBUTE} <= set(
            _entries(params["STARTD_ATTRS"])
        )
        assert params["START"] == group.start
        assert int(params["STARTD_NOCLAIM_SHUTDOWN"]) == cfg.condor.idle_shutdown_minutes * 60
        assert int(params["MAXJOBRETIREMENTTIME"]) == cfg.condor.retire_grace_minutes * 60
        assert params["STARTER_ALLOW_RUNAS_OWNER"] == "False"
        assert f"autoscaler@{cfg.site.dns_name}" in _entries(params["ALLOW_ADMINISTRATOR"])
        # The master leaves once its startd has exited (idle shutdown or a drain).
        shutdown = classad2.ExprTree(params["MASTER.DAEMON_SHUTDOWN"])
        assert shutdown.eval(classad2.ClassAd({"STARTD_StartTime": 0})) is True
        assert shutdown.eval(classad2.ClassAd({"STARTD_StartTime": 1767225600})) is False
        assert shutdown.eval(classad2.ClassAd({})) is False
        # Jobs read root:// through the cache (both stacks run one).
        job_env = params["STARTER_JOB_ENVIRONMENT"].strip('"').split()
        assert "XRD_PLUGINCONFDIR=/etc/af/xrdcl-plugins" in job_env and f"X509_CERT_DIR={CA_CERT_DIR}" in job_env


def _job(**attrs: Any) -> classad2.ClassAd:
    job = classad2.ClassAd({"RequestCpus": 1, "RequestMemory": 2048, **attrs})
    job["Requirements"] = classad2.ExprTree("TARGET.Cpus >= MY.RequestCpus && TARGET.GPUs >= (MY.RequestGpus ?: 0)")
    return job


def _slot(params: dict[str, str], gpus: int) -> classad2.ClassAd:
    slot = classad2.ClassAd({"Cpus": int(params["NUM_CPUS"]), "Memory": int(params["MEMORY"]), "GPUs": gpus})
    slot["Requirements"] = classad2.ExprTree(params["START"])
    return slot


def test_gpu_workers_start_only_gpu_jobs_and_cpu_workers_any(tmp_path):
    cfg = _cfg("cms-bari")
    groups = worker_groups(cfg.condor, cfg.cluster, cfg.site.flavors)
    gpu = _slot(daemon_params(tmp_path, "cms-bari", "execute-gpu-a100.conf", POD_NAME="p"), groups["gpu-a100"].gpus)
    cpu = _slot(daemon_params(tmp_path, "cms-bari", "execute-cpu.conf", POD_NAME="p"), 0)
    cpu_job, gpu_job = _job(), _job(RequestGpus=1)
    assert gpu.symmetricMatch(gpu_job) and not gpu.symmetricMatch(cpu_job)
    assert cpu.symmetricMatch(cpu_job) and not cpu.symmetricMatch(gpu_job)  # no GPU to give
    # START alone, as the startd evaluates it (MY the slot, TARGET the job).
    start = classad2.ExprTree(groups["gpu-a100"].start)
    assert start.eval(gpu, gpu_job) is True and start.eval(gpu, cpu_job) is not True


def test_a_group_start_override_is_what_the_startd_evaluates(tmp_path):
    values, secret = stack_values("cms-bari")
    start = 'TARGET.RequestGpus > 0 && TARGET.AcctGroup == "cms.ml"'
    values["condor"] = {"groups": {"gpu-a100": {"start": start}}}
    cfg = build_config(values, secret)
    group = worker_groups(cfg.condor, cfg.cluster, cfg.site.flavors)["gpu-a100"]
    files = rendered_files(cfg, cache_client(cfg))
    slot = _slot(condor_params(tmp_path, files["pool.conf"], files["execute-gpu-a100.conf"], env={"POD_NAME": "p"}), 1)
    assert slot.symmetricMatch(_job(RequestGpus=1, AcctGroup="cms.ml"))
    assert not slot.symmetricMatch(_job(RequestGpus=1, AcctGroup="cms.other"))
    assert group.start in files["execute-gpu-a100.conf"]


def test_without_the_cache_jobs_get_no_cache_environment(tmp_path):
    cfg = _cfg("cms-bari")
    group = worker_groups(cfg.condor, cfg.cluster, cfg.site.flavors)["cpu"]
    params = condor_params(
        tmp_path, rendered_files(cfg, cache_client(cfg))["pool.conf"], render_execute(cfg, RUNTIME, group, {})
    )
    assert "STARTER_JOB_ENVIRONMENT" not in params


def test_htcondor_rejects_a_broken_fragment(tmp_path):
    """The parse check is real: HTCondor refuses an unknown metaknob."""
    path = tmp_path / "condor_config"
    path.write_text("use FEATURE : NoSuchFeature\n")
    done = subprocess.run(
        [sys.executable, "-c", _DUMP],
        env={"PATH": os.environ["PATH"], "CONDOR_CONFIG": str(path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "NoSuchFeature" in done.stdout + done.stderr


@pytest.mark.parametrize("stack", STACKS)
def test_notebook_client_config(tmp_path, stack):
    text = render_client(_cfg(stack), RUNTIME)
    params = condor_params(tmp_path, text)
    assert params["COLLECTOR_HOST"] == f"{RUNTIME.central_manager}:{RUNTIME.port}"
    assert params["SCHEDD_HOST"] == RUNTIME.schedd
    assert params["SEC_CLIENT_AUTHENTICATION_METHODS"] == "SCITOKENS"
    assert params["SEC_CLIENT_AUTHENTICATION"] == "REQUIRED"
    assert params["SCITOKENS_FILE"] == BEARER_TOKEN_FILE  # the file the hub keeps fresh
    assert params["AUTH_SSL_CLIENT_CADIR"] == CA_CERT_DIR
    assert not any("CLAIMTOBE" in v.upper() for k, v in params.items() if k.endswith("AUTHENTICATION_METHODS"))


# --- who may submit: the map file and the group plugin ---------------------------------------------


def _scitokens_regex(mapfile: str) -> re.Pattern[str]:
    (line,) = [line for line in mapfile.splitlines() if line.startswith("SCITOKENS ")]
    _, pattern, canonical = line.split()
    assert pattern.startswith("/") and pattern.endswith("/") and canonical == f"PLUGIN:{PLUGIN}"
    return re.compile(pattern[1:-1])


@pytest.mark.parametrize("stack", STACKS)
def test_the_map_file_sends_only_the_facility_issuer_to_the_plugin(stack):
    issuer = str(_cfg(stack).identity.issuer)
    regex = _scitokens_regex(_files(stack)["mapfile"])
    assert regex.match(f"{issuer},0a1b2c3d-user")
    host = issuer.removeprefix("https://").rstrip("/")
    for other in (f"https://{host}.evil.org/,x", f"https://evil.org/{issuer},x", "https://iam.cloud.infn.it/,x"):
        assert not regex.match(other), other
    assert "CLAIMTOBE" not in _files(stack)["mapfile"]


def _plugin(tmp_path: Path, config: str, payload: Any) -> subprocess.CompletedProcess[str]:
    """The plugin as HTCondor runs it: the token payload on stdin, no inherited environment."""
    (tmp_path / "config.json").write_text(config)
    return subprocess.run(
        [sys.executable, str(CONDORFILES / "af_batch_users.py"), str(tmp_path / "config.json")],
        input=payload if isinstance(payload, str) else json.dumps(payload),
        env={},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_only_batch_role_members_are_mapped(tmp_path):
    cfg = _cfg("cms-bari")
    config = _files("cms-bari")[PLUGIN_CONFIG]
    token = {"iss": "https://cms-auth.cern.ch/", "sub": "8e1f0c2a-5d1b-4b7e-9f2d-3c4b5a6d7e8f", "aud": "any"}
    member = _plugin(tmp_path, config, {**token, "wlcg.groups": ["/cms/ml", "/cms"]})
    assert member.returncode == 0 and member.stdout.split() == [f"{token['sub']}@users.{cfg.site.dns_name}"]
    for name, payload in {
        "not a member": {**token, "wlcg.groups": ["/cms-other", "/atlas"]},
        "a subgroup only": {**token, "wlcg.groups": ["/cms/ml"]},
        "no groups claim": token,
        "another issuer": {**token, "iss": "https://iam.cloud.infn.it/", "wlcg.groups": ["/cms"]},
        "a daemon's name": {**token, "sub": "condor", "wlcg.groups": ["/cms"]},
        "a subject with spaces": {**token, "sub": "a b", "wlcg.groups": ["/cms"]},
    }.items():
        declined = _plugin(tmp_path, config, payload)
        assert (declined.returncode, declined.stdout) == (1, ""), name
    assert _plugin(tmp_path, config, "not json").returncode == 2
    assert _plugin(tmp_path, "{}", {**token, "wlcg.groups": ["/cms"]}).returncode == 2  # a broken config fails closed


def test_the_plugin_reads_the_configured_groups_claim(tmp_path):
    values, secret = stack_values("cms-bari")
    values["identity"] |= {"groupsClaim": "groups", "roles": {"batch": ["cms-analysts"]}}
    cfg = build_config(values, secret)
    config = json.loads(rendered_files(cfg, cache_client(cfg))[PLUGIN_CONFIG])
    assert config == {
        "domain": f"users.{cfg.site.dns_name}",
        "groups": ["cms-analysts"],
        "groupsClaim": "groups",
        "issuer": "https://cms-auth.cern.ch/",
    }
    token = {"iss": "https://cms-auth.cern.ch/", "sub": "u1", "groups": ["cms-analysts"]}
    assert _plugin(tmp_path, json.dumps(config), token).returncode == 0
