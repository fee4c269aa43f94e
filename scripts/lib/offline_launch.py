"""Launch links through binderlite's build API and run code in a kernel; for scripts/check-offline-laptop.sh.

Runs INSIDE the offline machine with binderlite's venv (requests and tornado
come with binderlite), so it needs nothing from any network:

    python offline_launch.py [--base URL] [--code CODE] LINK ...
        each LINK (e.g. git/<url-escaped clone URL>/<ref>): the ``/build/<LINK>``
        event stream to ``ready``, a kernel on the server runs CODE (``1+1``),
        the answer must be ``2``; one line per link with the seconds.
    python offline_launch.py --expect-failure TEXT [--expect-failure TEXT] [--within S] LINK
        the build must fail within S seconds, its messages naming every TEXT.
    python offline_launch.py --burst N [--kernels K] LINK
        N launches of LINK at once (threads): all ``ready`` with no retried
        attempt, K of them run CODE; prints the count, p50, p95 and how many
        servers came from the warm pool.
    python offline_launch.py --wait-pool N --pool-db PATH [--within S]
        until the warm pool (its SQLite table) has N ready servers.

Exit 0 only if everything asked for held.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sqlite3
import sys
import threading
import time
import uuid

import requests
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

BUILD_DEADLINE = 1200
KERNEL_DEADLINE = 120
RETRY = "Launch attempt"  # launch/__init__.py's event when an attempt failed and it tries again
FROM_POOL = "(from the warm pool)"  # launch/__init__.py's ready message for a pooled server


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


def messages(events: list[dict], last: int = 10) -> str:
    lines = "".join(str(e.get("message", "")) for e in events).strip().splitlines()[-last:]
    return "\n  ".join(lines)


def launch(base: str, link: str, code: str = "1+1") -> bool:
    started = time.monotonic()
    events = build_events(base, link)
    final = events[-1] if events else {}
    ready = time.monotonic() - started
    if final.get("phase") != "ready":
        print(f"FAIL {link}: {final.get('phase', 'no events')} after {ready:.1f} s\n  {messages(events)}")
        return False
    answer = asyncio.run(run_code(final["url"], final["token"], code))
    total = time.monotonic() - started
    phases = ",".join(dict.fromkeys(e.get("phase", "") for e in events))
    print(
        f"{'OK' if answer == '2' else 'FAIL'} {link}: ready {ready:.1f} s, {code!r} = {answer} at {total:.1f} s "
        f"({phases})"
    )
    return answer == "2"


def expect_failure(base: str, link: str, texts: list[str], within: float) -> bool:
    """The build of ``link`` fails within ``within`` seconds and its messages name every one of ``texts``."""
    started = time.monotonic()
    events = build_events(base, link, deadline=within + 60)
    seconds = time.monotonic() - started
    final = events[-1] if events else {}
    said = "".join(str(e.get("message", "")) for e in events).lower()
    missing = [t for t in texts if t.lower() not in said]
    ok = final.get("phase") == "failed" and not missing and seconds <= within
    why = f"; not named: {missing}" if missing else ""
    print(f"{'OK' if ok else 'FAIL'} {link}: {final.get('phase', 'no events')} after {seconds:.1f} s{why}")
    print("  " + (str(final.get("message", "")).strip() or messages(events, 3)).replace("\n", "\n  "))
    return ok


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` percentile of ``values`` (nearest rank); 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered), math.ceil(fraction * len(ordered))) - 1)]


def summarize_burst(results: list[dict], wanted: int, min_pooled: int = 0) -> tuple[bool, str]:
    """(all ready on the first try, at least ``min_pooled`` from the pool; a summary line) for the burst."""
    ready = [r for r in results if r.get("phase") == "ready"]
    retried = [r for r in results if r.get("retried")]
    seconds = [r["seconds"] for r in ready]
    pooled = sum(1 for r in ready if r.get("pooled"))
    fast = sum(1 for s in seconds if s < 1)
    line = (
        f"burst: {len(ready)}/{wanted} ready, {len(retried)} retried; p50 {percentile(seconds, 0.5):.1f} s, "
        f"p95 {percentile(seconds, 0.95):.1f} s, max {max(seconds, default=0):.1f} s; "
        f"{pooled} from the warm pool ({fast} ready in < 1 s)"
    )
    return len(ready) == wanted and not retried and pooled >= min_pooled, line


def burst(base: str, link: str, count: int, kernels: int, code: str, min_pooled: int = 0) -> bool:
    """``count`` launches of ``link`` at once: all ready on the first try, ``kernels`` of them answer ``code``."""
    results: list[dict] = [{} for _ in range(count)]
    gate = threading.Barrier(count)

    def one(i: int) -> None:
        gate.wait()
        started = time.monotonic()
        try:
            events = build_events(base, link)
        except Exception as exc:  # one result per launch, whatever went wrong
            results[i] = {"phase": f"{exc.__class__.__name__}: {exc}"}
            return
        final = events[-1] if events else {}
        results[i] = {
            "phase": final.get("phase", "no events"),
            "seconds": time.monotonic() - started,
            "retried": any(RETRY in str(e.get("message", "")) for e in events),
            "pooled": FROM_POOL in str(final.get("message", "")),
            "final": final,
            "events": events,
        }

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ok, line = summarize_burst(results, count, min_pooled)
    print(line)
    for i, result in enumerate(results):
        if result.get("phase") != "ready" or result.get("retried"):
            print(f"FAIL launch {i + 1}: {result.get('phase')}\n  {messages(result.get('events', []), 5)}")
    answered = 0
    for result in [r for r in results if r.get("phase") == "ready"][:kernels]:
        final = result["final"]
        try:
            answer = asyncio.run(run_code(final["url"], final["token"], code))
        except Exception as exc:
            answer = f"{exc.__class__.__name__}: {exc}"
        answered += answer == "2"
        print(f"  {'pooled' if result['pooled'] else 'spawned'} server at {final['url']}: {code!r} = {answer}")
    print(f"burst kernels: {answered}/{kernels} answered 2")
    return ok and answered == kernels


def pool_ready(db: str) -> int:
    """Ready servers in the warm pool's table (0 while it does not exist yet)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM pool WHERE state = 'ready'").fetchone()[0]
    except sqlite3.Error:
        return 0


def wait_pool(db: str, wanted: int, within: float) -> bool:
    started = time.monotonic()
    ready = pool_ready(db)
    while ready < wanted and time.monotonic() - started < within:
        time.sleep(2)
        ready = pool_ready(db)
    ok = ready >= wanted
    print(f"{'OK' if ok else 'FAIL'} warm pool: {ready}/{wanted} ready after {time.monotonic() - started:.1f} s")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="http://127.0.0.1:8585")
    parser.add_argument("--code", default="1+1", help="what the kernel runs; it must answer 2")
    parser.add_argument("--expect-failure", action="append", default=[], metavar="TEXT")
    parser.add_argument("--within", type=float, default=60.0, help="seconds (--expect-failure, --wait-pool)")
    parser.add_argument("--burst", type=int, default=0, metavar="N")
    parser.add_argument("--kernels", type=int, default=3)
    parser.add_argument("--wait-pool", type=int, default=0, metavar="N")
    parser.add_argument("--min-pooled", type=int, default=0, metavar="N", help="--burst: at least N from the pool")
    parser.add_argument("--pool-db", default="/var/lib/binderlite/run/pool.sqlite")
    parser.add_argument("links", nargs="*")
    args = parser.parse_args()
    if args.wait_pool:
        return 0 if wait_pool(args.pool_db, args.wait_pool, args.within) else 1
    if not args.links:
        parser.error("which links?")
    if args.burst:
        return 0 if burst(args.base, args.links[0], args.burst, args.kernels, args.code, args.min_pooled) else 1
    results = []
    for link in args.links:
        try:
            if args.expect_failure:
                results.append(expect_failure(args.base, link, args.expect_failure, args.within))
            else:
                results.append(launch(args.base, link, args.code))
        except Exception as exc:  # one line per link, whatever went wrong
            print(f"FAIL {link}: {exc.__class__.__name__}: {exc}")
            results.append(False)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
