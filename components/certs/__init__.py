"""The certificates layer: cert-manager and the facility's internal CA, for the hub's public
certificate and the in-cluster services' TLS."""
