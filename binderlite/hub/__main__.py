"""``python -m binderlite.hub``: JupyterHub with binderlite's config, from whichever venv runs it.

The same as ``jupyterhub -f <binderlite/hub/jupyterhub_config.py>``, without a
path into the venv's site-packages (which names Python's version) on the
command line of a systemd unit.
"""

from jupyterhub.app import JupyterHub

from binderlite.hub.addresses import CONFIG_FILE

if __name__ == "__main__":
    JupyterHub.launch_instance(["-f", str(CONFIG_FILE)])
