"""The hub layer: JupyterHub (zero-to-jupyterhub), the facility's single entry point, with IAM
login, server profiles by group, and the user's token in every notebook."""
