"""Attacks through what a link makes binderlite fetch, performed on the real build pipeline."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from binderlite.builds.pipeline import build_events
from binderlite.links import parse_link

pytestmark = pytest.mark.integration


class FakeCKAN:
    """A CKAN site on 127.0.0.1 whose dataset names its resources with hostile ids."""

    def __init__(self, resource_ids: list[str]):
        self.requests: list[str] = []
        resources = [{"id": rid, "url": f"http://127.0.0.1:{{port}}/files/{i}/"} for i, rid in enumerate(resource_ids)]
        resources.append({"id": "fine", "url": "http://127.0.0.1:{port}/files/requirements.txt"})
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                outer.requests.append(self.path)
                path = urlsplit(self.path).path
                if path.endswith("/status_show"):
                    body = {"success": True, "result": {"ckan_version": "2.10.0"}}
                elif path.endswith("/package_show"):
                    listed = [{**r, "url": r["url"].format(port=outer.port)} for r in resources]
                    body = {"success": True, "result": {"metadata_modified": "2026-01-02T03:04:05.000000",
                                                        "resources": listed}}  # fmt: skip
                elif path.startswith("/files/"):
                    payload = b"six==1.16.0\n" if path.endswith(".txt") else b"* * * * * root touch /pwned\n"
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def link(self, dataset: str) -> str:
        return "ckan/" + quote(f"http://127.0.0.1:{self.port}/dataset/{dataset}", safe="")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def escape_targets(tmp_path):
    """Places outside any checkout that a record tries to write to: one in /tmp, one in a root-owned folder."""
    outside = Path("/opt/bltest-escape")
    outside.mkdir(mode=0o755, exist_ok=True)
    targets = [tmp_path / "pwned-in-tmp", outside / "pwned"]
    yield targets
    shutil.rmtree(outside, ignore_errors=True)


def _build(settings, link: str) -> list[dict]:
    resolved = parse_link(link, settings).resolve()
    return [ev for ev in build_events(settings, resolved) if ev is not None]


def test_ckan_record_with_absolute_resource_ids_writes_nothing_outside(settings, escape_targets):
    ckan = FakeCKAN([str(target) for target in escape_targets])
    try:
        events = _build(settings, ckan.link("hostile"))
    finally:
        ckan.close()
    for target in escape_targets:
        assert not target.exists(), f"a CKAN record wrote {target} on the host"
    assert any(p.startswith("/files/") for p in ckan.requests), "the record's resources were requested"
    final = events[-1]
    assert final["phase"] == "failed", final
    assert "outside the repository" in final["message"], final["message"]
    assert "Traceback" not in "".join(e.get("message", "") for e in events)
