"""The Python a repository asks for, requirements that must all install, and compilers only at build time.

Real builds on the real Docker engine from fixture repositories served on
127.0.0.1 (``py-*``), checked from inside the image: the notebook's kernel
reports its version, a Python 2 kernel runs Python 2 code, a C extension
built from source imports while no compiler is in the image, and a
requirement that cannot be installed fails the build with one line naming it.
"""

from __future__ import annotations

import json
import re

import pytest
import requests

from tests.helpers.images import build_fixture, build_link, run_in_image
from tests.helpers.kernel import run_code
from tests.helpers.stack import launch_ready

pytestmark = pytest.mark.integration

EXECUTE = "jupyter nbconvert --to notebook --execute --stdout index.ipynb 2>/dev/null"
COMPILERS = "command -v gcc cc c++ g++ gfortran make || echo no-compiler"


def notebook_output(out: str) -> str:
    notebook = json.loads(out[out.index("{") :])
    return "".join("".join(o.get("text", "")) for o in notebook["cells"][0]["outputs"])


@pytest.mark.parametrize("fixture, version", [("py-runtime-39", "3.9"), ("py-runtime-313", "3.13")])
def test_runtime_txt_python_runs_the_notebook(settings, git_server, docker_client, fixture, version):
    image, log = build_fixture(settings, git_server, fixture)
    assert f"Python {version} as runtime.txt asks" in log
    out = run_in_image(docker_client, image, f"python --version; jupyterhub-singleuser --version; {EXECUTE}")
    assert out.startswith(f"Python {version}.")
    assert f"version {version}." in notebook_output(out)
    assert run_in_image(docker_client, image, COMPILERS).strip() == "no-compiler"


def test_python_2_gets_a_kernel_beside_a_python_3_jupyterlab(settings, git_server, docker_client):
    image, log = build_fixture(settings, git_server, "py-python2")
    assert "Python 2.7 as runtime.txt asks" in log
    out = run_in_image(
        docker_client,
        image,
        "/srv/venv/bin/python --version; python --version 2>&1; /srv/venv/bin/jupyter kernelspec list; " + EXECUTE,
    )
    assert out.startswith("Python 3.9.")  # JupyterLab's Python
    assert "Python 2.7.18" in out  # `python` in a terminal, postBuild and start is the kernel's, as repo2docker
    assert re.search(r"python2\s+/srv/venv/share/jupyter/kernels/python2", out)  # as JupyterLab sees them
    assert "hi from 2.7.18 six 1.16.0" in notebook_output(out)


def test_a_python_2_image_launches_through_the_hub(settings, git_server, hubstack):
    """JupyterLab on bullseye's 3.9 runs the newest jupyterhub-singleuser there (jupyterhub 6 needs 3.10)."""
    image, log = build_fixture(settings, git_server, "py-python2")
    assert "the newest that runs there" in log
    ready = launch_ready(hubstack, image, name="bltest/py2")
    assert run_code(ready["url"], ready["token"], "import sys; sys.version_info[:2]") == "(3, 9)"
    specs = requests.get(
        f"{ready['url']}api/kernelspecs", headers={"Authorization": f"token {ready['token']}"}, timeout=30
    )
    assert specs.status_code == 200 and {"python2", "python3"} <= set(specs.json()["kernelspecs"])


def test_a_pin_on_no_index_fails_the_build_naming_it(settings, git_server, docker_client):
    git_server.add_fixture("py-missing-pin")
    final, events = build_link(settings, git_server.link("py-missing-pin"))
    log = "".join(ev.get("message", "") for ev in events)
    assert final["phase"] == "failed", log[-3000:]
    line = (
        "binderlite: error: toolz==99.0.1 (from environment.yml) could not be installed on Python 3.11: "
        "that version is not on the package index."
    )
    assert line in final["message"]
    assert "one by one" not in log and "not installable from the package index" not in log


def test_a_c_extension_builds_and_imports_with_no_compiler_in_the_image(settings, git_server, docker_client):
    image, log = build_fixture(settings, git_server, "py-cext")
    assert re.search(r"libraries copied from the build stage: .*libxml2\.so\.2", log)
    out = run_in_image(docker_client, image, "cd /tmp && python -c 'import cext; print(cext.add(2, 40))'")
    assert out.strip() == "42"
    version = run_in_image(docker_client, image, "cd /tmp && python -c 'import cext; print(cext.libxml2_version())'")
    assert re.fullmatch(r"\d{5}", version.strip())
    assert run_in_image(docker_client, image, COMPILERS).strip() == "no-compiler"
    headers = run_in_image(docker_client, image, "ls /usr/include/libxml2 /usr/include/python3.11 2>&1 | head -2")
    assert "No such file" in headers


def test_a_lock_for_python_36_fails_clearly_on_the_nearest_python(settings, git_server, docker_client):
    git_server.add_fixture("py-pipfile-36")
    final, events = build_link(settings, git_server.link("py-pipfile-36"))
    log = "".join(ev.get("message", "") for ev in events)
    assert final["phase"] == "failed", log[-3000:]
    assert "Pipfile.lock asks for Python 3.6, which this machine does not have" in log
    assert re.search(
        r"binderlite: error: (numpy|pandas|matplotlib)==[\d.]+ \(from Pipfile.lock\) could not be installed on "
        r"Python 3.9: .+ Python 3.6 was asked for by Pipfile.lock; this machine has 2.7, 3.9, 3.11, 3.13",
        final["message"],
    ), final["message"]
