"""JupyterHub, its proxy and the containers they serve.

``addresses`` says where the hub and the proxy live and holds the secrets
they share with binderlite; ``api`` is the one REST client of both;
``tokens`` keeps binderlite's own hub token; ``spawner`` starts users'
containers; ``jupyterhub_config.py`` configures the hub from binderlite's
settings.
"""
