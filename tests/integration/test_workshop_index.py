"""The workshop's package mirror and local index, for real: a mirror collected from a built image,
pypiserver serving it on the builds' network, and new repositories built from it alone."""

from __future__ import annotations

import shutil
import time
import uuid

import pytest
import requests

from binderlite.services import supervisor
from binderlite.services.table import index_service, wants_index
from binderlite.workshop.index import index_url, workshop_index_url
from binderlite.workshop.mirror import collect_mirror, mirror_dir
from tests.helpers.images import build_fixture, build_link, run_in_image
from tests.helpers.stack import service_state_dir
from tests.helpers.streams import log_text

INDEX_PORT = 18587  # not a real install's index port


@pytest.fixture(scope="module")
def workshop(settings, git_server, tmp_path_factory):
    """Settings of a workshop whose mirror holds what ws-first's image holds, its index running."""
    state_dir = service_state_dir("bltest-workshop-")  # the index runs as the service user, who must enter it
    prepared = settings.with_overrides(
        state_dir=str(state_dir), workshop_index="always", workshop_index_port=INDEX_PORT
    )
    service = index_service(prepared)
    try:
        assert workshop_index_url(prepared) is None, "no mirror yet: builds use the package index"
        image, _ = build_fixture(prepared, git_server, "ws-first")
        started = time.monotonic()
        report = collect_mirror(prepared, [image], [], echo=print)
        print(f"mirror collected in {time.monotonic() - started:.0f} s: {report.summary()}")
        again = time.monotonic()
        second = collect_mirror(prepared, [image], [], echo=print)
        print(f"collected again in {time.monotonic() - again:.0f} s (nothing new fetched)")
        assert second.wheels == second.sdists == 0 and second.already == report.wanted
        assert wants_index(prepared)
        supervisor.start(prepared, service)  # as `binderlite up` starts it: as the service user, answering
        yield prepared, report, prepared.logs_dir / "index.log"
    finally:
        supervisor.stop(prepared, service.name)
        shutil.rmtree(state_dir, ignore_errors=True)


def test_the_mirror_holds_the_images_packages_as_wheels_and_the_build_tooling(workshop):
    prepared, report, _ = workshop
    names = {p.name for p in mirror_dir(prepared).iterdir()}
    assert "toolz-1.0.0-py3-none-any.whl" in names
    assert any(n.startswith("jupyterlab-") and n.endswith(".whl") for n in names)
    assert any(n.startswith("setuptools-") for n in names) and any(n.startswith("wheel-") for n in names)
    assert report.missing == [] and report.failed_extras == []
    assert report.wanted > 50 and report.size_bytes > 10_000_000


def test_the_index_answers_on_the_builds_gateway_and_never_redirects(workshop):
    prepared, _, requests_log = workshop
    url = index_url(prepared)
    assert workshop_index_url(prepared) == url
    page = requests.get(f"{url}toolz/", timeout=10)
    assert page.status_code == 200 and "toolz-1.0.0-py3-none-any.whl" in page.text
    absent = requests.get(f"{url}more-itertools/", timeout=10, allow_redirects=False)
    assert absent.status_code == 404, "a package the mirror lacks is a 404, never a redirect to PyPI"


def test_a_new_repository_with_mirrored_packages_builds_from_the_mirror(workshop, git_server, docker_client):
    prepared, _, requests_log = workshop
    git_server.add_fixture("ws-new")
    requirements = git_server.work_tree("ws-new") / "requirements.txt"
    requirements.write_text(requirements.read_text() + f"# run {uuid.uuid4()}: no layer of an earlier run fits\n")
    git_server.commit("ws-new", "a requirements file no build has seen")
    started = time.monotonic()
    final, events = build_link(prepared, git_server.link("ws-new"))
    print(f"ws-new built from the mirror in {time.monotonic() - started:.0f} s")
    assert final["phase"] == "built", log_text(events)[-3000:]
    image = final["imageName"]
    served = requests_log.read_text()
    assert "GET /simple/toolz/" in served and "GET /packages/toolz-1.0.0-py3-none-any.whl" in served, served[-2000:]
    out = run_in_image(docker_client, image, "python check.py")
    assert out.strip().endswith("{'w': 1, 'o': 2, 'r': 1, 'k': 1, 's': 1, 'h': 1, 'p': 1}")


def test_a_package_the_mirror_lacks_fails_at_once_naming_it(workshop, git_server):
    prepared, _, requests_log = workshop
    git_server.add_fixture("ws-missing")
    started = time.monotonic()
    final, events = build_link(prepared, git_server.link("ws-missing"))
    seconds = time.monotonic() - started
    print(f"ws-missing failed after {seconds:.1f} s")
    assert final["phase"] == "failed", log_text(events)[-3000:]
    assert (
        "binderlite: error: more-itertools (from requirements.txt) could not be installed on Python 3.11: "
        in (final["message"])
    )
    assert "the workshop's package mirror lacks it" in final["message"]
    assert "GET /simple/more-itertools/" in requests_log.read_text()
    assert seconds < 120
