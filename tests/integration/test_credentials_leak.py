"""The leak test: a unique planted credential, a private repository built and launched, then a search everywhere.

A private git server (lighttpd + git http-backend, basic auth; sshd with a
deploy key) holds two repositories. binderlite, with a fresh state dir and a
secrets file holding the planted token and key, builds one over HTTP and one
over SSH through the real pipeline and launches the HTTP one through a real
hub. Meanwhile the web app (real gunicorn, anonymous mode) is asked for the
private repository and for a link with the token pasted into it, and the
process list is sampled. Then the token (plain, URL-escaped, in a basic-auth
header) and a line of the private key are searched for in every image layer
(``docker save``), ``docker inspect`` of the images and containers, the build
logs, the events, binderlite's and the hub's state (databases, logs), the
web app's log, the registry's new blobs, the Docker daemon's log and the
process list: every count must be zero. Positive controls show the search
finds what is there.
"""

from __future__ import annotations

import dataclasses
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from binderlite import launch
from binderlite.builds.pipeline import build_events
from binderlite.links import resolve_link
from binderlite.settings import Settings
from tests.helpers import leaksearch
from tests.helpers.containers import TEST_PREFIX
from tests.helpers.net import free_port
from tests.helpers.privategit import USER, private_git_server
from tests.helpers.streams import STREAM_HEADERS, log_text, read_events
from tests.helpers.webapp import gunicorn_web

pytestmark = pytest.mark.integration

TOKEN = f"bltest-leak-{secrets.token_hex(16)}"
DOCKERD_LOG = Path("/var/log/binderlite-dockerd.log")


class ProcessSampler:
    """``ps`` output (every process, full command lines) sampled every 0.1 s while running.

    The private git server answers each request after 0.5 s, so every git process of a fetch lives long
    enough to be seen.
    """

    def __init__(self) -> None:
        self.samples: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True, name="ps-sampler")

    def run(self) -> None:
        while not self.stop.is_set():
            ps = subprocess.run(["ps", "-eww", "-o", "pid=,user=,args="], capture_output=True, text=True)
            self.samples.append(ps.stdout)
            self.stop.wait(0.1)

    def __enter__(self) -> ProcessSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def server():
    with private_git_server(token=TOKEN, delay=0.5) as srv:
        srv.add_fixture("requirements", "leak-http")
        srv.add_fixture("runtime-txt", "leak-ssh")
        yield srv


@pytest.fixture(scope="module")
def leak_settings(settings, server, tmp_path_factory) -> Settings:
    """The session's settings with a state dir of this test's own and the planted secrets file."""
    root = tmp_path_factory.mktemp("leak")
    secrets_file = server.write_credentials(root / "credentials.toml")
    return dataclasses.replace(settings, state_dir=str(root / "state"), credentials_file=str(secrets_file))


@pytest.fixture(scope="module")
def web(leak_settings, tmp_path_factory):
    """gunicorn serving the web app (anonymous mode) on this state dir; yields (base URL, its log file)."""
    root = tmp_path_factory.mktemp("leak-web")
    environment = {
        **leak_settings.to_environment(),
        "BINDERLITE_STREAM_LINGER": "0",
        "BINDERLITE_HUB_PORT": str(free_port()),  # no hub: nothing here may launch
    }
    log_path = root / "gunicorn.log"
    with gunicorn_web(environment, log_path) as base:
        yield base, log_path


def build_stream(url: str) -> list[dict]:
    with requests.get(url, headers=STREAM_HEADERS, stream=True, timeout=(5, 120)) as response:
        events, _ = read_events(response, deadline=120)
    return events


def test_planted_credential_is_nowhere(leak_settings, server, web, hubstack, docker_client, registry, tmp_path_factory):
    started = time.time()
    key_lines = server.deploy_key.read_text().splitlines()
    key_marker = key_lines[-2]  # a line of the private key's body
    needles = leaksearch.needles(TOKEN, USER, extra=[key_marker])
    base, web_log = web
    events: list[dict] = []

    with ProcessSampler() as probe:  # the control: a process with the token in its command line is seen
        subprocess.run([sys.executable, "-c", "import time; time.sleep(1)", TOKEN], check=True)
    probe_hits = leaksearch.count_text("".join(probe.samples), needles)

    with ProcessSampler() as ps:
        # the web app (anonymous mode): the private repository is refused, a pasted token too
        http_link = server.link(server.http_url("leak-http"))
        refused = build_stream(f"{base}/build/{http_link}")
        assert refused[-1]["phase"] == "failed" and refused[-1]["status_code"] == 403, refused
        pasted = server.link(server.http_url("leak-http").replace("http://", f"http://{USER}:{TOKEN}@"))
        assert requests.get(f"{base}/v2/{pasted}", timeout=30).status_code < 500
        pasted_events = build_stream(f"{base}/build/{pasted}")
        assert pasted_events[-1]["phase"] == "failed", pasted_events
        assert "Never paste a credential into a link" in pasted_events[-1]["message"]
        events += refused + pasted_events

        # builds through the pipeline (queue, detached worker, sandboxed fetch, repo2docker, push)
        images = {}
        for transport, name in (("http", "leak-http"), ("ssh", "leak-ssh")):
            url = server.http_url(name) if transport == "http" else server.ssh_url(name)
            resolved = resolve_link(server.link(url), leak_settings)
            assert resolved.private
            built = [ev for ev in build_events(leak_settings, resolved) if ev is not None]
            assert built[-1]["phase"] == "built", log_text(built)[-3000:]
            images[transport] = (resolved, built[-1]["imageName"])
            events += built

        # the launch through a real hub (the HTTP repository's image)
        resolved, image = images["http"]
        launched = list(launch.launch(hubstack, resolved, image, retry_delay=0.2))
        assert launched[-1]["phase"] == "ready", launched
        events += launched
    seen = "".join(ps.samples)
    for command in ("git ls-remote", "fetch --quiet", "git-remote-http", "ssh -F /dev/null"):
        assert command in seen, f"the process list never showed {command!r}: the sampler missed the fetch"

    tally = leaksearch.Tally()
    control = b"six==1.16.0"  # in the HTTP repository's requirements.txt: the layer search must find it
    controls = 0
    for transport, (_, image) in images.items():
        counts = leaksearch.count_each(docker_client.images.get(image).save(named=True), [*needles, control])
        controls += counts[-1]
        tally.add(f"image layers ({transport})", sum(counts[:-1]), f"docker save {image}")
        tally.add(f"docker inspect image ({transport})", leaksearch.count_text(
            docker_client.api.inspect_image(image), needles), image)  # fmt: skip
    containers = {c.id: c for c in docker_client.containers.list(all=True, filters={"name": TEST_PREFIX})}
    for _, image in images.values():
        containers.update({c.id: c for c in docker_client.containers.list(all=True, filters={"ancestor": image})})
    assert containers, "the launched server's container is not there to inspect"
    inspect_hits = sum(leaksearch.count_text(docker_client.api.inspect_container(c), needles) for c in containers)
    tally.add("docker inspect containers", inspect_hits, f"{len(containers)} containers")
    tally.add("events", leaksearch.count_text(events, needles), f"{len(events)} events (web, builds, launch)")
    build_logs = leaksearch.count_tree(leak_settings.build_logs_dir, needles)
    tally.add("build logs", build_logs[0], f"{build_logs[1]} files in {leak_settings.build_logs_dir}")
    state = leaksearch.count_tree(Path(leak_settings.state_dir), needles)
    tally.add("binderlite state dir (database, logs)", state[0], f"{state[1]} files")
    hub = leaksearch.count_tree(Path(hubstack.state_dir), needles)
    tally.add("hub state dir (hub database, service logs)", hub[0], f"{hub[1]} files")
    tally.add("web app log (gunicorn)", leaksearch.count_stream(leaksearch.file_chunks(web_log), needles), "1 file")
    assert "%2F%2F[redacted]@127.0.0.1" in web_log.read_text(), "the pasted link's request was not logged"
    registry_root = next(tmp_path_factory.getbasetemp().glob("registry*"))
    blobs = leaksearch.count_tree(registry_root, needles, newer_than=started)
    tally.add("registry storage (new blobs, un-gzipped)", blobs[0], f"{blobs[1]} files")
    if DOCKERD_LOG.exists():
        tally.add("Docker daemon log", leaksearch.count_stream(leaksearch.file_chunks(DOCKERD_LOG), needles), "1 file")
    tally.add("process list during the build", leaksearch.count_text(seen, needles),
              f"{len(ps.samples)} samples of ps -eww")  # fmt: skip

    # positive controls: the search finds what is there
    secrets_hits = leaksearch.count_stream(leaksearch.file_chunks(Path(leak_settings.credentials_file)), needles)
    tally.add("(control) the secrets file itself", secrets_hits, "the token must be found here")
    tally.add("(control) a repository file in the layers", controls, "six==1.16.0 must be found")
    tally.add("(control) a process with the token in argv", probe_hits, "must be found by the sampler")
    assert secrets_hits >= 1 and controls >= 1 and probe_hits >= 1, tally.report()

    print("\nplanted credential search (hits per place):\n" + tally.report())
    leaks = {place: hits for place, hits in tally.leaks().items() if not place.startswith("(control)")}
    assert not leaks, f"the planted credential leaked: {leaks}\n{tally.report()}"
