"""A container removed between Docker's list and its inspect must not break the scheduler's jobs.

The engine is faked at the HTTP level: ``/containers/json`` lists two containers, and inspecting
one of them answers 404, as the real engine does when the container was removed in between
(a killed server's ``--rm``, a culler on another process).
"""

from __future__ import annotations

import pytest

from binderlite.scheduler import diskgc, reconcile
from binderlite.settings import Settings
from tests.helpers.jsonhttp import JsonHandler, serve

GONE, PRESENT = "a" * 64, "b" * 64


def _summary(cid: str) -> dict:
    return {
        "Id": cid,
        "Names": [f"/c-{cid[:4]}"],
        "Image": "img",
        "ImageID": "sha256:" + "c" * 64,
        "Labels": {"binderlite.managed": "1"},
        "State": "running",
    }


class _Engine(JsonHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = self.path.split("?")[0]
        if path.endswith("/_ping"):
            self.answer(200, "OK")
        elif path.endswith("/version"):
            self.answer(200, {"ApiVersion": "1.41", "Version": "24.0.0"})
        elif path.endswith("/containers/json"):
            self.answer(200, [_summary(GONE), _summary(PRESENT)])
        elif path.endswith(f"/containers/{GONE}/json"):
            self.answer(404, {"message": f"No such container: {GONE}"})
        elif path.endswith(f"/containers/{PRESENT}/json"):
            attrs = {
                **_summary(PRESENT),
                "Config": {"Labels": {"binderlite.managed": "1"}},
                "State": {"Status": "running"},
                "Image": "sha256:" + "c" * 64,
                "Created": "2026-11-27T00:00:00Z",
            }
            self.answer(200, attrs)
        else:
            self.answer(404, {"message": "not faked"})


@pytest.fixture
def engine_settings(tmp_path):
    server = serve(_Engine)
    try:
        yield Settings(state_dir=str(tmp_path), docker_host=f"tcp://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()


def test_reconcile_lists_the_containers_that_still_exist(engine_settings):
    listed = reconcile._managed_containers(engine_settings)
    assert [c.id for c in listed] == [PRESENT]


def test_image_gc_reads_images_in_use_without_a_lookup_per_container(engine_settings):
    assert diskgc.images_in_use(diskgc.docker_client(engine_settings)) == {"sha256:" + "c" * 64}
