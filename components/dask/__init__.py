"""The Dask layer: Dask Gateway for quasi-interactive scale-out from the notebook, its config
(`af:dask`), checks, renderers, ComponentResource and the files it ships into the gateway, the hub
and the notebooks."""
