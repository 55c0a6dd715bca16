"""The batch layer: the HTCondor pool on Kubernetes (central manager, schedd, a worker group per
batch node group and offload gateway) and the queue-driven autoscaler that scales its workers."""
