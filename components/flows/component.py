"""The facility's NetworkPolicies, in the namespaces of the layers that own them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ..common import rendered, yamltext


class NetworkPolicies(pulumi.ComponentResource):
    """`policies` by namespace, each created after its Namespace (`namespaces`)."""

    def __init__(
        self,
        name: str,
        policies: Mapping[str, list[dict[str, Any]]],
        namespaces: Mapping[str, k8s.core.v1.Namespace],
        provider: k8s.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("af:index:NetworkPolicies", name, None, opts)
        for namespace, manifests in sorted(policies.items()):
            rendered.publish("network", f"{namespace}.yaml", "---\n".join(yamltext.dump(m) for m in manifests))
            for manifest in manifests:
                k8s.networking.v1.NetworkPolicy(
                    f"{name}-{namespace}-{manifest['metadata']['name'].removeprefix('af-')}",
                    metadata=manifest["metadata"],
                    spec=manifest["spec"],
                    opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[namespaces[namespace]]),
                )
        self.register_outputs({"namespaces": sorted(policies)})
