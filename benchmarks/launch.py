"""Launch-time benchmark: a Binder launch of a built image against a bare ``docker run``.

Run from the repository root::

    /opt/binderlite/venv/bin/python -m benchmarks.launch [--launches 10] [--concurrent 20]
    /opt/binderlite/venv/bin/python -m benchmarks.launch --warm-pool 10 [--launches 10] [--burst 30]

It starts the real stack (registry, configurable-http-proxy, JupyterHub,
the web app under gunicorn) on benchmark ports with a temporary state dir,
builds a small requirements.txt repository once, then measures:

- **binderlite**: from ``GET /build/git/<url>/<ref>`` (event stream) until a
  kernel started with the ``ready`` event's URL and token has executed ``1+1``;
- **floor**, in the same run: ``docker run`` of the same image with
  ``jupyter server`` until its API answers and a kernel has executed ``1+1``;
- **concurrent**: N simultaneous launches through ``/build``, each ending in
  ``1+1``; success count (first try) and p95.

With ``--warm-pool N`` the scheduler (with its warm pool job) runs too, keeping
N servers of the image ready, and the launches are served from the pool:

- **from the pool**: each sequential launch waits until a pooled server is
  ready, then runs as above (``ready`` event, then ``1+1``); the floor is
  measured in the same run, as above;
- **classroom burst**: with the pool full, ``--burst`` (30) simultaneous
  launches, each ending in ``1+1``: success count (first try), p50, p95 (the
  first N take pooled servers, the others spawn while the pool refills).

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

from binderlite.hub.api import HubClient
from binderlite.launch import pool
from binderlite.services import supervisor, table
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
POOL_TARGET = 1.0  # seconds: a launch from the warm pool, to its ready event


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


def pool_ready(settings: Settings, image: str) -> int:
    return sum(1 for e in pool.entries(settings) if e.state == pool.READY and e.image == image)


def wait_for_pool(settings: Settings, image: str, count: int, timeout: float = 600) -> float:
    """Seconds until ``count`` pooled servers of ``image`` are ready (RuntimeError after ``timeout``)."""
    start = time.monotonic()
    while pool_ready(settings, image) < count:
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"the warm pool did not reach {count} ready servers in {timeout:.0f} s")
        time.sleep(0.2)
    return time.monotonic() - start


def warm_pool_run(settings: Settings, client, web: str, link: str, image: str, args) -> int:
    """Launches from a warm pool of ``args.warm_pool``, the floor in the same run, then the classroom burst."""
    pooled = settings.with_overrides(
        warm_pool_size=args.warm_pool, warm_pool_images=image, cull_every=3600, reconcile_every=3600, gc_every=3600
    )
    supervisor.start(pooled, table.scheduler_service(pooled))
    try:
        fill = wait_for_pool(pooled, image, args.warm_pool)
        hub = HubClient(settings)
        to_ready, to_kernel, floor, steps = [], [], [], []
        for _ in range(args.launches):
            floor.append(floor_launch(client, image))
            wait_for_pool(pooled, image, 1)
            seconds, ready = binder_launch(web, link, steps)
            to_kernel.append(seconds)
            to_ready.append(next(t for t, label in steps[-1] if label.startswith("ready")))
            hub.delete_user(ready["url"].rstrip("/").rsplit("/", 1)[-1])
        refill = wait_for_pool(pooled, image, args.warm_pool)
        started = time.monotonic()
        results = run_at_once(lambda: binder_launch(web, link)[0], args.burst, timeout=900)
        wall = time.monotonic() - started
    finally:
        supervisor.stop(pooled, "scheduler")
    ok = [r for r in results if isinstance(r, float)]
    print(f"warm pool benchmark — {time.strftime('%Y-%m-%d %H:%M')} — {os.cpu_count()} CPUs — image {image}")
    print(f"pool of {args.warm_pool}: filled in {fill:.1f} s (refilled after the launches in {refill:.1f} s)")
    print(f"{'measurement':44} {'pool':>10} {'floor':>8} {'ratio':>7}   target")
    print("-" * 90)
    for label, pct in (("p50", 50), ("p95", 95)):
        r, k, f = percentile(to_ready, pct), percentile(to_kernel, pct), percentile(floor, pct)
        target = f"< {POOL_TARGET:g} s ({'met' if r < POOL_TARGET else 'missed'})" if pct == 50 else ""
        print(f"{f'launch to ready, {label} of {len(to_ready)} [s]':44} {r:10.2f} {f:8.2f} {r / f:6.2f}×   {target}")
        target = f"< floor ({'met' if k < f else 'missed'})" if pct == 50 else ""
        print(f"{f'launch to 1+1, {label} of {len(to_kernel)} [s]':44} {k:10.2f} {f:8.2f} {k / f:6.2f}×   {target}")
    p50 = f"{percentile(ok, 50):.1f} s" if ok else "n/a"
    p95 = f"{percentile(ok, 95):.1f} s" if ok else "n/a"
    print(
        f"classroom burst: {len(ok)}/{args.burst} reached 1+1 on first try with a pool of {args.warm_pool}; "
        f"p50 {p50}, p95 {p95}; wall {wall:.1f} s"
    )
    print_steps(steps)
    for exc in [r for r in results if not isinstance(r, float)][:5]:
        print(f"  failed: {exc}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--launches", type=int, default=10, help="sequential launches (and floor runs)")
    parser.add_argument("--concurrent", type=int, default=20, help="simultaneous launches")
    parser.add_argument("--warm-pool", type=int, default=0, metavar="N", help="serve launches from a pool of N")
    parser.add_argument("--burst", type=int, default=30, help="simultaneous launches with the warm pool")
    args = parser.parse_args(argv)
    client = docker.from_env()
    tmp = service_state_dir("bltest-bench-launch-")  # the proxy runs as the service user: it enters tmp/state
    settings = Settings(
        state_dir=str(tmp / "state"),
        image_prefix=PREFIX,
        allow_local_repos=True,
        registry="",
        total_quota=0,
        launch_rate_limit=0,  # every launch comes from 127.0.0.1
        memory_limit="1G" if args.warm_pool else "2G",  # the pool's memory bound must allow N on a small machine
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
            if args.warm_pool:
                return warm_pool_run(settings, client, web, link, image, args)
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
