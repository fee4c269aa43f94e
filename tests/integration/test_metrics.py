"""/metrics after real builds and launches, on `binderlite up` with two gunicorn workers and its scheduler.

One repository is built for real and launched; launched again it is a cache hit
refused by the per-repository quota (one server each); once the scheduler has
culled its idle server, a third launch succeeds from the cache. A repository
that fails to build is a failed build and a failed launch. Then /metrics is
read several times (any worker may answer: the counts are the same), parsed
with prometheus-client's parser, and must hold every one of those counts with
BinderHub's labels, the series BinderHub's launch-time panel reads, the
scheduler's cull and the build workers' builds. A remote client (the docker
bridge's gateway address: this machine, not 127.0.0.1) and a wrong token get
403; the right token opens it from there.
"""

from __future__ import annotations

import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.browser import WEB, running_appliance
from tests.helpers.streams import final_event, stream_events

pytestmark = pytest.mark.integration
TOKEN = "bltest-metrics-token"
SETTINGS = {
    "BINDERLITE_WEB_WORKERS": "2",
    "BINDERLITE_WEB_HOST": "0.0.0.0",  # so that the bridge's gateway address reaches it (the remote client)
    "BINDERLITE_METRICS_TOKEN": TOKEN,
    "BINDERLITE_PER_REPO_QUOTA": "1",
    "BINDERLITE_CULL_EVERY": "2",
    "BINDERLITE_CULL_IDLE_TIMEOUT": "15",
    "BINDERLITE_GC_EVERY": "5",
    "BINDERLITE_DISK_HIGH_WATER": "100",  # the disk job reports; it never removes an image here
}
SCRAPES = 6


@pytest.fixture(scope="module")
def appliance(git_server, docker_client):
    with running_appliance(docker_client, extra=SETTINGS) as up:
        yield up


def scrape(url: str = f"{WEB}/metrics", **kwargs) -> dict[tuple[str, tuple], float]:
    """/metrics parsed: {(sample name, sorted labels): value}."""
    response = requests.get(url, timeout=10, **kwargs)
    assert response.status_code == 200, response.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def launch(link: str) -> dict:
    return final_event(stream_events(f"{WEB}/build/{link}"))


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        samples = scrape()
        if predicate(samples):
            return samples
        time.sleep(1)
    pytest.fail(f"/metrics never showed {what}")


def test_metrics_count_builds_launches_refusals_and_culls_across_processes(appliance, git_server, docker_client):
    git_server.add_fixture("requirements", "metrics-ok")
    git_server.add_fixture("failing", "metrics-broken")
    ok_labels = {"provider": "Git", "repo": git_server.url("metrics-ok")}
    broken_labels = {"provider": "Git", "repo": git_server.url("metrics-broken")}

    first = launch(git_server.link("metrics-ok"))
    assert first["phase"] == "ready", first
    refused = launch(git_server.link("metrics-ok"))  # the image exists: a cache hit, then the quota
    assert refused["phase"] == "failed" and "Too many users running" in refused["message"], refused
    broken = launch(git_server.link("metrics-broken"))
    assert broken["phase"] == "failed", broken

    culled = wait_for(
        lambda s: value(s, "binderlite_culled_servers_total", reason="idle") >= 1, 90, "the idle server culled"
    )
    assert value(culled, "binderlite_culled_servers_total", reason="max_age") == 0
    again = launch(git_server.link("metrics-ok"))  # the culled server's slot is free again
    assert again["phase"] == "ready", again
    wait_for(lambda s: value(s, "binderlite_running_servers") >= 1, 30, "the running server (the cull job's count)")

    scrapes = [scrape() for _ in range(SCRAPES)]
    counted = [{key: v for key, v in s.items() if key[0].endswith(("_total", "_bucket", "_count"))} for s in scrapes]
    assert all(c == counted[0] for c in counted), "every worker shows the same counts"
    samples = scrapes[-1]

    # Builds: counted by the build worker processes, with BinderHub's labels and buckets.
    assert value(samples, "binderhub_build_count_total", status="success", **ok_labels) == 1
    assert value(samples, "binderhub_build_count_total", status="failure", **broken_labels) == 1
    assert value(samples, "binderhub_build_time_seconds_count", status="success") == 1
    assert value(samples, "binderhub_build_time_seconds_count", status="failure") == 1
    build_les = {dict(k[1])["le"] for k in samples if k[0] == "binderhub_build_time_seconds_bucket"}
    assert build_les == {"60.0", "120.0", "300.0", "600.0", "1800.0", "3600.0", "7200.0", "+Inf"}
    assert value(samples, "binderhub_inprogress_builds") == 0
    assert value(samples, "binderlite_build_cache_hits_total") == 2
    assert value(samples, "binderlite_build_queue_wait_seconds_count") == 2
    assert samples[("binderlite_build_queue_length", ())] == 0, "nothing waits any more"

    # Launches: two successes, the quota refusal and the failed build are failures.
    assert value(samples, "binderhub_launch_count_total", status="success", **ok_labels) == 2
    assert value(samples, "binderhub_launch_count_total", status="failure", **ok_labels) == 1
    assert value(samples, "binderhub_launch_count_total", status="failure", **broken_labels) == 1
    assert value(samples, "binderhub_launch_time_seconds_count", status="success", retries="0") == 2
    assert value(samples, "binderhub_inprogress_launches") == 0

    # What BinderHub's panel `histogram_quantile(0.5, sum(rate(binderhub_launch_time_seconds_bucket[5m])) by (le))`
    # reads: bucket series with an `le` label, counting launches.
    buckets: dict[str, float] = {}
    for (name, labels), count in samples.items():
        if name == "binderhub_launch_time_seconds_bucket":  # summed by le, as the query does
            buckets[dict(labels)["le"]] = buckets.get(dict(labels)["le"], 0) + count
    assert set(buckets) == {"2.0", "5.0", "10.0", "20.0", "30.0", "60.0", "120.0", "300.0", "600.0", "+Inf"}
    assert buckets["+Inf"] == 3, "two launches and the refused one"

    # The scheduler's work, from its own process.
    kinds = {dict(k[1])["kind"] for k in samples if k[0] == "binderlite_reconcile_fixes_total"}
    assert kinds == {"orphan_containers", "stale_servers", "dropped_routes", "dead_builds"}
    assert 0 < value(samples, "binderlite_disk_used_ratio") < 1
    assert ("binderlite_gc_removed_images_total", ()) in samples
    states = {dict(k[1])["state"] for k in samples if k[0] == "binderlite_warm_pool_servers"}
    assert states == {"starting", "ready", "claimed", "draining"}


def test_a_remote_client_needs_the_token(appliance, docker_client):
    gateway = docker_client.networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"]
    remote = f"http://{gateway}:{WEB.rsplit(':', 1)[1]}/metrics"
    refused = requests.get(remote, timeout=10)
    assert refused.status_code == 403
    assert "metrics_token" in refused.text and refused.text.count("\n") == 1
    wrong = requests.get(f"{WEB}/metrics", headers={"Authorization": "Bearer wrong"}, timeout=10)
    assert wrong.status_code == 200, "from 127.0.0.1 directly, a wrong token changes nothing"
    assert requests.get(remote, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 403
    proxied = requests.get(f"{WEB}/metrics", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=10)
    assert proxied.status_code == 403, "through a reverse proxy, 127.0.0.1 is not enough"
    assert scrape(remote, headers={"Authorization": f"Bearer {TOKEN}"})
