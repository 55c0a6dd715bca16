"""The cache layer: an XCache (XRootD proxy file cache) in front of the experiment's federation,
with token auth for clients, its own credential upstream and a metrics exporter."""
