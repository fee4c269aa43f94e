"""environment.yml and Pipfile/Pipfile.lock become pip requirements, a Python request, log notes and warnings.

The conda → package-index table itself is tests/unit/test_conda_names.py's.
"""

from __future__ import annotations

import json
import tomllib

import pytest
from ruamel.yaml import YAMLError

from binderlite.builds.buildpacks.specfiles import (
    Conversion,
    conda_version_to_pip,
    convert_environment_yml,
    convert_pipfile,
)


# ---- conda version specs ----------------------------------------------------------------
@pytest.mark.parametrize(
    "conda, pip",
    [
        ("", ""),
        ("=1.2", "==1.2.*"),  # conda's single `=` is fuzzy
        ("1.2.*", "==1.2.*"),
        ("=1.2.*", "==1.2.*"),
        ("=1.2=py_0", "==1.2.*"),  # a build string is dropped
        ("==1.2.3", "==1.2.3"),  # exact stays exact
        ("==1.2.3=py38_0", "==1.2.3"),
        (">=1,<2", ">=1,<2"),  # comparisons pass through as pip has them
        (">=1.20", ">=1.20"),
        ("<2", "<2"),
        ("!=1.3", "!=1.3"),
        ("~=1.4", "~=1.4"),
        ("  =1.2  ", "==1.2.*"),
    ],
)
def test_conda_version_specs_become_pip_specs(conda, pip):
    assert conda_version_to_pip(conda) == pip


# ---- environment.yml ----------------------------------------------------------------------
def test_environment_yml_each_conda_name_is_installed_mapped_or_left_out_and_says_so():
    text = """
name: demo
channels: [conda-forge]
dependencies:
  - python=3.11
  - numpy=1.26
  - conda-forge::pandas>=2,<3
  - pytorch=2.1
  - PyYAML
  - r-base=4.3
  - r-ggplot2
  - libgcc-ng
  - nodejs
  - pip
  - pip:
      - six==1.16.0
      - toolz
"""
    result = convert_environment_yml(text)
    assert result.requirements == ["numpy==1.26.*", "pandas>=2,<3", "torch==2.1.*", "PyYAML", "six==1.16.0", "toolz"]
    assert result.python_version == "3.11"
    assert result.notes == [
        "installing conda package 'numpy' as 'numpy==1.26.*' from the package index",
        "installing conda package 'pandas' as 'pandas>=2,<3' from the package index",
        "mapped conda package 'pytorch' to 'torch==2.1.*' on the package index",
        "mapped conda package 'pyyaml' to 'PyYAML' on the package index",
        "conda package 'pip' is in every image already",
    ]
    assert result.warnings == [
        "skipped conda package 'r-base': it is not a Python package; if the repository needs it, "
        "add r-base (and an install.R) to apt.txt",
        "skipped conda package 'r-ggplot2': it is not a Python package",
        "skipped conda package 'libgcc-ng': it is not a Python package",
        "skipped conda package 'nodejs': it is not a Python package; if the repository needs it, add nodejs to apt.txt",
    ]
    assert result.text() == "".join(line + "\n" for line in result.requirements)


def test_python_packages_whose_conda_name_starts_with_lib_are_installed():
    result = convert_environment_yml("dependencies: [librosa=0.10, libpysal, libopencv]")
    assert result.requirements == ["librosa==0.10.*", "libpysal", "opencv-python-headless"]


@pytest.mark.parametrize(
    "line, version",
    [
        ("python=3.10", "3.10"),
        ("python=3.10.*", "3.10"),
        ("python 3.9", "3.9"),
        ("python=3.11.4", "3.11.4"),
        ("python>=3.9", ">=3.9"),  # not a version the build pack can pick: it keeps the base image's Python
        ("python", None),
    ],
)
def test_python_version_request_in_environment_yml(line, version):
    result = convert_environment_yml(f"dependencies: ['{line}']")
    assert result.python_version == version
    assert result.requirements == [] and result.notes == []


def test_environment_yml_without_dependencies_or_with_empty_sections_asks_for_nothing():
    for text in ("", "name: empty\n", "dependencies:\n", "dependencies:\n  - pip:\n"):
        assert convert_environment_yml(text) == Conversion()


def test_environment_yml_dependency_that_is_not_understood_is_skipped_with_a_warning():
    result = convert_environment_yml("dependencies: ['numpy[version=1.2]', six]")
    assert result.requirements == ["six"]
    assert result.warnings == ["skipped conda dependency 'numpy[version=1.2]': not understood"]


def test_malformed_environment_yml_is_an_error_naming_the_problem():
    with pytest.raises(YAMLError, match="line 2"):
        convert_environment_yml("dependencies:\n  - [numpy\n  - six\n")
    with pytest.raises(ValueError, match="must be a mapping"):
        convert_environment_yml("- numpy\n- six\n")


# ---- Pipfile and Pipfile.lock ------------------------------------------------------------
LOCK = {
    "_meta": {"requires": {"python_version": "3.11"}, "sources": []},
    "default": {
        "toolz": {"version": "==0.12.1", "hashes": ["sha256:aa"]},
        "six": {"version": "==1.16.0", "hashes": ["sha256:bb"]},
    },
    "develop": {"pytest": {"version": "==8.0.0"}},
}

PIPFILE = """
[packages]
six = "==1.16.0"
toolz = "*"
tabulate = {version = ">=0.9", extras = []}
mypkg = {path = ".", editable = true}

[dev-packages]
pytest = "*"

[requires]
python_version = "3.10"
"""


def test_pipfile_lock_gives_its_default_and_dev_packages_pinned_and_its_python():
    result = convert_pipfile(PIPFILE, json.dumps(LOCK))
    # sorted within each section, default first; the lock wins over the Pipfile
    assert result.requirements == ["six==1.16.0", "toolz==0.12.1", "pytest==8.0.0"]
    assert result.python_version == "3.11"
    assert result.notes == ["installing 3 pinned packages from Pipfile.lock"]


def test_pipfile_without_lock_gives_its_packages_and_skips_what_is_not_a_version():
    result = convert_pipfile(PIPFILE, None)
    assert result.requirements == ["six==1.16.0", "toolz", "tabulate>=0.9", "pytest"]
    assert result.python_version == "3.10"
    assert result.warnings == ["skipped Pipfile entry 'mypkg': only version requirements are supported"]
    assert result.notes == ["installing 4 packages from Pipfile (no Pipfile.lock)"]


def test_pipfile_lock_without_python_request_or_packages():
    result = convert_pipfile(None, json.dumps({"_meta": {}, "default": {}}))
    assert result.requirements == [] and result.python_version is None
    assert result.notes == ["installing 0 pinned packages from Pipfile.lock"]


def test_pipfile_lock_entries_without_a_version_are_skipped_with_a_warning():
    lock = {"default": {"six": {"version": "==1.16.0"}, "mypkg": {"path": ".", "editable": True}}}
    result = convert_pipfile(None, json.dumps(lock))
    assert result.requirements == ["six==1.16.0"]
    assert any("mypkg" in warning for warning in result.warnings)


def test_pipfile_dev_packages_are_installed_as_repo2docker_does():
    assert "pytest==8.0.0" in convert_pipfile(None, json.dumps(LOCK)).requirements
    assert "pytest" in convert_pipfile(PIPFILE, None).requirements


def test_malformed_pipfile_and_lock_are_errors():
    with pytest.raises(tomllib.TOMLDecodeError):
        convert_pipfile("[packages\nsix = '*'\n", None)
    with pytest.raises(json.JSONDecodeError):
        convert_pipfile(None, '{"default": {"six": ')
