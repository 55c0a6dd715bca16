"""Which input changes make Pulumi REPLACE a resource rather than update it in place.

Pulumi asks the provider (`Diff`): bridged Terraform providers answer from their schema
(`ForceNew`, `RequiresReplace`), the Kubernetes provider from a table of immutable fields. Offline
there is no provider to ask, so this module carries the answer for every type this program emits,
as property paths in the plan's input names (camelCase). A change at a listed path, or anywhere
under it, replaces; `ALL` means the provider has no in-place update at all.

Sources, for the versions pinned in pyproject.toml:
- Kubernetes: pulumi-kubernetes `provider/pkg/provider/diff.go` (`forceNew`, `metadataForceNewProperties`),
  and `helm_release.go` (`forceNewFields := []string{".name", ".namespace"}`). Secrets and ConfigMaps
  are replaced on any data change unless the provider sets `enableSecretMutable` /
  `enableConfigMapMutable` (and the object is not `immutable`).
- OpenStack (pulumi-openstack 5.5.3 bridges terraform-provider-openstack 3.x): `ForceNew` in
  `resource_openstack_*.go`, cross-checked with the SDK's docstrings ("Changing this creates a new …").
  Not replacing there: Instance `imageName`/`imageId` (rebuild), `flavorName` (resize), `metadata`,
  `name`; Volume `size` (extend only: a smaller size fails at apply, it does not replace) and
  `volumeType` (retype); Port `fixedIps`, `securityGroupIds`; FloatingIpAssociate `portId`.
- tls (terraform-provider-tls, plugin framework): every argument `RequiresReplace` except a
  certificate's `earlyRenewalHours`.
- random (terraform-provider-random): every argument of RandomPassword/RandomBytes `RequiresReplace`.
- The program's own dynamic provider (components/infra/readiness.py): replaces on `endpoint`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ALL = "*"
"""Every input replaces: the provider cannot update the resource in place."""

K8S_METADATA = ("metadata.name", "metadata.namespace")
_LABEL_SELECTOR = ("spec.selector",)  # covers matchLabels and matchExpressions under it


@dataclass(frozen=True)
class Rule:
    paths: tuple[str, ...]
    source: str


_K8S = "pulumi-kubernetes provider/pkg/provider/diff.go"
_OS = "terraform-provider-openstack ForceNew"

RULES: dict[str, Rule] = {
    # Kubernetes: metadata name/namespace for every kind, plus the kind's immutable fields.
    "kubernetes:apps/v1:Deployment": Rule((*K8S_METADATA, *_LABEL_SELECTOR), _K8S),
    "kubernetes:apps/v1:DaemonSet": Rule((*K8S_METADATA, *_LABEL_SELECTOR), _K8S),
    "kubernetes:apps/v1:StatefulSet": Rule(
        (
            *K8S_METADATA,
            "spec.podManagementPolicy",
            "spec.revisionHistoryLimit",
            *_LABEL_SELECTOR,
            "spec.serviceName",
            "spec.volumeClaimTemplates",
        ),
        _K8S,
    ),
    "kubernetes:batch/v1:Job": Rule(
        (*K8S_METADATA, "spec.completions", "spec.parallelism", *_LABEL_SELECTOR, "spec.template"), _K8S
    ),
    "kubernetes:core/v1:PersistentVolumeClaim": Rule(
        (*K8S_METADATA, "spec.accessModes", *_LABEL_SELECTOR, "spec.storageClassName", "spec.volumeName"),
        _K8S + " (a larger spec.resources.requests.storage expands in place)",
    ),
    "kubernetes:core/v1:Service": Rule((*K8S_METADATA, "spec.clusterIP"), _K8S),
    "kubernetes:core/v1:Secret": Rule((*K8S_METADATA, "type"), _K8S + " (+ data, stringData: see mutable())"),
    "kubernetes:core/v1:ConfigMap": Rule(K8S_METADATA, _K8S + " (+ data, binaryData: see mutable())"),
    "kubernetes:core/v1:Namespace": Rule(K8S_METADATA, _K8S),
    "kubernetes:core/v1:ServiceAccount": Rule(K8S_METADATA, _K8S),
    "kubernetes:storage.k8s.io/v1:StorageClass": Rule((*K8S_METADATA, "parameters", "provisioner"), _K8S),
    "kubernetes:rbac.authorization.k8s.io/v1:Role": Rule(K8S_METADATA, _K8S),
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole": Rule(K8S_METADATA, _K8S),
    "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding": Rule((*K8S_METADATA, "roleRef"), _K8S),
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding": Rule((*K8S_METADATA, "roleRef"), _K8S),
    # policy/v1 PDBs are mutable: only policy/v1beta1 listed `.spec`.
    "kubernetes:policy/v1:PodDisruptionBudget": Rule(K8S_METADATA, _K8S),
    "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy": Rule(K8S_METADATA, _K8S),
    "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding": Rule(K8S_METADATA, _K8S),
    "kubernetes:helm.sh/v3:Release": Rule(("name", "namespace"), "pulumi-kubernetes helm_release.go forceNewFields"),
    # OpenStack.
    "openstack:compute/instance:Instance": Rule(
        (
            "availabilityZone",
            "availabilityZoneHints",
            "blockDevices",
            "configDrive",
            "hypervisorHostname",
            "keyPair",
            "networkMode",
            "networks",
            "region",
            "schedulerHints",
            "userData",
        ),
        _OS + " (resource_openstack_compute_instance_v2.go)",
    ),
    "openstack:compute/keypair:Keypair": Rule((ALL,), _OS + " (no Update)"),
    "openstack:compute/serverGroup:ServerGroup": Rule((ALL,), _OS + " (no Update)"),
    "openstack:compute/volumeAttach:VolumeAttach": Rule((ALL,), _OS + " (no Update)"),
    "openstack:blockstorage/volume:Volume": Rule(
        (
            "availabilityZone",
            "backupId",
            "consistencyGroupId",
            "imageId",
            "region",
            "schedulerHints",
            "snapshotId",
            "sourceReplica",
            "sourceVolId",
        ),
        _OS + " (resource_openstack_blockstorage_volume_v3.go)",
    ),
    "openstack:networking/network:Network": Rule(("availabilityZoneHints", "region", "tenantId", "valueSpecs"), _OS),
    "openstack:networking/subnet:Subnet": Rule(
        (
            "cidr",
            "ipVersion",
            "ipv6AddressMode",
            "ipv6RaMode",
            "networkId",
            "prefixLength",
            "region",
            "subnetpoolId",
            "tenantId",
            "valueSpecs",
        ),
        _OS + " (resource_openstack_networking_subnet_v2.go)",
    ),
    "openstack:networking/port:Port": Rule(
        ("deviceId", "deviceOwner", "macAddress", "networkId", "region", "tenantId", "valueSpecs"), _OS
    ),
    "openstack:networking/router:Router": Rule(
        ("availabilityZoneHints", "distributed", "region", "tenantId", "valueSpecs"), _OS
    ),
    "openstack:networking/routerInterface:RouterInterface": Rule(("portId", "region", "routerId", "subnetId"), _OS),
    "openstack:networking/secGroup:SecGroup": Rule(("deleteDefaultRules", "region", "tenantId"), _OS),
    "openstack:networking/secGroupRule:SecGroupRule": Rule((ALL,), _OS + " (every argument)"),
    "openstack:networking/floatingIp:FloatingIp": Rule(
        ("dnsDomain", "dnsName", "pool", "region", "tenantId", "valueSpecs"), _OS
    ),
    "openstack:networking/floatingIpAssociate:FloatingIpAssociate": Rule(
        ("floatingIp", "region"), _OS + " (resource_openstack_networking_floatingip_associate_v2.go)"
    ),
    "openstack:containerinfra/cluster:Cluster": Rule(
        (
            "clusterTemplateId",
            "createTimeout",
            "discoveryUrl",
            "dockerVolumeSize",
            "fixedNetwork",
            "fixedSubnet",
            "flavor",
            "floatingIpEnabled",
            "keypair",
            "labels",
            "masterCount",
            "masterFlavor",
            "masterLbEnabled",
            "mergeLabels",
            "name",
            "region",
        ),
        _OS + " (only nodeCount resizes in place)",
    ),
    "openstack:containerinfra/clusterTemplate:ClusterTemplate": Rule(("region",), _OS),
    "openstack:containerinfra/nodeGroup:NodeGroup": Rule(
        ("clusterId", "dockerVolumeSize", "flavorId", "labels", "mergeLabels", "name", "region", "role"), _OS
    ),
    # tls and random: generated material is never regenerated in place.
    "tls:index/privateKey:PrivateKey": Rule((ALL,), "terraform-provider-tls RequiresReplace"),
    "tls:index/certRequest:CertRequest": Rule((ALL,), "terraform-provider-tls RequiresReplace"),
    "tls:index/selfSignedCert:SelfSignedCert": Rule(
        (
            "allowedUses",
            "dnsNames",
            "ipAddresses",
            "isCaCertificate",
            "maxPathLength",
            "privateKeyPem",
            "setAuthorityKeyId",
            "setSubjectKeyId",
            "subject",
            "uris",
            "validityPeriodHours",
        ),
        "terraform-provider-tls RequiresReplace (all but earlyRenewalHours)",
    ),
    "tls:index/locallySignedCert:LocallySignedCert": Rule(
        (
            "allowedUses",
            "caCertPem",
            "caPrivateKeyPem",
            "certRequestPem",
            "isCaCertificate",
            "maxPathLength",
            "setSubjectKeyId",
            "validityPeriodHours",
        ),
        "terraform-provider-tls RequiresReplace (all but earlyRenewalHours)",
    ),
    "random:index/randomPassword:RandomPassword": Rule((ALL,), "terraform-provider-random RequiresReplace"),
    "random:index/randomBytes:RandomBytes": Rule((ALL,), "terraform-provider-random RequiresReplace"),
    "pulumi-python:dynamic:Resource": Rule(("endpoint",), "components/infra/readiness.py _ApiReadyProvider.diff"),
    # A provider's own diff (DiffConfig) is not modelled offline: its changes count as updates.
    "pulumi:providers:kubernetes": Rule((), "DiffConfig, not modelled offline"),
    "pulumi:providers:openstack": Rule((), "DiffConfig, not modelled offline"),
}


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def mutable(type_: str, inputs: Mapping[str, Any], provider_inputs: Mapping[str, Any]) -> bool:
    """Whether a Secret's or ConfigMap's data can change in place: only when the provider enables it
    (`enableSecretMutable`, `enableConfigMapMutable`) and the object is not `immutable`."""
    option = {
        "kubernetes:core/v1:Secret": "enableSecretMutable",
        "kubernetes:core/v1:ConfigMap": "enableConfigMapMutable",
    }
    return _flag(provider_inputs.get(option[type_])) and not _flag(inputs.get("immutable"))


def replace_paths(type_: str, inputs: Mapping[str, Any], provider_inputs: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The replacement-triggering paths of a resource, or None for a type this table does not know."""
    rule = RULES.get(type_)
    if rule is None:
        # Any other Kubernetes kind (custom resources such as cert-manager's) has only the metadata rule.
        return K8S_METADATA if type_.startswith("kubernetes:") else None
    if type_ == "kubernetes:core/v1:Secret" and not mutable(type_, inputs, provider_inputs):
        return (*rule.paths, "data", "stringData")
    if type_ == "kubernetes:core/v1:ConfigMap" and not mutable(type_, inputs, provider_inputs):
        return (*rule.paths, "binaryData", "data")
    return rule.paths
