"""The build pipeline on a real Docker engine with real repo2docker builds.

Fixture repos are served over HTTP on 127.0.0.1; each image is run and
checked from the inside, the way a user's notebook would see it.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from binderlite.builds.pipeline import build_events, image_for
from binderlite.builds.registry import registry_has_image
from binderlite.links import resolve_link
from tests.helpers.images import build_fixture, build_link, builds_of_image, run_in_image
from tests.helpers.parallel import run_at_once
from tests.helpers.stack import binderlite_cli
from tests.helpers.streams import log_text

pytestmark = pytest.mark.integration


def test_requirements_repo_builds_runs_as_jovyan_and_executes_notebook(settings, git_server, docker_client):
    image, _ = build_fixture(settings, git_server, "requirements")
    out = run_in_image(
        docker_client,
        image,
        "id -u; id -un; python -c 'import six; print(six.__version__)'; jupyterhub-singleuser --version;"
        " jupyter nbconvert --to notebook --execute --stdout index.ipynb 2>/dev/null",
    )
    lines = out.splitlines()
    assert lines[0] == "1000" and lines[1] == "jovyan"
    assert "1.16.0" in lines[2]
    notebook = json.loads(out[out.index("{") :])
    outputs = notebook["cells"][0]["outputs"]
    assert any("six 1.16.0" in "".join(o.get("text", "")) for o in outputs)
    assert any("".join(o.get("data", {}).get("text/plain", "")) == "2" for o in outputs)
    tools = run_in_image(docker_client, image, "pip --version; uv --version; command -v pip")
    assert "/srv/venv/" in tools and "uv " in tools, "pip (in the venv) and uv are there for postBuild and users"


def test_image_is_pushed_to_registry(settings, git_server, docker_client):
    image, _ = build_fixture(settings, git_server, "requirements")
    assert image.startswith(settings.registry + "/")
    assert registry_has_image(settings.registry, image)


def test_apt_postbuild_and_start(settings, git_server, docker_client):
    image, _ = build_fixture(settings, git_server, "apt-postbuild")
    out = run_in_image(
        docker_client, image, "command -v jq; cat ~/postbuild-marker.txt; echo start=$BINDERLITE_START_RAN"
    )
    assert "/usr/bin/jq" in out
    assert "postBuild ran as jovyan" in out
    assert "start=yes" in out


def test_setup_py_package_is_installed(settings, git_server, docker_client):
    image, _ = build_fixture(settings, git_server, "setup-py")
    out = run_in_image(docker_client, image, "cd /tmp && python -c 'import fixturepkg; print(fixturepkg.ANSWER)'")
    assert out.strip().endswith("42")


def test_environment_yml_maps_conda_and_pip(settings, git_server, docker_client):
    image, log = build_fixture(settings, git_server, "environment-yml")
    assert "skipped conda package 'r-base'" in log
    out = run_in_image(docker_client, image, "python -c 'import six, toolz; print(six.__version__, toolz.__version__)'")
    assert "1.16" in out and "0.12.1" in out


def test_pipfile_lock_is_installed(settings, git_server, docker_client):
    image, log = build_fixture(settings, git_server, "pipfile")
    assert "Pipfile.lock" in log
    out = run_in_image(docker_client, image, "python -c 'import six; print(six.__version__)'")
    assert "1.16.0" in out


def test_runtime_txt_unavailable_python_says_so_and_uses_the_nearest(settings, git_server, docker_client):
    image, log = build_fixture(settings, git_server, "runtime-txt")
    assert "runtime.txt asks for Python 3.12, which this machine does not have" in log
    assert "using the nearest, Python 3.11" in log
    out = run_in_image(docker_client, image, "python --version")
    assert "Python 3.11" in out


def test_dockerfile_is_passed_through(settings, git_server, docker_client):
    image, _ = build_fixture(settings, git_server, "dockerfile")
    out = run_in_image(docker_client, image, "cat /srv/marker.txt; id -u")
    assert "dockerfile-ok" in out and "1000" in out


def test_binder_folder_takes_precedence(settings, git_server, docker_client):
    image, _ = build_fixture(settings, git_server, "binder-folder")
    out = run_in_image(
        docker_client, image, "python -c 'import six; print(six.__version__)'; cat ~/binder-postbuild.txt"
    )
    assert "1.16.0" in out and "binder postBuild" in out


def test_failing_build_reports_reason_and_log_tail_then_next_build_works(settings, git_server, docker_client):
    git_server.add_fixture("failing")
    final, _ = build_link(settings, git_server.link("failing"))
    assert final["phase"] == "failed"
    assert "this-package-does-not-exist-binderlite" in final["message"]
    assert "last lines of the build log" in final["message"]
    # nothing left behind blocks the next build
    image, _ = build_fixture(settings, git_server, "requirements")
    assert image


def test_concurrent_requests_share_one_build_and_rebuild_is_reused(settings, git_server, docker_client):
    commit = git_server.add_fixture("requirements", "dedup")
    resolved = resolve_link(git_server.link("dedup"), settings)
    assert resolved.resolved_ref == commit
    results = run_at_once(lambda: [ev for ev in build_events(settings, resolved) if ev is not None], 4, 900)
    assert len(results) == 4 and all(isinstance(events, list) for events in results), results
    assert all(events[-1]["phase"] == "built" for events in results)
    image = image_for(settings, resolved)
    count = builds_of_image(settings.db_path, image)
    assert count == 1, "four concurrent requests must produce exactly one repo2docker run"
    # the second build of the same commit reuses the image
    final, events = build_link(settings, git_server.link("dedup"))
    assert final == {"phase": "built", "imageName": image, "message": "Found built image, launching...\n"}


def test_cli_build_prints_image_last_and_fails_cleanly(settings, git_server, tmp_path):
    git_server.add_fixture("requirements", "cli")
    env = dict(
        os.environ,
        BINDERLITE_STATE_DIR=settings.state_dir,
        BINDERLITE_IMAGE_PREFIX=settings.image_prefix,
        BINDERLITE_ALLOW_LOCAL_REPOS="true",
        BINDERLITE_REGISTRY=settings.registry,
    )
    ok = subprocess.run(
        [*binderlite_cli(), "build", git_server.url("cli"), "--ref", "main"], env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert ok.stdout.strip().splitlines()[-1].startswith(f"{settings.registry}/{settings.image_prefix}")

    bad_input, unavailable = 2, 4  # exit codes by kind of error (binderlite.errors)
    cases = [  # (link, settings changed from env, what the error must say, exit code)
        ("nope/org/repo/main", {}, "Unknown provider", bad_input),
        (git_server.link("does-not-exist"), {}, "Could not", bad_input),
        (git_server.link("cli", "no-such-branch"), {}, "no-such-branch", bad_input),
        (git_server.url("cli"), {"BINDERLITE_ALLOW_LOCAL_REPOS": "false"}, "internal address", bad_input),
        (
            git_server.url("cli"),
            {"BINDERLITE_DOCKER_HOST": "unix:///nonexistent.sock"},
            "Docker daemon not reachable",
            unavailable,
        ),
        (
            git_server.url("cli"),
            {"BINDERLITE_BASE_IMAGE": "bltest-missing-base:none", "BINDERLITE_IMAGE_PREFIX": "bltest-nobase-"},
            "binderlite base-image",
            unavailable,
        ),
    ]
    for link, changed, expected, code in cases:
        bad = subprocess.run([*binderlite_cli(), "build", link], env={**env, **changed}, capture_output=True, text=True)
        assert bad.returncode == code, (link, bad.stderr)
        assert bad.stderr.startswith("Error: ") and expected in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr


def test_proxy_reaches_build_steps_but_never_the_image(settings, git_server, docker_client):
    import dataclasses

    proxy = "http://bltest-proxy.invalid:3128"
    proxied = dataclasses.replace(settings, https_proxy=proxy, http_proxy=proxy, no_proxy="*")
    git_server.add_fixture("proxy-check")
    final, events = build_link(proxied, git_server.link("proxy-check"))
    log = log_text(events)
    assert final["phase"] == "built", log[-3000:]
    assert f"build step sees HTTPS_PROXY={proxy} NO_PROXY=*" in log
    image = docker_client.images.get(final["imageName"])
    assert "bltest-proxy.invalid" not in json.dumps(image.attrs["Config"])
    assert all("bltest-proxy.invalid" not in json.dumps(layer) for layer in image.history())


def test_base_image_is_loaded_from_a_tarball_for_offline_installs(settings, docker_client, tmp_path):
    import dataclasses

    from binderlite.builds.baseimage import ensure_base_image

    name = "bltest-baseload:1"
    docker_client.images.get(settings.base_image).tag(name)
    tarball = tmp_path / "base.tar"
    with open(tarball, "wb") as fh:
        for chunk in docker_client.api.get_image(name):
            fh.write(chunk)
    docker_client.images.remove(name)
    offline = dataclasses.replace(settings, base_image=name, base_image_tarball=str(tarball))
    assert ensure_base_image(offline, log=lambda msg: None) == "loaded"
    assert docker_client.images.get(name)
    assert ensure_base_image(offline, log=lambda msg: None) == "present"
