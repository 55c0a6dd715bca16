"""Test-support code: a local OIDC issuer and a real JupyterHub configured like the z2jh hub image, on loopback."""
