"""A CKAN-shaped site on 127.0.0.1 for the record tests: a subclass says what each GET answers."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, urlsplit


class CKANSite:
    """``answer(path, headers)`` → (status, body): a dict is sent as JSON, bytes as they are."""

    def __init__(self):
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                outer.requests.append(self.path)
                status, body = outer.answer(urlsplit(self.path).path, dict(self.headers))
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header(
                    "Content-Type", "application/octet-stream" if isinstance(body, bytes) else "application/json"
                )
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, dict | bytes]:
        raise NotImplementedError

    def link(self, dataset: str) -> str:
        return "ckan/" + quote(f"http://127.0.0.1:{self.port}/dataset/{dataset}", safe="")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class PrivateCKAN(CKANSite):
    """A private dataset: package_show and its one file answer 404 without ``Authorization: <token>``."""

    def __init__(self, token: str, content: bytes):
        self.token, self.content = token, content
        self.token_sent: list[tuple[str, bool]] = []  # (path, whether the token came with it)
        super().__init__()

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, dict | bytes]:
        self.token_sent.append((path, any(self.token in value for value in headers.values())))
        if path.endswith("/status_show"):
            return 200, {"success": True, "result": {"ckan_version": "2.10.0"}}
        if headers.get("Authorization") != self.token:
            return 404, {"success": False, "error": {"message": "Not found"}}
        if path.endswith("/package_show"):
            resources = [{"id": "r1", "url": f"http://127.0.0.1:{self.port}/files/requirements.txt"}]
            return 200, {"success": True, "result": {"metadata_modified": "2026-01-02T03:04:05.000000",
                                                     "resources": resources}}  # fmt: skip
        if path == "/files/requirements.txt":
            return 200, self.content
        return 404, {}
