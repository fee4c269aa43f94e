#!/srv/venv/bin/python
"""``jupyter serverextension`` and ``jupyter nbextension`` for postBuild scripts written for the classic Notebook.

Copied into every image as ``/srv/venv/bin/jupyter-serverextension`` and
``/srv/venv/bin/jupyter-nbextension`` (``jupyter foo`` runs ``jupyter-foo``),
unless the repository installs the classic Notebook, whose own commands then
replace these. It runs inside the image with the venv's Python and imports
nothing from binderlite.

- ``jupyter serverextension enable|disable|list …`` becomes Jupyter Server's
  ``jupyter server extension …`` with the same arguments but ``--py`` (it
  takes module names): what the old command did, for the server JupyterLab
  and Notebook 7 run on. Jupyter Server only toggles an extension its
  configuration already names (one a package installed with its config
  file), while the old command enabled any importable module — e.g. a
  ``postBuild`` that moves its own module into site-packages. So first an
  importable module gets a config file of its own that names it
  (``00-binderlite-<module>.json``, read before the file the command then
  writes, which therefore decides).
- ``jupyter nbextension …`` says on stderr that classic Notebook extensions do
  not run in JupyterLab 4 or Notebook 7 and succeeds (the line does not start
  ``binderlite:``, which would make it a failed step's reason), so a postBuild that
  enables one (``widgetsnbextension``, most often, which ipywidgets 8 no longer
  needs) still builds; the message names what was skipped.
"""

import importlib.util
import json
import os
import sys


def config_dir(args: list[str]) -> str:
    """The folder Jupyter Server's command writes to for these flags (its own rule when it is importable)."""
    user, sys_prefix = "--user" in args, "--user" not in args and "--system" not in args
    try:
        from jupyter_server.extension.serverextension import _get_config_dir

        return _get_config_dir(user=user, sys_prefix=sys_prefix)
    except ImportError:
        if user:
            return os.environ.get("JUPYTER_CONFIG_DIR") or os.path.expanduser("~/.jupyter")
        return os.path.join(sys.prefix, "etc", "jupyter") if sys_prefix else "/usr/local/etc/jupyter"


def name_modules(args: list[str]) -> None:
    """Give each importable module that ``enable``/``disable`` names a config file naming it (see above)."""
    folder = os.path.join(config_dir(args), "jupyter_server_config.d")
    enable = args[0] == "enable"
    for module in (a for a in args[1:] if not a.startswith("-")):
        try:
            importable = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            importable = False
        if not importable:
            continue  # Jupyter Server's command says it could not be found
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"00-binderlite-{module}.json"), "w") as fh:
            json.dump({"ServerApp": {"jpserver_extensions": {module: enable}}}, fh)


def main(argv: list[str]) -> int:
    command = os.path.basename(argv[0]).removeprefix("jupyter-")
    args = argv[1:]
    if command == "serverextension":
        if args and args[0] in ("enable", "disable"):
            name_modules(args)
        jupyter = os.path.join(os.path.dirname(os.path.abspath(argv[0])), "jupyter")
        os.execv(jupyter, [jupyter, "server", "extension", *(a for a in args if a != "--py")])
    print(
        f"[binderlite] `jupyter {command} {' '.join(args)}` skipped: classic Notebook extensions do not run in "
        "JupyterLab 4 or Notebook 7 (this image's). JupyterLab extensions install with pip.",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
