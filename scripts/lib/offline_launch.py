"""Launch links through binderlite's build API and run 1+1 in a kernel; for scripts/check-offline-laptop.sh.

Runs INSIDE the offline machine with binderlite's venv (requests and tornado
come with binderlite), so it needs nothing from any network:

    /opt/binderlite/venv/bin/python offline_launch.py [--base URL] LINK ...

For each LINK (e.g. git/<url-escaped clone URL>/<ref>) it reads the
``/build/<LINK>`` event stream to ``ready`` (or ``failed``), starts a kernel
on the server, runs ``1+1`` and checks the answer is ``2``. Prints one line
per link with the seconds to ready and to the kernel's answer; exit 0 only
if every link answered 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid

import requests
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

BUILD_DEADLINE = 1200
KERNEL_DEADLINE = 120


def build_events(base: str, link: str, deadline: float = BUILD_DEADLINE) -> list[dict]:
    """The build API's events for ``link``, up to and including ``ready`` or ``failed``."""
    events = []
    headers = {"Accept": "text/event-stream"}
    with requests.get(f"{base}/build/{link}", headers=headers, stream=True, timeout=(10, 60)) as response:
        if response.status_code != 200:
            raise RuntimeError(f"/build/ answered {response.status_code}: {response.text[:300]}")
        end = time.monotonic() + deadline
        for line in response.iter_lines(decode_unicode=True):
            if time.monotonic() > end:
                raise TimeoutError(f"no ready within {deadline} s")
            if not line or not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            events.append(event)
            if event.get("phase") in ("ready", "failed"):
                break
    return events


def execute_request(code: str) -> dict:
    header = {"msg_id": uuid.uuid4().hex, "username": "check", "session": uuid.uuid4().hex}
    header.update(msg_type="execute_request", version="5.3")
    content = {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False}
    return {"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell"}


async def run_code(url: str, token: str, code: str) -> str:
    """Start a kernel on the server at ``url``, run ``code`` and return its ``text/plain`` result."""
    headers = {"Authorization": f"token {token}"}
    started = requests.post(f"{url}api/kernels", headers=headers, json={}, timeout=60)
    started.raise_for_status()
    kernel = started.json()["id"]
    ws_url = url.replace("http://", "ws://", 1) + f"api/kernels/{kernel}/channels"
    ws = await websocket_connect(HTTPRequest(ws_url, headers=headers, request_timeout=KERNEL_DEADLINE))
    try:
        request = execute_request(code)
        await ws.write_message(json.dumps(request))
        while True:
            raw = await asyncio.wait_for(ws.read_message(), KERNEL_DEADLINE)
            if raw is None:
                raise ConnectionError("the kernel's websocket closed")
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != request["header"]["msg_id"]:
                continue
            if msg["msg_type"] == "execute_result":
                return msg["content"]["data"]["text/plain"]
            if msg["msg_type"] == "error":
                raise RuntimeError(f"kernel error: {msg['content'].get('evalue')}")
    finally:
        ws.close()
        requests.delete(f"{url}api/kernels/{kernel}", headers=headers, timeout=30)


def launch(base: str, link: str) -> bool:
    started = time.monotonic()
    events = build_events(base, link)
    final = events[-1] if events else {}
    ready = time.monotonic() - started
    if final.get("phase") != "ready":
        messages = "".join(str(e.get("message", "")) for e in events).strip().splitlines()[-10:]
        print(f"FAIL {link}: {final.get('phase', 'no events')} after {ready:.1f} s\n  " + "\n  ".join(messages))
        return False
    answer = asyncio.run(run_code(final["url"], final["token"], "1+1"))
    total = time.monotonic() - started
    phases = ",".join(dict.fromkeys(e.get("phase", "") for e in events))
    print(
        f"{'OK' if answer == '2' else 'FAIL'} {link}: ready {ready:.1f} s, 1+1 = {answer} at {total:.1f} s ({phases})"
    )
    return answer == "2"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="http://127.0.0.1:8585")
    parser.add_argument("links", nargs="+")
    args = parser.parse_args()
    results = []
    for link in args.links:
        try:
            results.append(launch(args.base, link))
        except Exception as exc:  # one line per link, whatever went wrong
            print(f"FAIL {link}: {exc.__class__.__name__}: {exc}")
            results.append(False)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
