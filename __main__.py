"""Pulumi entry point: load and validate the stack's config, build the facility, export."""

import pulumi

from components.config.pulumi_source import fail_on_config_error, load_stack_config
from components.facility import Facility

with fail_on_config_error():
    config = load_stack_config()

facility = Facility("af", config, pulumi.get_stack())

pulumi.export("kubeconfig", facility.kubeconfig)
pulumi.export("apiEndpoint", facility.api_endpoint)
pulumi.export("ingressAddress", facility.ingress_address)
pulumi.export("dnsName", config.site.dns_name)
if facility.cluster.ssh_private_key is not None:
    pulumi.export("sshPrivateKey", facility.cluster.ssh_private_key)
if facility.hub_url is not None:
    pulumi.export("hubUrl", facility.hub_url)
