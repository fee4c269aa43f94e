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
  and Notebook 7 run on.
- ``jupyter nbextension …`` says on stderr that classic Notebook extensions do
  not run in JupyterLab 4 or Notebook 7 and succeeds (the line does not start
  ``binderlite:``, which would make it a failed step's reason), so a postBuild that
  enables one (``widgetsnbextension``, most often, which ipywidgets 8 no longer
  needs) still builds; the message names what was skipped.
"""

import os
import sys


def main(argv: list[str]) -> int:
    command = os.path.basename(argv[0]).removeprefix("jupyter-")
    args = argv[1:]
    if command == "serverextension":
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
