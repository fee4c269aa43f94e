"""The shared stage images: named by everything their content comes from, asked for once per build."""

from __future__ import annotations

import tarfile

import pytest

from binderlite.builds.baseimage import LocalBase
from binderlite.builds.buildpacks import buildpack_classes, prepare_shared_stages
from binderlite.builds.stages import Stage
from binderlite.settings import Settings

BASE = LocalBase("binderlite/base:bookworm", "sha256:base", ("3.11",), "sha256:tool")
BULLSEYE = LocalBase("binderlite/base:bullseye", "sha256:bullseye", ("3.9", "2.7"), "sha256:tool-bullseye")


@pytest.fixture
def files(tmp_path):
    ca, uv = tmp_path / "ca.crt", tmp_path / "uv"
    ca.write_text("CA one")
    uv.write_bytes(b"\x7fELF uv")
    uv.chmod(0o755)
    return {"ca-certificates.crt": str(ca), "uv": str(uv)}


def test_the_key_changes_with_every_input_and_only_with_them(files, tmp_path):
    stage = Stage("tooling", "FROM sha256:base\n", files, {"NB_UID": "1000"})
    assert stage.key == Stage("tooling", "FROM sha256:base\n", dict(files), {"NB_UID": "1000"}).key
    assert stage.image_name == f"binderlite/stage:tooling-{stage.key}"
    assert stage.key != Stage("tooling", "FROM sha256:other\n", files, {"NB_UID": "1000"}).key
    assert stage.key != Stage("tooling", "FROM sha256:base\n", files, {"NB_UID": "1001"}).key
    before = stage.key
    (tmp_path / "ca.crt").write_text("CA two")  # a new CA bundle on the machine: a new stage
    assert Stage("tooling", "FROM sha256:base\n", files, {"NB_UID": "1000"}).key != before


def test_the_context_holds_the_dockerfile_and_the_files_executable_where_they_were(files):
    stage = Stage("tooling", "FROM sha256:base\n", files)
    with tarfile.open(fileobj=stage.context()) as archive:
        members = {m.name: m for m in archive.getmembers()}
        assert archive.extractfile("Dockerfile").read() == b"FROM sha256:base\n"
        assert archive.extractfile("ca-certificates.crt").read() == b"CA one"
    assert members["uv"].mode & 0o111 and not members["ca-certificates.crt"].mode & 0o111


def pack_for(tmp_path, monkeypatch, bases, files):
    repo = tmp_path / "repo"
    repo.mkdir(parents=True)
    for name, text in files.items():
        (repo / name).write_text(text)
    monkeypatch.chdir(repo)
    settings = Settings(state_dir=str(tmp_path / "state"))
    cls = next(c for c in buildpack_classes(settings) if c.__name__ == "BinderlitePythonBuildPack")
    cls.options = type(cls.options)(**{**cls.options.__dict__, "base_images": bases})
    return cls(base_image="binderlite/base:bookworm")


def test_a_build_starts_from_its_shared_stages_and_runs_only_its_own_steps(tmp_path, monkeypatch, stages):
    pack = pack_for(tmp_path, monkeypatch, (BASE,), {"requirements.txt": "six==1.16.0\n"})
    dockerfile = pack.render({"NB_USER": "jovyan", "NB_UID": "1000"})
    pack.render({"NB_USER": "jovyan", "NB_UID": "1000"})  # repo2docker renders twice: the stages are asked for once
    assert [s.kind for s in stages.asked] == ["tooling", "packages"]
    tooling, packages = stages.asked
    assert "FROM sha256:base\n" in tooling.dockerfile and "uv venv" in tooling.dockerfile
    assert f"FROM sha256:tooling-stage-{tooling.key} AS tooling" in packages.dockerfile
    assert "FROM sha256:tool\n" in packages.dockerfile and "envtool.py snapshot" in packages.dockerfile
    assert f"FROM sha256:packages-stage-{packages.key} AS packages" in dockerfile
    assert f"FROM sha256:tooling-stage-{tooling.key}\n" in dockerfile
    assert "uv venv --quiet --python /usr/bin/python3.11 ${VENV_DIR}" not in dockerfile, "no tooling step of its own"
    assert "-r 'requirements.txt'" in dockerfile


def test_a_python_2_kernel_gets_its_own_stages(tmp_path, monkeypatch, stages):
    pack_for(tmp_path / "a", monkeypatch, (BASE, BULLSEYE), {"runtime.txt": "python-3.9\n"}).render({})
    pack_for(tmp_path / "b", monkeypatch, (BASE, BULLSEYE), {"runtime.txt": "python-2.7\n"}).render({})
    py39, py2 = stages.asked[0], stages.asked[2]
    assert "FROM sha256:bullseye\n" in py39.dockerfile and "FROM sha256:bullseye\n" in py2.dockerfile
    assert py39.key != py2.key, "the kernel's prefix is in the environment the stage sets"
    assert "KERNEL_PYTHON_PREFIX=/srv/kernel" in py2.dockerfile


def test_base_image_makes_each_bases_own_stages_and_names_them(tmp_path, stages):
    settings = Settings(state_dir=str(tmp_path / "state"))
    names = prepare_shared_stages(settings, [BASE, BULLSEYE], say=lambda text: None)
    assert names == [s.image_name for s in stages.asked] and len(names) == 4
    assert [s.kind for s in stages.asked] == ["tooling", "packages", "tooling", "packages"]
    assert "FROM sha256:base\n" in stages.asked[0].dockerfile and "python3.11" in stages.asked[0].dockerfile
    assert "FROM sha256:bullseye\n" in stages.asked[2].dockerfile and "python3.9" in stages.asked[2].dockerfile
    assert "KERNEL_PYTHON_PREFIX=/srv/venv" in stages.asked[2].dockerfile, "no Python 2 kernel ahead"
