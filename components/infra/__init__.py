"""The infrastructure layer: the OpenStack network, the VMs and their boot (cloud-init, GPU
drivers), the cluster's PKI and the Kubernetes cluster in one of three modes, up to the provider
every platform layer deploys with."""
