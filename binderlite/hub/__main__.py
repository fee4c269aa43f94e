"""``python -m binderlite.hub``: JupyterHub with binderlite's config, from whichever venv runs it.

The same as ``jupyterhub -f <binderlite/hub/jupyterhub_config.py> --upgrade-db``,
without a path into the venv's site-packages (which names Python's version)
on the command line of a systemd unit. ``--upgrade-db`` migrates the hub's
database when a new JupyterHub needs it (after a backup copy beside it) and
does nothing otherwise, so an upgrade of binderlite is one restart.
"""

from jupyterhub.app import JupyterHub

from binderlite.hub.addresses import CONFIG_FILE

if __name__ == "__main__":
    JupyterHub.launch_instance(["-f", str(CONFIG_FILE), "--upgrade-db"])
