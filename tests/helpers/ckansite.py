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
