"""Old postBuild commands (`jupyter serverextension`, `jupyter nbextension`) in images with Notebook 7."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from binderlite.builds.baseimage import LocalBase
from binderlite.builds.buildpacks import buildpack_classes, jupyter_legacy
from binderlite.errors import ConfigError
from binderlite.settings import Settings

SHIM = jupyter_legacy.__file__


@pytest.fixture
def venv_bin(tmp_path):
    """A bin folder with the shims and a `jupyter` that prints the arguments it was given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "jupyter").write_text('#!/bin/sh\necho "jupyter $*"\n')
    (bin_dir / "jupyter").chmod(0o755)
    for command in ("serverextension", "nbextension"):
        (bin_dir / f"jupyter-{command}").write_text(f"#!{sys.executable}\n" + open(SHIM).read())
        (bin_dir / f"jupyter-{command}").chmod(0o755)
    return bin_dir


def test_serverextension_runs_jupyter_servers_own_command(venv_bin):
    out = subprocess.run(
        [venv_bin / "jupyter-serverextension", "enable", "--py", "nbgitpuller", "--sys-prefix"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "jupyter server extension enable nbgitpuller --sys-prefix"


def test_serverextension_enable_names_an_importable_module_in_the_config_first(venv_bin, tmp_path):
    """Jupyter Server toggles only extensions its config names; the old command enabled any importable module."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "movedextension.py").write_text("def load_jupyter_server_extension(app):\n    pass\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path / "site"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")}
    out = subprocess.run(
        [venv_bin / "jupyter-serverextension", "enable", "--user", "--py", "movedextension", "notinstalled"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert out.stdout.strip() == "jupyter server extension enable --user movedextension notinstalled"
    folder = tmp_path / "cfg" / "jupyter_server_config.d"
    assert [p.name for p in folder.iterdir()] == ["00-binderlite-movedextension.json"], "only what imports"
    config = json.loads((folder / "00-binderlite-movedextension.json").read_text())
    assert config == {"ServerApp": {"jpserver_extensions": {"movedextension": True}}}
    subprocess.run([venv_bin / "jupyter-serverextension", "disable", "--user", "movedextension"], env=env, check=True)
    config = json.loads((folder / "00-binderlite-movedextension.json").read_text())
    assert config["ServerApp"]["jpserver_extensions"]["movedextension"] is False


def test_nbextension_is_skipped_with_a_message_and_succeeds(venv_bin):
    out = subprocess.run(
        [venv_bin / "jupyter-nbextension", "enable", "--py", "widgetsnbextension", "--sys-prefix"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0
    assert "`jupyter nbextension enable --py widgetsnbextension --sys-prefix` skipped" in out.stderr
    assert "do not run in JupyterLab 4 or Notebook 7" in out.stderr


def test_every_image_gets_the_default_environment_and_the_shims(tmp_path, monkeypatch, stages):
    monkeypatch.chdir(tmp_path)
    settings = Settings(state_dir=tmp_path / "state")
    base = LocalBase("binderlite/base:bookworm", "sha256:base", ("3.11",), "sha256:tool")
    pack_class = next(c for c in buildpack_classes(settings) if c.__name__ == "BinderlitePythonBuildPack")
    pack_class.options = type(pack_class.options)(**{**pack_class.options.__dict__, "base_images": (base,)})
    pack_class(base_image="binderlite/base:bookworm").render({"NB_USER": "jovyan", "NB_UID": "1000"})
    tooling = stages.dockerfile("tooling")
    for spec in ("'notebook>=7,<8'", "'ipywidgets>=8,<9'", "'jupyter-resource-usage>=1,<2'"):
        assert spec in tooling
    assert "install -m 0755 /usr/local/lib/binderlite/jupyter_legacy.py ${VENV_DIR}/bin/jupyter-$command" in tooling


@pytest.mark.parametrize("value", ["notebook>=7,<8 ipywidgets", "", "a==1 b[extra]>=2"])
def test_default_environment_takes_requirements(tmp_path, value):
    assert Settings(state_dir=tmp_path, default_environment=value).default_environment == value


@pytest.mark.parametrize("value", ["notebook>=7; rm -rf /", "$(id)", "notebook>>7"])
def test_default_environment_refuses_what_is_not_a_requirement(tmp_path, value):
    with pytest.raises(ConfigError, match="default_environment"):
        Settings(state_dir=tmp_path, default_environment=value)
