"""The CVMFS layer: experiment software mounted read-only at /cvmfs by the cvmfs-csi driver."""
