"""The metrics: labels, who may read /metrics, what a launch request counts, multiprocess sums."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from binderlite import launch as launcher
from binderlite.builds import pipeline
from binderlite.events import Event
from binderlite.links import registry as providers
from binderlite.observe import metrics, multiproc
from binderlite.services.table import all_services
from binderlite.settings import Settings
from binderlite.web.app import create_app
from binderlite.web.metrics import may_read
from tests.unit.test_web import events, resolved_for

STREAM = {"Accept": "text/event-stream"}
REPO = "https://example.org/a/b.git"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_repo_label_full_hashed_omitted_and_private_never_in_clear():
    digest = hashlib.sha256(REPO.encode()).hexdigest()[:12]
    assert metrics.repo_label(Settings(), REPO) == REPO
    assert metrics.repo_label(Settings(metrics_repo_label="hashed"), REPO) == digest
    assert metrics.repo_label(Settings(metrics_repo_label="omit"), REPO) == ""
    assert metrics.repo_label(Settings(), REPO, private=True) == digest
    assert metrics.repo_label(Settings(metrics_repo_label="omit"), REPO, private=True) == ""
    assert metrics.repo_label(Settings(), "https://user:secret@example.org/a/b.git") == REPO


def test_a_bad_repo_label_setting_says_what_is_allowed():
    with pytest.raises(Exception, match="metrics_repo_label.*'full', 'hashed', 'omit'"):
        Settings(metrics_repo_label="clear")


def test_provider_label_is_binderhubs_name_and_unknown_prefixes_stay_one_value():
    assert metrics.provider_label("gh") == "GitHub"
    assert metrics.provider_label("zenodo") == "Zenodo"
    assert metrics.provider_label("anything-a-visitor-types") == "unknown"


def test_access_rule_loopback_directly_or_the_token():
    open_ = Settings()
    secret = Settings(metrics_token="s3cret")
    assert may_read(open_, "127.0.0.1", {})
    assert may_read(open_, "::1", {})
    assert not may_read(open_, "192.168.1.5", {})
    assert not may_read(open_, "127.0.0.1", {"X-Forwarded-For": "203.0.113.9"}), "through a reverse proxy"
    assert not may_read(open_, "192.168.1.5", {"Authorization": "Bearer "}), "no token set: no token works"
    assert may_read(secret, "192.168.1.5", {"Authorization": "Bearer s3cret"})
    assert may_read(secret, "127.0.0.1", {"Authorization": "Bearer s3cret", "X-Forwarded-For": "203.0.113.9"})
    assert not may_read(secret, "192.168.1.5", {"Authorization": "Bearer wrong"})
    assert not may_read(secret, "192.168.1.5", {"Authorization": "s3cret"})


@pytest.fixture
def client(tmp_path):
    app = create_app(Settings(state_dir=str(tmp_path), metrics_token="s3cret"))
    app.config.update(STREAM_KEEPALIVE=0.05, STREAM_LINGER=0)
    return app.test_client()


def test_metrics_page_serves_the_text_format_or_a_one_line_403(client):
    page = client.get("/metrics")
    assert page.status_code == 200
    assert page.mimetype == "text/plain"
    names = {family.name for family in text_string_to_metric_families(page.get_data(as_text=True))}
    assert {"binderhub_build_time_seconds", "binderhub_launch_count", "binderlite_build_queue_length"} <= names
    remote = {"REMOTE_ADDR": "192.168.1.5"}
    refused = client.get("/metrics", environ_base=remote)
    assert refused.status_code == 403
    assert refused.get_data(as_text=True).count("\n") == 1
    assert "metrics_token" in refused.get_data(as_text=True)
    assert client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 403
    assert client.get("/metrics", environ_base=remote, headers={"Authorization": "Bearer s3cret"}).status_code == 200


@pytest.fixture
def launches(monkeypatch):
    """Resolve and find the image at once; the launch retries once, then is ready."""

    def resolve(self):
        return resolved_for(self, self.spec)

    def build_events(settings, resolved):
        yield Event.built("img:1", "Found built image, launching...")

    def launch(settings, resolved, image):
        yield Event.launching("Launching server...")
        yield Event.launching("Launch attempt 1 failed (hub busy), retrying in 4 s...")
        yield Event.ready("server running", url="http://h/user/u/", token="t", image=image)

    for cls in providers.PROVIDERS.values():
        monkeypatch.setattr(cls, "resolve", resolve)
    monkeypatch.setattr(pipeline, "build_events", build_events)
    monkeypatch.setattr(launcher, "launch", launch)


def test_a_launch_counts_success_with_its_retries_and_ends_in_progress(client, launches):
    success = {"status": "success", "provider": "GitHub", "repo": REPO}
    before = sample("binderhub_launch_count_total", **success)
    timed = sample("binderhub_launch_time_seconds_count", status="success", retries="1")
    retried = sample("binderhub_launch_time_seconds_count", status="retry", retries="-1")
    assert events(client.get("/build/gh/org/repo/HEAD", headers=STREAM))[-1]["phase"] == "ready"
    assert sample("binderhub_launch_count_total", **success) == before + 1
    assert sample("binderhub_launch_time_seconds_count", status="success", retries="1") == timed + 1
    assert sample("binderhub_launch_time_seconds_count", status="retry", retries="-1") == retried + 1
    assert sample("binderhub_inprogress_launches") == 0


def test_a_link_that_does_not_resolve_is_a_failed_launch_without_a_launch_time(client):
    failure = {"status": "failure", "provider": "unknown", "repo": ""}
    before = sample("binderhub_launch_count_total", **failure)
    timed = sample("binderhub_launch_time_seconds_count", status="failure", retries="-1")
    assert events(client.get("/build/nosuchprovider/x/y", headers=STREAM))[-1]["phase"] == "failed"
    assert sample("binderhub_launch_count_total", **failure) == before + 1
    assert sample("binderhub_launch_time_seconds_count", status="failure", retries="-1") == timed


def test_build_only_is_not_a_launch(client, launches):
    before = sample("binderhub_launch_count_total", status="success", provider="GitHub", repo=REPO)
    response = client.get("/build/gh/org/repo/HEAD?build_only=true", headers=STREAM)
    assert events(response)[-1]["phase"] == "ready"
    assert sample("binderhub_launch_count_total", status="success", provider="GitHub", repo=REPO) == before


def test_cull_reasons_become_labels():
    idle, age = (
        sample("binderlite_culled_servers_total", reason="idle"),
        sample("binderlite_culled_servers_total", reason="max_age"),
    )
    metrics.record_culls(["idle 700s > 600s", "idle 900s > 600s", "age 30000s > 21600s"])
    assert sample("binderlite_culled_servers_total", reason="idle") == idle + 2
    assert sample("binderlite_culled_servers_total", reason="max_age") == age + 1


def test_counting_never_breaks_what_it_counts(monkeypatch, caplog):
    class Broken:
        def labels(self, **_):
            raise OSError("No space left on device")

    monkeypatch.setattr(metrics, "BUILD_TIME", Broken())
    metrics.record_build(Settings(), provider="gh", repo=REPO, private=False, status="success", seconds=1)
    assert "record_build failed: OSError: No space left on device" in caplog.text


COUNT_IN_A_PROCESS = """
from binderlite.observe import metrics
from binderlite.settings import Settings
metrics.record_build(Settings(), provider="gh", repo="https://example.org/a/b.git", private=False,
                     status="success", seconds=42)
metrics.BUILDS_INPROGRESS.inc()
"""


def test_counts_of_separate_processes_add_up_and_a_dead_process_leaves_no_in_progress(tmp_path, monkeypatch):
    folder = tmp_path / "metrics"
    env = {**os.environ, multiproc.ENV: str(folder), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", COUNT_IN_A_PROCESS], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    pids = sorted({int(p.stem.rsplit("_", 1)[1]) for p in folder.glob("gauge_livesum_*.db")})
    monkeypatch.setenv(multiproc.ENV, str(folder))
    collected = multiproc.registry()
    labels = {"status": "success", "provider": "GitHub", "repo": REPO}
    assert collected.get_sample_value("binderhub_build_count_total", labels) == 2
    assert collected.get_sample_value("binderhub_build_time_seconds_bucket", {"status": "success", "le": "60.0"}) == 2
    assert collected.get_sample_value("binderhub_inprogress_builds") == 2
    for pid in pids:
        multiproc.process_exited(pid)
    assert (multiproc.registry().get_sample_value("binderhub_inprogress_builds") or 0) == 0
    assert multiproc.registry().get_sample_value("binderhub_build_count_total", labels) == 2


def test_reset_empties_the_folder(tmp_path):
    settings = Settings(state_dir=str(tmp_path))
    folder = multiproc.metrics_dir(settings)
    folder.mkdir(parents=True)
    (folder / "counter_123.db").write_bytes(b"old")
    assert multiproc.reset(settings) == folder
    assert list(folder.iterdir()) == []


def test_web_and_scheduler_count_into_the_shared_folder_and_the_hub_does_not(tmp_path):
    settings = Settings(state_dir=str(tmp_path), registry="")
    services = {s.name: s for s in all_services(settings, find=lambda name: f"/usr/bin/{name}")}
    expected = {multiproc.ENV: str(tmp_path / "run" / "metrics")}
    assert services["web"].environment == expected
    assert services["scheduler"].environment == expected
    assert multiproc.ENV not in services["hub"].environment, "JupyterHub has metrics of its own"


DASHBOARD = Path(__file__).resolve().parents[2] / "contrib" / "grafana" / "binderlite-dashboard.json"
METRIC_NAME = re.compile(r"\b(?:binderhub|binderlite)_[a-z_]+\b")
SAMPLE_SUFFIXES = {"histogram": ("_bucket", "_count", "_sum"), "counter": ("_total",), "gauge": ("",)}


def defined_samples() -> set[str]:
    """Every sample name the metrics of observe/metrics.py expose."""
    names = set()
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):
            names.update(metric._name + suffix for suffix in SAMPLE_SUFFIXES[metric._type])
    return names


def test_the_dashboard_reads_only_metrics_binderlite_defines():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 36
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    defined = defined_samples()
    used = set()
    for panel in panels:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = set(METRIC_NAME.findall(target["expr"]))
            assert names, (panel["title"], target["expr"])
            assert names <= defined, (panel["title"], names - defined)
            used |= names
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    assert "histogram_quantile(0.5, sum(rate(binderhub_launch_time_seconds_bucket[5m])) by (le))" in exprs
    shown = {metric._name for metric in vars(metrics).values() if isinstance(metric, MetricWrapperBase)}
    shown = {name for name in shown if any(u.startswith(name) for u in used)}
    every = {metric._name for metric in vars(metrics).values() if isinstance(metric, MetricWrapperBase)}
    assert shown == every, f"metrics no panel shows: {every - shown}"
    assert "binderhub_launch_count" not in defined, "counters are read as <name>_total, as Prometheus stores them"
