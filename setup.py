from setuptools import find_packages, setup

setup(
    name="binderlite",
    version="0.1.0",
    description="BinderHub without Kubernetes: a repository link becomes a running JupyterLab.",
    packages=find_packages(include=["binderlite", "binderlite.*"]),
    python_requires=">=3.11",
    install_requires=[
        "jupyter-repo2docker>=2025.1",
        "jupyterhub>=5,<7",
        "dockerspawner>=13",
        "flask>=3",
        # the admin page's forms: CSRF tokens (binderlite.web.admin)
        "flask-wtf>=1.2,<2",
        "gunicorn>=22",
        "gevent>=24",
        "apscheduler>=3.10,<4",
        "docker>=7",
        "escapism>=1.0",
        "click>=8",
        "requests>=2.31",
        "uv>=0.5",
        "cryptography>=41",
        # sign-in (auth_mode = "authenticated"): binderlite.hub.auth
        "jupyterhub-ldapauthenticator>=2,<3",
        "oauthenticator>=17,<18",
        # classroom mode's QR code (terminal and landing page): pure Python, nothing native on an offline laptop
        "segno>=1.6,<2",
        # the workshop's local package index (binderlite.services.table:index_service): serves the package
        # mirror, a plain folder (no database), and with --disable-fallback never redirects to PyPI
        "pypiserver>=2.4,<3",
        # /metrics (binderlite.observe): BinderHub's metrics, counted across processes (multiprocess mode)
        "prometheus-client>=0.20",
    ],
    extras_require={
        # spawner_backend = "kubernetes": users' servers as pods on a cluster (docs/k3s.md)
        "kubernetes": ["jupyterhub-kubespawner>=7,<8"],
        "test": [
            "pytest>=8",
            "pytest-timeout>=2",
            "hypothesis>=6",
            "websocket-client>=1.7",
            "ruff>=0.5",
            "selenium>=4.20",
            "authlib>=1.6",  # the test forge (tests/helpers/forge.py): an OpenID Connect provider
            # the kubernetes backend's unit tests: KubeSpawner renders the pods, checked against the API's schemas
            "jupyterhub-kubespawner>=7,<8",
            "kubernetes-validate>=1.33",
            "jsonschema>=4",  # BinderHub's launch event schema, the k3s files the Ansible role renders (tests/schemas/)
            "pyyaml>=6",  # the k3s files the Ansible role renders (tests/unit/test_k3s_templates.py)
        ]
    },
    entry_points={"console_scripts": ["binderlite = binderlite.cli:main"]},
    include_package_data=True,
)
