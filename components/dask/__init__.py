"""The Dask layer: Dask Gateway for quasi-interactive scale-out from the notebook, its config
(`af:dask`), renderers, ComponentResource and the files it ships into the gateway, the hub and
the notebooks."""

# The config package assembles FacilityConfig from every layer's models, this one's included:
# loading it first keeps `import components.dask.config` free of a circular import.
import components.config  # noqa: F401
