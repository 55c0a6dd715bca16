"""The queue-driven autoscaler of HTCondor worker groups: a pure planner (`planner`) between
the batch system (`condor`) and Kubernetes (`kube`) adapters, run by `controller`."""
