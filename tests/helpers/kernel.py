"""A kernel on a running Jupyter server, driven over the Jupyter Server REST API and its websocket."""

from __future__ import annotations

import json
import uuid

import requests
import websocket


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


def execute_request(code: str) -> dict:
    """A Jupyter ``execute_request`` message on the shell channel."""
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "username": "bltest",
            "session": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "channel": "shell",
        "buffers": [],
    }


def start_kernel(url: str, token: str) -> str:
    """Start a kernel on the server at ``url`` (ending in ``/``); return its id."""
    resp = requests.post(f"{url}api/kernels", headers=_headers(token), json={}, timeout=60)
    resp.raise_for_status()
    return resp.json()["id"]


def _channels(url: str, token: str, kernel_id: str, timeout: float) -> websocket.WebSocket:
    ws_url = url.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + f"api/kernels/{kernel_id}/channels"
    return websocket.create_connection(ws_url, header=[f"Authorization: token {token}"], timeout=timeout)


def run_code(url: str, token: str, code: str, timeout: float = 60) -> str:
    """Start a kernel, run ``code``, return its result's ``text/plain``; the kernel is deleted afterwards."""
    kernel_id = start_kernel(url, token)
    ws = _channels(url, token, kernel_id, timeout)
    try:
        request = execute_request(code)
        ws.send(json.dumps(request))
        while True:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != request["header"]["msg_id"]:
                continue
            if msg["msg_type"] == "execute_result":
                return msg["content"]["data"]["text/plain"]
            if msg["msg_type"] == "error":
                raise AssertionError(f"kernel error: {msg['content']}")
    finally:
        ws.close()
        requests.delete(f"{url}api/kernels/{kernel_id}", headers=_headers(token), timeout=30)


def start_busy_cell(url: str, token: str, seconds: int) -> None:
    """Start a kernel and send a cell that sleeps ``seconds`` without waiting for it (no browser attached)."""
    kernel_id = start_kernel(url, token)
    ws = _channels(url, token, kernel_id, timeout=30)
    try:
        ws.send(json.dumps(execute_request(f"import time; time.sleep({seconds})")))
    finally:
        ws.close()
