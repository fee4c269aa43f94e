"""binderlite: BinderHub without Kubernetes — a repository link becomes a running JupyterLab."""

__version__ = "0.1.0"
