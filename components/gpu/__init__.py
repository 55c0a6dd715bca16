"""The GPU layer: NVIDIA's device plugin and feature discovery, advertising each GPU group's GPUs
whole, time-sliced or as MIG instances. What each node needs at boot is the infrastructure's."""
