"""Magnum's node labeller: which patch it sends a node, from the config the program renders.
(It runs against a real API server in the Kubernetes tests.)"""

from __future__ import annotations

import copy

from conftest import stack_values

from components.config.loader import build_config
from components.infra.files.af_node_labeller import desired
from components.infra.labeller import MAGNUM_DEFAULT_GROUP, MAGNUM_NODEGROUP_LABEL, labeller_config
from components.names import GPU_TAINT_KEY, role_label


def _config(with_gpu: bool = False) -> dict:
    values, secret = stack_values("atlas-cnaf")
    values = copy.deepcopy(values)
    if with_gpu:
        values["cluster"]["nodeGroups"]["gpu"] = {
            "flavor": "xlarge",
            "count": 1,
            "roles": ["batch"],
            "taints": [{"key": GPU_TAINT_KEY, "value": "present", "effect": "NoSchedule"}],
        }
    return labeller_config(build_config(values, secret).cluster)


def _node(group: str, labels: dict | None = None, taints: list | None = None) -> dict:
    return {
        "metadata": {"name": f"{group}-0", "labels": {MAGNUM_NODEGROUP_LABEL: group, **(labels or {})}},
        "spec": {"taints": taints or []},
    }


def test_the_first_group_is_magnums_default_worker_group_and_the_others_keep_their_names():
    """atlas-cnaf's groups are `batch` and `default`: `batch` comes first, so Magnum calls it
    `default-worker` (the cluster's own group), and `default` is a node group named `default`."""
    config = _config()
    assert sorted(config["groups"]) == ["default", MAGNUM_DEFAULT_GROUP]
    assert config["groups"][MAGNUM_DEFAULT_GROUP]["labels"][role_label("batch")] == "true"
    assert config["groups"]["default"]["labels"][role_label("system")] == "true"


def test_a_new_node_gets_its_groups_labels_and_nothing_more():
    config = _config()
    patch = desired(_node("default", {"kubernetes.io/hostname": "default-0"}), config)
    assert patch == {"metadata": {"labels": config["groups"]["default"]["labels"]}}


def test_a_labelled_node_is_left_alone_and_a_stranger_too():
    config = _config()
    assert desired(_node("default", config["groups"]["default"]["labels"]), config) is None
    assert desired(_node("someone-elses"), config) is None


def test_taints_are_sent_by_key_so_the_nodes_own_taints_stay():
    config = _config(with_gpu=True)
    own = {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}
    patch = desired(_node("gpu", config["groups"]["gpu"]["labels"], [own]), config)
    assert patch == {"spec": {"taints": [{"key": GPU_TAINT_KEY, "value": "present", "effect": "NoSchedule"}]}}
    tainted = [own, {"key": GPU_TAINT_KEY, "value": "present", "effect": "NoSchedule"}]
    assert desired(_node("gpu", config["groups"]["gpu"]["labels"], tainted), config) is None
