"""The Dask layer's part of the hub's values, and the notebooks' Dask configuration: pure.

- the hub registers the gateway as a service with a token read from the Kubernetes Secret
  `TOKEN_SECRET` in the hub's namespace (`hub.extraEnv`, never a value), gives users and their
  notebooks' tokens access to it, and stops a user's clusters when the user's server stops;
- notebooks get a Dask config file (`/etc/dask`, which Dask always reads) so that `Gateway()`
  and `GatewayCluster()` need no arguments: the gateway's address, its scheduler proxy, the
  public address of the dashboards (the hub's proxy forwards `/services/dask-gateway/` to the
  gateway), JupyterHub auth with the notebook's token, the notebook's own image as the
  clusters' image (`{JUPYTER_IMAGE_SPEC}`, which KubeSpawner sets), the client preload that
  hands the user's token to workers, and a `dask-jobqueue` HTCondor configuration."""

from __future__ import annotations

from typing import Any

from ..common.shipped import shipped
from ..config.facility import FacilityConfig
from ..names import WANT_OFFLOAD
from .gateway import SERVICE, TOKEN_KEY, TOKEN_SECRET, gateway_url, proxy_address

DASK_CONFIG = "/etc/dask/af-dask.yaml"
"""The notebooks' Dask config file."""
PRELOAD = "/opt/af/af_dask_token.py"
"""The client preload handing the user's token to workers."""
SERVER_TOKEN_SCOPES = [f"access:services!service={SERVICE}", "read:users:groups!user"]
"""What the notebook's token needs besides the facility's scopes: the gateway admits it and
reads the user's groups with it."""
STOP_TOKEN_SECONDS = 120
"""Lifetime of the token the hub makes to stop a stopped server's clusters."""
IMAGE_FROM_NOTEBOOK = "{JUPYTER_IMAGE_SPEC}"
"""dask-gateway formats option values with the environment: the notebook's own image."""


def notebook_dask_config(cfg: FacilityConfig, host: str) -> dict[str, Any]:
    """The notebooks' Dask config (YAML) for this facility."""
    config: dict[str, Any] = {
        "gateway": {
            "address": gateway_url(),
            "proxy-address": proxy_address(),
            "public-address": f"https://{host}/services/{SERVICE}",
            "auth": {"type": "jupyterhub"},
            "cluster": {"options": {"image": IMAGE_FROM_NOTEBOOK}},
        },
        "distributed": {"client": {"preload": [PRELOAD]}},
    }
    if cfg.condor.enabled and cfg.dask.jobqueue:
        config["jobqueue"] = {"htcondor": jobqueue_htcondor(cfg)}
    return config


def jobqueue_htcondor(cfg: FacilityConfig) -> dict[str, Any]:
    """`dask-jobqueue`'s HTCondor settings: workers the size of the default Gateway worker,
    submitted with the notebook's client config (`$CONDOR_CONFIG`, the user's token) to the
    facility's pool, not offloaded unless the user sets `+WantOffload = True`; the user's
    token reaches them through the same client preload as Gateway workers."""
    worker = cfg.dask.worker
    return {
        "cores": max(1, int(worker.cores)),
        "memory": f"{worker.memory_gib:g}GiB",
        "disk": f"{max(1, round(worker.memory_gib)):g}GiB",
        "processes": 1,
        "python": cfg.dask.jobqueue_python,
        "job-extra-directives": {f"+{WANT_OFFLOAD}": "False", "+AfDaskWorker": "True"},
    }


def apply_hub_values(values: dict[str, Any], cfg: FacilityConfig, host: str) -> None:
    """Add the Dask layer's part to the hub's values (the facility hands it to `hub_values`
    through `HubSite.extensions` when Dask is on)."""
    import yaml  # the values stay plain data; only the file is YAML

    hub, singleuser = values["hub"], values["singleuser"]
    hub["extraEnv"]["AF_DASK_GATEWAY_TOKEN"] = {"valueFrom": {"secretKeyRef": {"name": TOKEN_SECRET, "key": TOKEN_KEY}}}
    hub["extraConfig"]["40-af-dask"] = shipped("dask", "hub_dask.py")
    values["custom"]["af"]["dask"] = {
        "service": SERVICE,
        "serviceUrl": gateway_url().removesuffix(f"/services/{SERVICE}"),
        "gatewayUrl": gateway_url(),
        "serverTokenScopes": list(SERVER_TOKEN_SCOPES),
        "stopTokenSeconds": STOP_TOKEN_SECONDS,
    }
    config_text = yaml.safe_dump(notebook_dask_config(cfg, host), sort_keys=True)
    singleuser["extraFiles"]["af-dask-config"] = {"mountPath": DASK_CONFIG, "mode": 0o444, "stringData": config_text}
    singleuser["extraFiles"]["af-dask-token"] = {
        "mountPath": PRELOAD,
        "mode": 0o444,
        "stringData": shipped("dask", "af_dask_token.py"),
    }
