"""The warm pool without a hub: one claim per server across threads and processes, sizes, the job's plan."""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from binderlite.launch import pool, quotas
from binderlite.links.model import ResolvedRepo
from binderlite.scheduler.pool import CREATE_GRACE, plan
from binderlite.settings import Settings
from binderlite.workshop import warmpool
from binderlite.workshop.manifest import Manifest, PreparedLink, load_manifest, save_manifest

GIB = 1024**3
IMAGE = "bltest-pool:1"


def settings_at(tmp_path, **overrides) -> Settings:
    return Settings(state_dir=str(tmp_path), **overrides)


def ready_server(settings: Settings, user: str, image: str = IMAGE, image_id: str = "sha256:a") -> None:
    pool.add(settings, user, image, image_id)
    assert pool.mark_ready(settings, user)


# ---- claim: one launch per server --------------------------------------------------------
def test_two_threads_claiming_one_ready_server_get_it_once(tmp_path):
    settings = settings_at(tmp_path)
    ready_server(settings, "pool-a")
    barrier, results = threading.Barrier(8), []

    def claim():
        barrier.wait()
        results.append(pool.claim(settings, IMAGE))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [r for r in results if r is not None]
    assert [c.user for c in claimed] == ["pool-a"] and len(results) == 8
    assert claimed[0].state == pool.CLAIMED and claimed[0].claimed is not None


def _claim_in_process(state_dir: str, start: float, out) -> None:
    time.sleep(max(0.0, start - time.time()))
    found = pool.claim(Settings(state_dir=state_dir), IMAGE)
    out.put(found.user if found else None)


def test_processes_claiming_three_servers_get_each_once(tmp_path):
    settings = settings_at(tmp_path)
    for name in ("pool-a", "pool-b", "pool-c"):
        ready_server(settings, name)
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    start = time.time() + 2.0
    workers = [context.Process(target=_claim_in_process, args=(str(tmp_path), start, out)) for _ in range(6)]
    for worker in workers:
        worker.start()
    got = [out.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert sorted(u for u in got if u) == ["pool-a", "pool-b", "pool-c"]
    assert got.count(None) == 3


def test_claim_takes_only_ready_servers_of_exactly_that_image_and_id(tmp_path):
    settings = settings_at(tmp_path)
    assert pool.claim(settings, IMAGE) is None  # no pool here at all
    pool.add(settings, "pool-starting", IMAGE, "sha256:a")
    ready_server(settings, "pool-other", image="bltest-pool:2")
    ready_server(settings, "pool-stale", image_id="sha256:old")
    assert pool.claim(settings, IMAGE, "sha256:a") is None
    assert pool.claim(settings, IMAGE, "sha256:old").user == "pool-stale"
    assert pool.unclaimed_users(settings) == {"pool-starting", "pool-other"}


def test_a_claimed_server_cannot_be_drained(tmp_path):
    settings = settings_at(tmp_path)
    ready_server(settings, "pool-a")
    ready_server(settings, "pool-b")
    assert pool.claim(settings, IMAGE).user == "pool-a"
    assert not pool.take_for_draining(settings, "pool-a")
    assert pool.take_for_draining(settings, "pool-b")
    assert pool.claim(settings, IMAGE) is None, "a draining server is not handed out"


# ---- sizes ---------------------------------------------------------------------------------
def test_pool_size_from_the_setting_bounded_by_memory_and_total_quota(tmp_path):
    explicit = settings_at(tmp_path, warm_pool_size=10, memory_limit="1G", build_memory_limit="4G", total_quota=64)
    assert warmpool.pool_size_for(explicit, memory=24 * GIB) == 10
    # 24 GiB less 2 GiB reserve and a 4 GiB build leaves 18 servers of 1G: 9 each for two images
    assert warmpool.pool_size_for(explicit, images=2, memory=24 * GIB) == 9
    assert warmpool.pool_size_for(explicit.with_overrides(memory_limit="2G"), memory=24 * GIB) == 9
    assert warmpool.pool_size_for(explicit, memory=8 * GIB) == 2
    assert warmpool.pool_size_for(explicit, memory=4 * GIB) == 0, "no room next to a build: no pool"
    assert warmpool.pool_size_for(explicit.with_overrides(total_quota=6), memory=24 * GIB) == 6
    assert warmpool.pool_size_for(explicit.with_overrides(warm_pool_size=0), memory=24 * GIB) == 0
    signed_in = explicit.with_overrides(auth_mode="authenticated")
    assert warmpool.pool_size_for(signed_in, memory=24 * GIB) == 0, "signed-in launches never take pooled servers"


def test_auto_pool_size_is_the_workshops_attendees(tmp_path):
    auto = settings_at(tmp_path, memory_limit="1G", total_quota=0)
    assert warmpool.pool_size_for(auto, memory=24 * GIB) == 0, "no workshop: no pool"
    save_manifest(auto, Manifest(attendees=12))
    assert warmpool.pool_size_for(auto, memory=24 * GIB) == 12
    save_manifest(auto, Manifest(attendees=40))
    assert warmpool.pool_size_for(auto, memory=24 * GIB) == 18


def _prepared(image: str) -> PreparedLink:
    resolved = ResolvedRepo(
        provider="gh",
        spec="org/course/main",
        repo_url="https://github.com/org/course",
        unresolved_ref="main",
        resolved_ref="a" * 40,
        resolved_spec="org/course/" + "a" * 40,
        ref_url="https://github.com/org/course/tree/" + "a" * 40,
        build_slug="gh-org-course",
    )
    return PreparedLink.from_resolved("gh/org/course/main", resolved, image)


def test_pooled_images_from_links_use_the_manifest_only(tmp_path, caplog):
    settings = settings_at(tmp_path, warm_pool_images="gh/org/course/main, other:1, gh/org/unprepared/main")
    save_manifest(settings, Manifest(links=(_prepared("prepared:1"),), images=("binderlite/base:bookworm",)))
    images = warmpool.pool_images(settings)
    # a prepared link's image by the name a launch asks for on this machine (its registry, image_prefix)
    here = warmpool.here(settings, load_manifest(settings).links[0])
    assert here.startswith(f"{settings.registry}/{settings.image_prefix}") and here != "prepared:1"
    assert [i.image for i in images] == [here, "other:1"]
    assert images[0].user_options["repo_url"] == "https://github.com/org/course"
    assert images[0].user_options["binder_request"] == "v2/gh/org/course/main"
    assert images[1].user_options == {"image": "other:1", "binder_launch_host": settings.binder_launch_host}
    assert "gh/org/unprepared/main is not a prepared link" in caplog.text
    # by default: the manifest's prepared images, not its base images
    assert [i.image for i in warmpool.pool_images(settings.with_overrides(warm_pool_images=""))] == [here]


# ---- the job's plan ----------------------------------------------------------------------------
NOW = 1_000_000.0


def entry(user: str, state: str, image: str = IMAGE, image_id: str = "sha256:a", age: float = 100) -> pool.Entry:
    return pool.Entry(user, image, image_id, state, NOW - age)


def hub_user(name: str, ready: bool = True, pending: str | None = None, server: bool = True) -> dict:
    servers = {"": {"ready": ready, "pending": pending}} if server else {}
    return {"name": name, "servers": servers}


def users(*models: dict) -> dict[str, dict]:
    return {m["name"]: m for m in models}


def test_plan_fills_the_pool_and_marks_started_servers_ready():
    entries = [entry("p1", pool.STARTING), entry("p2", pool.STARTING)]
    hub = users(hub_user("p1"), hub_user("p2", ready=False, pending="spawn"))
    todo = plan(entries, hub, {IMAGE: (5, "sha256:a")}, NOW, 600)
    assert todo.ready == ["p1"] and todo.drain == [] and todo.start == {IMAGE: 3}


def test_plan_drains_a_rebuilt_or_unwanted_image_but_never_a_claimed_server():
    entries = [
        entry("old-ready", pool.READY, image_id="sha256:old"),
        entry("old-claimed", pool.CLAIMED, image_id="sha256:old"),
        entry("gone-image", pool.READY, image="bltest-gone:1"),
    ]
    hub = users(*(hub_user(e.user) for e in entries))
    todo = plan(entries, hub, {IMAGE: (1, "sha256:new")}, NOW, 600)
    assert sorted(todo.drain) == ["gone-image", "old-ready"]
    assert todo.start == {IMAGE: 1}, "the rebuilt image gets a fresh server"
    assert plan(entries, hub, {}, NOW, 600).start == {}, "pool off: nothing started"


def test_plan_replaces_dead_and_failed_servers_and_forgets_deleted_users():
    entries = [
        entry("died", pool.READY),
        entry("failed", pool.STARTING, age=CREATE_GRACE + 5),
        entry("slow", pool.STARTING, age=700),
        entry("creating", pool.STARTING, age=1),
        entry("culled", pool.CLAIMED),
        entry("in-use", pool.CLAIMED),
    ]
    hub = users(
        hub_user("died", ready=False),
        hub_user("failed", server=False),
        hub_user("slow", ready=False, pending="spawn"),
        hub_user("in-use"),
    )
    todo = plan(entries, hub, {IMAGE: (2, "sha256:a")}, NOW, 600)
    assert sorted(todo.drain) == ["died", "failed", "slow"]
    assert todo.failed == [IMAGE, IMAGE]
    assert todo.forget == ["culled"], "'creating' is young: its hub user is on its way"
    assert todo.start == {IMAGE: 2}


def test_plan_drains_the_surplus_keeping_ready_servers():
    entries = [entry("s1", pool.STARTING, age=5), entry("r1", pool.READY, age=50), entry("r2", pool.READY, age=40)]
    hub = users(hub_user("s1", ready=False, pending="spawn"), hub_user("r1"), hub_user("r2"))
    todo = plan(entries, hub, {IMAGE: (2, "sha256:a")}, NOW, 600)
    assert todo.drain == ["s1"] and todo.start == {}


# ---- quotas -----------------------------------------------------------------------------------
class Hub:
    def __init__(self, servers: list[dict]):
        self.servers = servers

    def running_servers(self) -> list[dict]:
        return self.servers


def test_unclaimed_pool_servers_count_for_total_quota_but_not_per_repo_quota(tmp_path):
    settings = settings_at(tmp_path, total_quota=3, per_repo_quota=1)
    ready_server(settings, "pool-a")
    ready_server(settings, "pool-b")
    hub = Hub([{"repo_url": "r", "warm_pool": "pool-a"}, {"repo_url": "r", "warm_pool": "pool-b"}])
    with quotas.slot(settings, hub, "r"):  # both pooled servers are nobody's yet
        hub.servers.append({"repo_url": "r"})
    with pytest.raises(quotas.QuotaExceeded, match="Too many users on this BinderHub"):
        with quotas.slot(settings, hub, "other"):
            pass
    hub.servers.pop()
    pool.claim(settings, IMAGE)  # pool-a is someone's now
    with pytest.raises(quotas.QuotaExceeded, match="Too many users running r!"):
        with quotas.slot(settings, hub, "r"):
            pass
    with quotas.slot(settings, hub, "r", pooled=True):  # the pool job's start counts for total_quota only
        pass


def test_plan_starts_no_replacement_while_launches_are_spawning():
    entries = [entry("p1", pool.CLAIMED)]
    spawning = users(hub_user("p1"), hub_user("someone", ready=False, pending="spawn"))
    assert plan(entries, spawning, {IMAGE: (3, "sha256:a")}, NOW, 600).start == {}
    done = users(hub_user("p1"), hub_user("someone"))
    assert plan(entries, done, {IMAGE: (3, "sha256:a")}, NOW, 600).start == {IMAGE: 3}
