"""The z2jh 4.x hub image's jupyterhub_config.py, for everything that shapes login and the spawn options page.

Same steps, same order as the image: spawner class and proxy wiring, the database, JupyterHub.* from hub.*,
KubeSpawner.* from singleuser.* (incl. profileList, image, extraEnv, storage volumes, cmd), services and roles (incl.
the idle culler), the chart-generated secrets, hub.config applied as c[ClassName].update(...), and finally
hub.extraConfig snippets exec'd in sorted key order in this module's namespace, so they see `c`, z2jh's helpers and the
modules imported here.

Left out because no login or options-page test can observe them: the curl HTTP client (pycurl is no test dependency),
common labels, pod scheduling (scheduling.*, extraTolerations), image pull secrets, singleuser.extraFiles, the
cloud-metadata iptables init container, hub.db.password and /usr/local/etc/jupyterhub/jupyterhub_config.d.
"""

# ruff: noqa: F821  (`c` is injected by traitlets' config-file loader)

# Imported like the image does: hub.extraConfig runs in this namespace and may use any of them.
import glob  # noqa: F401
import os
import re
import sys  # noqa: F401
from binascii import a2b_hex  # noqa: F401

from jupyterhub.utils import url_path_join
from kubernetes_asyncio import client  # noqa: F401
from tornado.httpclient import AsyncHTTPClient  # noqa: F401
from z2jh import get_config, get_name, get_name_env, get_secret_value, set_config_if_not_none


def camelCaseify(s: str) -> str:
    """snake_case trait name -> camelCase Helm key."""
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), s)


c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.ConfigurableHTTPProxy.api_url = f"http://{get_name('proxy-api')}:{get_name_env('proxy-api', '_SERVICE_PORT')}"
c.ConfigurableHTTPProxy.should_start = False
c.JupyterHub.cleanup_servers = False
c.JupyterHub.last_activity_interval = 60
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}

db_type = get_config("hub.db.type")
if db_type == "sqlite-pvc":
    c.JupyterHub.db_url = "sqlite:///jupyterhub.sqlite"
elif db_type == "sqlite-memory":
    c.JupyterHub.db_url = "sqlite://"
else:
    set_config_if_not_none(c.JupyterHub, "db_url", "hub.db.url")

for trait in (
    "concurrent_spawn_limit",
    "active_server_limit",
    "base_url",
    "allow_named_servers",
    "named_server_limit_per_user",
    "authenticate_prometheus",
    "redirect_to_server",
    "shutdown_on_logout",
    "template_paths",
    "template_vars",
):
    set_config_if_not_none(c.JupyterHub, trait, "hub." + camelCaseify(trait))

c.JupyterHub.hub_bind_url = "http://:8081"
c.JupyterHub.hub_connect_url = f"http://{get_name('hub')}:{get_name_env('hub', '_SERVICE_PORT')}"

c.KubeSpawner.namespace = os.environ.get("POD_NAMESPACE", "default")
set_config_if_not_none(c.Spawner, "consecutive_failure_limit", "hub.consecutiveFailureLimit")

for trait, cfg_key in (
    ("pod_name_template", None),
    ("start_timeout", None),
    ("image_pull_policy", "image.pullPolicy"),
    ("events_enabled", "events"),
    ("extra_labels", None),
    ("extra_annotations", None),
    ("uid", None),
    ("fs_gid", None),
    ("service_account", "serviceAccountName"),
    ("storage_extra_labels", "storage.extraLabels"),
    ("node_selector", None),
    ("node_affinity_required", "extraNodeAffinity.required"),
    ("node_affinity_preferred", "extraNodeAffinity.preferred"),
    ("pod_affinity_required", "extraPodAffinity.required"),
    ("pod_affinity_preferred", "extraPodAffinity.preferred"),
    ("pod_anti_affinity_required", "extraPodAntiAffinity.required"),
    ("pod_anti_affinity_preferred", "extraPodAntiAffinity.preferred"),
    ("lifecycle_hooks", None),
    ("init_containers", None),
    ("extra_containers", None),
    ("mem_limit", "memory.limit"),
    ("mem_guarantee", "memory.guarantee"),
    ("cpu_limit", "cpu.limit"),
    ("cpu_guarantee", "cpu.guarantee"),
    ("extra_resource_limits", "extraResource.limits"),
    ("extra_resource_guarantees", "extraResource.guarantees"),
    ("environment", "extraEnv"),
    ("profile_list", None),
    ("extra_pod_config", None),
):
    set_config_if_not_none(c.KubeSpawner, trait, "singleuser." + (cfg_key or camelCaseify(trait)))

image = get_config("singleuser.image.name")
if image:
    tag = get_config("singleuser.image.tag")
    c.KubeSpawner.image = f"{image}:{tag}" if tag else image

# None, False and True are all meaningful here, so it is set even when null.
c.KubeSpawner.allow_privilege_escalation = get_config("singleuser.allowPrivilegeEscalation")

storage_type = get_config("singleuser.storage.type")
if storage_type == "dynamic":
    pvc_name_template = get_config("singleuser.storage.dynamic.pvcNameTemplate")
    if pvc_name_template:
        c.KubeSpawner.pvc_name_template = pvc_name_template
    volume_name_template = get_config("singleuser.storage.dynamic.volumeNameTemplate")
    c.KubeSpawner.storage_pvc_ensure = True
    set_config_if_not_none(c.KubeSpawner, "storage_class", "singleuser.storage.dynamic.storageClass")
    set_config_if_not_none(c.KubeSpawner, "storage_access_modes", "singleuser.storage.dynamic.storageAccessModes")
    set_config_if_not_none(c.KubeSpawner, "storage_capacity", "singleuser.storage.capacity")
    c.KubeSpawner.volumes = [{"name": volume_name_template, "persistentVolumeClaim": {"claimName": "{pvc_name}"}}]
    c.KubeSpawner.volume_mounts = [
        {
            "mountPath": get_config("singleuser.storage.homeMountPath"),
            "name": volume_name_template,
            "subPath": get_config("singleuser.storage.dynamic.subPath"),
        }
    ]
elif storage_type == "static":
    c.KubeSpawner.volumes = [
        {"name": "home", "persistentVolumeClaim": {"claimName": get_config("singleuser.storage.static.pvcName")}}
    ]
    c.KubeSpawner.volume_mounts = [
        {
            "mountPath": get_config("singleuser.storage.homeMountPath"),
            "name": "home",
            "subPath": get_config("singleuser.storage.static.subPath"),
        }
    ]
c.KubeSpawner.volumes.extend(get_config("singleuser.storage.extraVolumes", []))
c.KubeSpawner.volume_mounts.extend(get_config("singleuser.storage.extraVolumeMounts", []))

c.JupyterHub.services = []
c.JupyterHub.load_roles = []

if get_config("cull.enabled", False):
    culler_role = {
        "name": "jupyterhub-idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["jupyterhub-idle-culler"],
    }
    cull_cmd = ["python3", "-m", "jupyterhub_idle_culler"]
    cull_cmd.append("--url=http://localhost:8081" + url_path_join(c.JupyterHub.get("base_url", "/"), "hub/api"))
    for flag, cfg_key in (
        ("--timeout", "cull.timeout"),
        ("--cull-every", "cull.every"),
        ("--concurrency", "cull.concurrency"),
    ):
        if get_config(cfg_key):
            cull_cmd.append(f"{flag}={get_config(cfg_key)}")
    if get_config("cull.users"):
        cull_cmd.append("--cull-users")
        culler_role["scopes"].append("admin:users")
    if not get_config("cull.adminUsers"):
        cull_cmd.append("--cull-admin-users=false")
    if get_config("cull.removeNamedServers"):
        cull_cmd.append("--remove-named-servers")
    if get_config("cull.maxAge"):
        cull_cmd.append(f"--max-age={get_config('cull.maxAge')}")
    c.JupyterHub.services.append({"name": "jupyterhub-idle-culler", "command": cull_cmd})
    c.JupyterHub.load_roles.append(culler_role)

for key, service in get_config("hub.services", {}).items():
    # hub.services is a mapping so that values files merge; JupyterHub wants a list.
    service.setdefault("name", key)
    service.pop("apiToken", None)
    service["api_token"] = get_secret_value(f"hub.services.{key}.apiToken")
    c.JupyterHub.services.append(service)

for key, role in get_config("hub.loadRoles", {}).items():
    role.setdefault("name", key)
    c.JupyterHub.load_roles.append(role)

# An explicit null cmd is distinct from an unset one.
_unspecified = object()
specified_cmd = get_config("singleuser.cmd", _unspecified)
if specified_cmd is not _unspecified:
    c.Spawner.cmd = specified_cmd
set_config_if_not_none(c.Spawner, "default_url", "singleuser.defaultUrl")

if get_config("debug.enabled", False):
    c.JupyterHub.log_level = "DEBUG"
    c.Spawner.debug = True

# Generated by the chart unless given in hub.config; the k8s Secret stores the CryptKeeper keys ";"-joined.
c.JupyterHub.cookie_secret = get_secret_value("hub.config.JupyterHub.cookie_secret")
c.CryptKeeper.keys = get_secret_value("hub.config.CryptKeeper.keys").split(";")

for app, cfg in get_config("hub.config", {}).items():
    if app == "JupyterHub":
        for secret_or_managed in ("proxy_auth_token", "cookie_secret", "services"):
            cfg.pop(secret_or_managed, None)
    elif app == "ConfigurableHTTPProxy":
        cfg.pop("auth_token", None)
    elif app == "CryptKeeper":
        cfg.pop("keys", None)
    c[app].update(cfg)

for key, config_py in sorted(get_config("hub.extraConfig", {}).items()):
    print(f"Loading extra config: {key}")
    exec(config_py)
