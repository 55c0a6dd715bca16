"""A service's own IAM credential, shared by the layers whose services authenticate upstream
with IAM's client-credentials grant (the cache towards the federation, the offload gateways
towards the HPC centres): the config of the IAM client and the sidecar that keeps its token fresh."""
