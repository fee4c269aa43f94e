"""Launch-time benchmark: a Binder launch of a built image against a bare ``docker run``.

Run from the repository root::

    /opt/binderlite/venv/bin/python -m benchmarks.launch [--launches 10] [--concurrent 20]

It starts the real stack (registry, configurable-http-proxy, JupyterHub,
the web app under gunicorn) on benchmark ports with a temporary state dir,
builds a small requirements.txt repository once, then measures:

- **binderlite**: from ``GET /build/git/<url>/<ref>`` (event stream) until a
  kernel started with the ``ready`` event's URL and token has executed ``1+1``;
- **floor**, in the same run: ``docker run`` of the same image with
  ``jupyter server`` until its API answers and a kernel has executed ``1+1``;
- **concurrent**: N simultaneous launches through ``/build``, each ending in
  ``1+1``; success count (first try) and p95.

It prints numbers, never pass/fail. Containers and images are ``bltest-bench-…``
or labelled with the benchmark's state dir, and are removed at the end.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import secrets
import shutil
import statistics
import sys
import time

import docker
import requests

from binderlite.services import table
from binderlite.settings import Settings
from tests.helpers.containers import remove_image
from tests.helpers.gitserver import GitServer
from tests.helpers.kernel import run_code
from tests.helpers.net import free_port, wait_for_http
from tests.helpers.parallel import run_at_once
from tests.helpers.stack import delete_hub_users, running_stack, service_state_dir
from tests.helpers.streams import FINAL_PHASES, STREAM_HEADERS, final_event, stream_events

PREFIX = "bltest-bench-"
PORTS = {"proxy_port": 19740, "proxy_api_port": 19741, "hub_port": 19781, "web_port": 19585}
TARGET = 1.3


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def timed_events(url: str) -> list[tuple[float, dict]]:
    """The stream's events until ready/failed, each with the seconds since the request when it arrived."""
    start, events = time.monotonic(), []
    with requests.get(url, headers=STREAM_HEADERS, stream=True, timeout=(5, 300)) as response:
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                events.append((time.monotonic() - start, json.loads(line[len("data: ") :])))
                if events[-1][1].get("phase") in FINAL_PHASES:
                    break
    return events


def binder_launch(web: str, link: str, steps: list | None = None) -> tuple[float, dict]:
    """Seconds from GET /build to a kernel's ``2``; and the ready event. ``steps`` gets each event's time."""
    start = time.monotonic()
    events = timed_events(f"{web}/build/{link}")
    ready = final_event([event for _, event in events])
    if ready.get("phase") != "ready":
        raise RuntimeError(ready.get("message", "launch failed"))
    result = run_code(ready["url"], ready["token"], "1+1")
    if result != "2":
        raise RuntimeError(f"kernel answered {result!r}")
    seconds = time.monotonic() - start
    if steps is not None:
        steps.append([(t, f"{e.get('phase')}: {e.get('message', '').strip()[:40]}") for t, e in events])
        steps[-1].append((seconds, "kernel: 1+1 = 2"))
    return seconds, ready


def print_steps(steps: list[list[tuple[float, str]]]) -> None:
    """Median arrival time of each event, over the launches whose events came in the same order."""
    shapes = collections.Counter(tuple(label.split(":")[0] for _, label in launch) for launch in steps)
    shape = shapes.most_common(1)[0][0]
    same = [launch for launch in steps if tuple(label.split(":")[0] for _, label in launch) == shape]
    print(f"where a launch spends its time (median of {len(same)} launches with the same events) [s]:")
    for index, (_, label) in enumerate(same[0]):
        print(f"  {statistics.median(launch[index][0] for launch in same):6.2f}  {label}")


def floor_launch(client: docker.DockerClient, image: str) -> float:
    """Seconds from ``docker run`` to a kernel's ``2`` on a bare jupyter server."""
    token, port = secrets.token_hex(16), free_port()
    start = time.monotonic()
    container = client.containers.run(
        image,
        ["jupyter", "server", "--ip=0.0.0.0", "--port=8888", f"--IdentityProvider.token={token}"],
        name=f"{PREFIX}floor-{secrets.token_hex(3)}",
        ports={"8888/tcp": ("127.0.0.1", port)},
        detach=True,
        user="1000",
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        if not wait_for_http(f"{url}api", timeout=120, headers={"Authorization": f"token {token}"}, interval=0.05):
            raise RuntimeError("floor server did not answer in 120 s")
        if run_code(url, token, "1+1") != "2":
            raise RuntimeError("floor kernel did not answer 2")
        return time.monotonic() - start
    finally:
        container.remove(force=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--launches", type=int, default=10, help="sequential launches (and floor runs)")
    parser.add_argument("--concurrent", type=int, default=20, help="simultaneous launches")
    args = parser.parse_args(argv)
    client = docker.from_env()
    tmp = service_state_dir("bltest-bench-launch-")  # the proxy runs as the service user: it enters tmp/state
    settings = Settings(
        state_dir=str(tmp / "state"),
        image_prefix=PREFIX,
        allow_local_repos=True,
        registry="",
        total_quota=0,
        binder_launch_host=f"http://127.0.0.1:{PORTS['web_port']}/",
        **PORTS,
    )
    settings.ensure_dirs()
    git = GitServer(tmp / "git")
    stack = table.core_services(settings) + [table.web_service(settings)]
    image = None
    try:
        with running_stack(settings, stack, client, container_wait=60):
            web = f"http://127.0.0.1:{settings.web_port}"
            git.add_fixture("requirements", "bench")
            link = git.link("bench")
            built = final_event(stream_events(f"{web}/build/{link}?build_only=true"))
            if built.get("phase") != "ready":
                print("build failed:", built.get("message"))
                return 1
            image = built["imageName"]
            floor_launch(client, image)  # warm the page cache for both sides
            binder, floor, steps = [], [], []
            for _ in range(args.launches):
                floor.append(floor_launch(client, image))
                seconds, _ = binder_launch(web, link, steps)
                binder.append(seconds)
                delete_hub_users(settings)
            started = time.monotonic()
            # a failed launch is a data point
            results = run_at_once(lambda: binder_launch(web, link)[0], args.concurrent, timeout=900)
            wall = time.monotonic() - started
            ok = [r for r in results if isinstance(r, float)]
            failures = [r for r in results if not isinstance(r, float)]
            print(f"launch benchmark — {time.strftime('%Y-%m-%d %H:%M')} — {os.cpu_count()} CPUs — image {image}")
            print(f"{'measurement':44} {'binderlite':>10} {'floor':>8} {'ratio':>7}   target")
            print("-" * 90)
            for label, pct in (("p50", 50), ("p95", 95)):
                b, f = percentile(binder, pct), percentile(floor, pct)
                target = f"≤ {TARGET}× floor ({'met' if b <= TARGET * f else 'missed'})" if pct == 50 else ""
                print(
                    f"{f'launch to 1+1, {label} of {len(binder)} [s]':44} {b:10.2f} {f:8.2f} {b / f:6.2f}×   {target}"
                )
            print(f"{'launch to 1+1, mean [s]':44} {statistics.mean(binder):10.2f} {statistics.mean(floor):8.2f}")
            p95 = f"{percentile(ok, 95):.1f} s" if ok else "n/a"
            print(f"concurrent: {len(ok)}/{args.concurrent} reached 1+1 on first try; p95 {p95}; wall {wall:.1f} s")
            print_steps(steps)
            for exc in failures[:5]:
                print(f"  failed: {exc}")
            return 0
    finally:
        for container in client.containers.list(all=True, filters={"name": f"{PREFIX}floor"}):
            container.remove(force=True)
        if image:
            remove_image(client, image)
        git.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
