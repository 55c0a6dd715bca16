# ruff: noqa: F821
"""z2jh extraConfig: server profiles offered by group membership (GPU profiles only to
groups entitled to GPUs). Runs inside z2jh's jupyterhub_config.py (`c`, `get_config`)."""

import copy

_entries = get_config("custom.af")["profiles"]


def af_profile_list(spawner) -> list[dict]:
    """Profiles the spawning user may pick; groups were synced from the token at login."""
    groups = {group.name for group in spawner.user.groups}
    return [copy.deepcopy(e["profile"]) for e in _entries if e.get("groups") is None or groups & set(e["groups"])]


c.KubeSpawner.profile_list = af_profile_list
