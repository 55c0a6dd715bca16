"""The offload layer: HPC centres reached through interLink, each a virtual node whose pods run
as Slurm jobs at the centre, and the files its edge installs."""
