"""envtool: the one line a failed install ends with, and the delta of an environment (no Docker)."""

import json
import os
import sys

import pytest

from binderlite.builds.buildpacks import envtool

UV_NOT_FOUND = """error: No solution found when resolving dependencies
  cause: Because this-package-does-not-exist-binderlite was not found in the package registry and you require \
this-package-does-not-exist-binderlite==1.0, we can conclude that your requirements are unsatisfiable.
"""
UV_NO_VERSION = """error: No solution found when resolving dependencies
  cause: Because there is no version of six==99.0 and you require six==99.0, we can conclude that your \
requirements are unsatisfiable.
"""
UV_NEEDS_PYTHON = """error: No solution found when resolving dependencies
  cause: Because the current Python version (3.9.2) does not satisfy Python>=3.11 and numpy==2.3.0 depends on \
Python>=3.11, we can conclude that numpy==2.3.0 cannot be used.
"""
UV_BUILD = """   Building numpy==1.16.4
error: Failed to build `numpy==1.16.4`
  cause: The build backend returned an error
  cause: Call to `setuptools.build_meta:__legacy__.build_wheel` failed (exit status: 1)
"""
UV_OLD_METADATA = """  cause: Because pandas==0.24.2 has invalid metadata and you require pandas==0.24.2, we can \
conclude that your requirements are unsatisfiable.
"""
PIP2_NOT_FOUND = """ERROR: Could not find a version that satisfies the requirement numpy==1.22 (from versions: 1.3.0)
ERROR: No matching distribution found for numpy==1.22
"""
PIP2_NEEDS_PYTHON = "ERROR: Package 'ipython' requires a different Python: 2.7.18 not in '>=3.8'\n"
UV_UNREACHABLE = """error: Request failed after 3 retries in 9.3s
  cause: error sending request for url (https://github.com/betatim/rio-tiler/archive/0cbe4ec.zip)
  cause: client error (Connect)
  cause: dns error
  cause: failed to lookup address information: Name or service not known
"""


@pytest.mark.parametrize(
    "output, name, why",
    [
        (UV_NOT_FOUND, "this-package-does-not-exist-binderlite", "it is not on the package index"),
        (UV_NO_VERSION, "six==99.0", "that version is not on the package index"),
        (UV_NEEDS_PYTHON, "numpy==2.3.0", "it needs Python >=3.11"),
        (UV_OLD_METADATA, "pandas==0.24.2", "its metadata is too old for the installer (an old release)"),
        (PIP2_NOT_FOUND, "numpy==1.22", "no release of it installs on Python 3.9"),
        (PIP2_NEEDS_PYTHON, "ipython", "it needs Python >=3.8"),
        (
            UV_UNREACHABLE,
            "",
            "https://github.com/betatim/rio-tiler/archive/0cbe4ec.zip could not be fetched: "
            "this machine cannot reach that host",
        ),
        ("something else\nerror: it broke\n", "", "error: it broke"),
    ],
)
def test_the_reason_names_the_requirement_and_why(output, name, why):
    assert envtool.reason(output, "3.9") == (name, why)


def test_a_build_failure_says_whether_a_compiler_was_there(monkeypatch):
    monkeypatch.setattr(envtool.shutil, "which", lambda name: None)
    name, why = envtool.reason(UV_BUILD, "3.9")
    assert name == "numpy==1.16.4" and "needs a compiler, which this build lacks" in why
    monkeypatch.setattr(envtool.shutil, "which", lambda name: "/usr/bin/gcc")
    assert "building it from source failed" in envtool.reason(UV_BUILD, "3.9")[1]


def test_install_ends_with_one_line(capsys):
    script = "import sys; print('error: Failed to build `foo==1.0`'); sys.exit(1)"
    rc = envtool.install(["3.11", "requirements.txt", " Asked 3.6.", "--", sys.executable, "-c", script])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert rc == 1
    assert last.startswith("binderlite: error: foo==1.0 (from requirements.txt) could not be installed on Python 3.11")
    assert last.endswith(" Asked 3.6.")
    assert envtool.install(["3.11", "x", "", "--", sys.executable, "-c", "pass"]) == 0


def test_delta_holds_what_changed_and_lists_what_went(tmp_path):
    venv, out = tmp_path / "venv", tmp_path / "delta"
    (venv / "lib" / "old").mkdir(parents=True)
    (venv / "lib" / "old" / "a.py").write_text("old")
    (venv / "lib" / "same.py").write_text("same")
    (venv / "lib" / "changed.py").write_text("v1")
    manifest = tmp_path / "snapshot.json"
    assert envtool.snapshot([str(manifest), str(venv)]) == 0
    (venv / "lib" / "old" / "a.py").unlink()
    (venv / "lib" / "old").rmdir()
    (venv / "lib" / "changed.py").write_text("v2")
    (venv / "lib" / "new").mkdir()
    (venv / "lib" / "new" / "b.py").write_text("new")
    os.symlink("b.py", venv / "lib" / "new" / "link.py")
    out.mkdir()
    (out / "planted.txt").write_text("left by an earlier step")
    assert envtool.delta([str(manifest), str(out), str(venv), str(tmp_path / "kernel")]) == 0
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if not p.is_dir())
    assert files == ["removed.txt", "venv/lib/changed.py", "venv/lib/new/b.py", "venv/lib/new/link.py"]
    assert os.readlink(out / "venv" / "lib" / "new" / "link.py") == "b.py"
    assert (out / "removed.txt").read_text().splitlines() == [f"{venv}/lib/old", f"{venv}/lib/old/a.py"]
    assert (out / "kernel").is_dir() and (out / "libs").is_dir()
    assert json.loads(manifest.read_text())[f"{venv}/lib/same.py"][0] == "f"
