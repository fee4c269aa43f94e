"""Attacks from users' servers on the network and on privileges, performed on the real stack.

Each attack runs as a repository's code would: in the server's kernel. The
targets are canaries this test starts — TCP services on this host's own
addresses, another user's server, services in network namespaces the test
creates on a private (10.x) and a link-local (169.254.x) address, a DNS
server there — each first shown reachable from the host itself, so a refusal
is the rules' doing and not a dead canary.
"""

from __future__ import annotations

import ast
import io
import json
import os
import socket
import socketserver
import subprocess
import sys
import textwrap
import threading
import time

import docker.errors
import pytest
import requests

from binderlite.hub import addresses as hub
from binderlite.sandbox import dockernet
from binderlite.sandbox.netrules import resolvers
from tests.helpers.containers import TEST_PREFIX
from tests.helpers.images import run_in_image
from tests.helpers.kernel import run_code
from tests.helpers.stack import launch_ready, server_container, user_of

pytestmark = pytest.mark.integration

NETNS = f"{TEST_PREFIX}canary-{os.getpid()}"
VETH = f"bltc{os.getpid() % 100000}"  # host side of the pair (≤ 15 characters)
PRIVATE = ("10.213.77.1", "10.213.77.2")  # (host side, canary)
LINK_LOCAL = ("169.254.213.1", "169.254.213.2")  # link-local like cloud metadata, but not 169.254.169.254
CANARY_PORT = 80
CANARY_SCRIPT = """
import socket, socketserver, struct, sys, threading

ANSWER, LOG = sys.argv[1], sys.argv[2]

class Canary(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(b"canary\\n")

class DNS(socketserver.BaseRequestHandler):
    # Answers every A query with ANSWER; logs each query's name and source.
    def handle(self):
        data, sock = self.request
        labels, end = [], 12
        while data[end]:
            labels.append(data[end + 1:end + 1 + data[end]].decode("ascii", "replace"))
            end += data[end] + 1
        qtype = struct.unpack(">H", data[end + 1:end + 3])[0]
        with open(LOG, "a") as log:
            log.write(f"{self.client_address[0]} {'.'.join(labels)} {qtype}\\n")
        question = data[12:end + 5]
        answer = b"\\xc0\\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(ANSWER) if qtype == 1 else b""
        header = data[:2] + b"\\x81\\x80" + struct.pack(">HHHH", 1, 1 if answer else 0, 0, 0)
        sock.sendto(header + question + answer, self.client_address)

socketserver.ThreadingTCPServer.allow_reuse_address = True
tcp = socketserver.ThreadingTCPServer(("0.0.0.0", 80), Canary)
udp = socketserver.ThreadingUDPServer(("0.0.0.0", 53), DNS)
threading.Thread(target=udp.serve_forever, daemon=True).start()
print("ready", flush=True)
tcp.serve_forever()
"""
PROBE = """
import socket
def probe(host, port):
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.settimeout(3)
    try:
        sock.connect((host, port))
        return "open"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return f"error: {exc}"
    finally:
        sock.close()
"""


def probe_from(ready: dict, targets: list[tuple[str, int]]) -> list[str]:
    """Try a TCP connection to each target from the server's kernel: open, refused, timeout or error."""
    code = f"{PROBE}\n[probe(host, port) for host, port in {targets!r}]"
    return ast.literal_eval(run_code(ready["url"], ready["token"], code))


def probe_from_host(host: str, port: int) -> str:
    try:
        with socket.create_connection((host, port), timeout=3):
            return "open"
    except OSError as exc:
        return f"closed: {exc}"


def _ip(container) -> str:
    """The container's address on the one network it is on."""
    container.reload()
    (network,) = container.attrs["NetworkSettings"]["Networks"].values()
    return network["IPAddress"]


def _sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def _chain(family: int, chain: str) -> list[str]:
    return _sh("iptables" if family == 4 else "ip6tables", "-w", "-S", chain).splitlines()


@pytest.fixture(scope="module")
def servers(hubstack, launch_image):
    """Two users' servers, as two launches of the same image."""
    return launch_ready(hubstack, launch_image, name="bltest/iso-a"), launch_ready(
        hubstack, launch_image, name="bltest/iso-b"
    )


class _Canary(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(b"canary\n")


@pytest.fixture(scope="module")
def host_canary(hubstack):
    """A TCP service on each of this host's IPv4 addresses but loopback, on one free port (not the hub's)."""
    addresses = sorted(
        {
            entry["local"]
            for link in json.loads(_sh("ip", "-4", "-j", "addr", "show"))
            for entry in link.get("addr_info", [])
            if not entry["local"].startswith("127.")
        }
    )
    assert "172.17.0.1" in addresses and hub.hub_ip(hubstack) in addresses, addresses
    for _ in range(20):
        servers_, port = [], 0
        try:
            for address in addresses:
                server = socketserver.ThreadingTCPServer((address, port), _Canary, bind_and_activate=False)
                servers_.append(server)
                server.server_bind()
                server.server_activate()
                port = server.server_address[1]
            break
        except OSError:
            for server in servers_:
                server.server_close()
    else:
        pytest.fail("no port free on every address")
    assert port != hubstack.hub_port
    for server in servers_:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield addresses, port
    for server in servers_:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def netns_canary(tmp_path_factory):
    """A network namespace routed from the host, with a TCP canary and a DNS server on 10.x and 169.254.x."""
    in_use = _sh("ip", "-4", "-o", "addr", "show")
    for host, _canary in (PRIVATE, LINK_LOCAL):
        assert f" {host}/" not in in_use, f"{host} is already on an interface (a canary left by a killed run?)"
    log = tmp_path_factory.mktemp("bltest-canary") / "dns.log"
    log.touch()
    script = log.with_name("canary.py")
    script.write_text(CANARY_SCRIPT)
    proc = None
    try:
        _sh("ip", "netns", "add", NETNS)
        _sh("ip", "link", "add", VETH, "type", "veth", "peer", "name", "eth0", "netns", NETNS)
        for host, canary in (PRIVATE, LINK_LOCAL):  # /24s: the host routes to both through the pair
            _sh("ip", "addr", "add", f"{host}/24", "dev", VETH)
            _sh("ip", "netns", "exec", NETNS, "ip", "addr", "add", f"{canary}/24", "dev", "eth0")
        _sh("ip", "link", "set", VETH, "up")
        _sh("ip", "netns", "exec", NETNS, "ip", "link", "set", "lo", "up")
        _sh("ip", "netns", "exec", NETNS, "ip", "link", "set", "eth0", "up")
        _sh("ip", "netns", "exec", NETNS, "ip", "route", "add", "default", "via", PRIVATE[0])
        proc = subprocess.Popen(
            ["ip", "netns", "exec", NETNS, sys.executable, str(script), PRIVATE[1], str(log)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout.readline().strip() == "ready"
        yield {"tcp": [(PRIVATE[1], CANARY_PORT), (LINK_LOCAL[1], CANARY_PORT)], "dns": PRIVATE[1], "log": log}
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        subprocess.run(["ip", "link", "del", VETH], capture_output=True)
        subprocess.run(["ip", "netns", "del", NETNS], capture_output=True)


def test_servers_reach_the_hub_and_nothing_else_on_this_host(hubstack, servers, host_canary):
    first, _ = servers
    addresses, port = host_canary
    targets = [(address, port) for address in addresses]
    assert [probe_from_host(*t) for t in targets] == ["open"] * len(targets), "the canaries answer the host"
    assert probe_from(first, targets) == ["refused"] * len(targets), targets
    # the one thing on this host a server needs: the hub's API (what jupyterhub-singleuser calls)
    code = textwrap.dedent(
        """
        import os, urllib.request
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        opener.open(os.environ["JUPYTERHUB_API_URL"] + "/", timeout=10).status
        """
    )
    assert run_code(first["url"], first["token"], code) == "200"
    assert hub.hub_url(hubstack) in run_code(
        first["url"], first["token"], "import os; os.environ['JUPYTERHUB_API_URL']"
    )


def test_a_server_cannot_reach_another_users_server_or_other_containers(hubstack, servers, docker_client):
    first, second = servers
    other = server_container(docker_client, hubstack, user_of(second))
    peer = (_ip(other), 8888)
    assert probe_from_host(*peer) == "open", "the other server listens (the host reaches it)"
    bystander = docker_client.containers.run(
        "binderlite/base:bookworm",
        ["python3", "-m", "http.server", "8000"],
        name=f"{TEST_PREFIX}bystander-{os.getpid()}",
        detach=True,
        remove=True,
    )
    try:
        elsewhere = (_ip(bystander), 8000)  # a container on Docker's default bridge
        deadline = time.monotonic() + 20
        while probe_from_host(*elsewhere) != "open" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert probe_from_host(*elsewhere) == "open"
        assert probe_from(first, [peer, elsewhere]) == ["refused", "refused"]
    finally:
        bystander.remove(force=True)


def test_servers_have_no_capabilities_and_no_new_privileges(hubstack, servers, docker_client):
    first, _ = servers
    code = textwrap.dedent(
        """
        status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
        ({k: status[k].strip() for k in ("Uid", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs")},
         open("/proc/1/comm").read().strip())
        """
    )
    status, init = ast.literal_eval(run_code(first["url"], first["token"], code))
    assert status["Uid"].split()[0] == "1000"
    for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[caps], 16) == 0, status
    assert status["NoNewPrivs"] == "1", status
    assert init == "docker-init", "an init process reaps what the server leaves behind"
    host_config = server_container(docker_client, hubstack, user_of(first)).attrs["HostConfig"]
    assert host_config["CapDrop"] == ["ALL"] and host_config["Init"] is True
    assert "no-new-privileges" in host_config["SecurityOpt"]
    assert host_config["NetworkMode"] == hubstack.server_network
    raw = textwrap.dedent(
        """
        import socket
        try:
            socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            r = "raw"
        except PermissionError:
            r = "denied"
        r
        """
    )
    assert run_code(first["url"], first["token"], raw) == "'denied'", "no NET_RAW: no spoofed packets"


def test_a_setuid_root_binary_gives_a_server_nothing(hubstack, settings, git_server, launch_image, docker_client):
    from binderlite.builds.pipeline import build_events
    from binderlite.links import resolve_link

    git_server.add_fixture("setuid-root")
    dockerfile = git_server.work / "setuid-root" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("FROM binderlite/base:bookworm", f"FROM {launch_image}"))
    git_server.commit("setuid-root", "build on a launchable image")
    events = [ev for ev in build_events(settings, resolve_link(git_server.link("setuid-root"), settings)) if ev]
    assert events[-1]["phase"] == "built", "".join(e.get("message", "") for e in events)[-3000:]
    image = events[-1]["imageName"]
    # the planted binary works: without no-new-privileges uid 1000 becomes root
    assert run_in_image(docker_client, image, "id -u; rootid -u").split() == ["1000", "0"]
    ready = launch_ready(hubstack, image, name="bltest/setuid")
    code = "import subprocess; subprocess.run(['rootid', '-u'], capture_output=True, text=True).stdout.strip()"
    assert run_code(ready["url"], ready["token"], code) == "'1000'"


def test_internal_and_link_local_networks_are_refused_by_the_kernel(hubstack, servers, netns_canary):
    first, _ = servers
    server_bridge = dockernet.bridge_name(hubstack.server_network)
    to_host, through = dockernet.chain_names(server_bridge)
    # the rules: the bridge's own jump, before Docker's RETURN, and every internal range refused
    docker_user = _chain(4, "DOCKER-USER")
    assert f"-A DOCKER-USER -i {server_bridge} -j {through}" in docker_user
    assert docker_user[-1] == "-A DOCKER-USER -j RETURN", "others' traffic is returned to Docker's rules"
    assert f"-A INPUT -i {server_bridge} -j {to_host}" in _chain(4, "INPUT")
    forward = _chain(4, through)
    for network in ("169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"):
        assert f"-A {through} -d {network} -p tcp -j REJECT --reject-with tcp-reset" in forward, network
    assert f"-A {through} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN" == forward[1], "replies first"
    assert _chain(4, to_host)[-2:] == [
        f"-A {to_host} -p tcp -j REJECT --reject-with tcp-reset",
        f"-A {to_host} -j REJECT --reject-with icmp-port-unreachable",
    ]
    assert f"-A {through} -d fe80::/10 -p tcp -j REJECT --reject-with tcp-reset" in _chain(6, through)
    # and the kernel applies them: the canaries answer the host, not a server
    targets = netns_canary["tcp"]
    assert [probe_from_host(*t) for t in targets] == ["open", "open"]
    assert probe_from(first, targets) == ["refused", "refused"]


def test_dns_works_on_the_servers_network_and_goes_through_its_rules(hubstack, servers, netns_canary, docker_client):
    first, second = servers
    # Docker's embedded DNS server answers in the server's namespace (here: another container's name)
    assert "nameserver 127.0.0.11" in run_code(first["url"], first["token"], "open('/etc/resolv.conf').read()")
    other = server_container(docker_client, hubstack, user_of(second))
    looked_up = run_code(first["url"], first["token"], f"import socket; socket.gethostbyname({other.name!r})")
    assert looked_up == repr(_ip(other))
    # it forwards other names from the container's namespace, so the host's resolvers are let through
    bridge = dockernet.bridge_name(hubstack.server_network)
    for chain in dockernet.chain_names(bridge):
        rules = _chain(4, chain)
        for resolver in [r for r in resolvers() if ":" not in r and not r.startswith("127.")]:
            assert f"-A {chain} -d {resolver}/32 -p udp -m udp --dport 53 -j RETURN" in rules
    # shown with a resolver the test controls (no query leaves this machine): refused until the rules allow it
    lookup = "getent hosts canary.test || echo unresolved; grep -c 127.0.0.11 /etc/resolv.conf"
    canary = netns_canary["dns"]

    def resolve_with_canary() -> list[str]:
        out = docker_client.containers.run(
            "binderlite/base:bookworm",
            ["sh", "-c", lookup],
            network=hubstack.server_network,
            dns=[canary],
            name=f"{TEST_PREFIX}dns-{os.getpid()}-{time.monotonic_ns()}",
            remove=True,
        )
        return out.decode().split()

    assert resolve_with_canary() == ["unresolved", "1"]
    assert "canary.test" not in netns_canary["log"].read_text(), "the query never reached the canary"
    server, build = dockernet.confinements(hubstack, hub.hub_ip(hubstack))
    allowed = dockernet.Confinement(server.bridge, server.endpoints, (canary,))
    try:
        dockernet.install([allowed, build], 4, hubstack.blocked_networks)
        assert resolve_with_canary() == [canary, "canary.test", "1"]
        assert "canary.test" in netns_canary["log"].read_text()
    finally:
        dockernet.ensure_networks(hubstack, force=True)
    assert resolve_with_canary() == ["unresolved", "1"], "the rules are back"
    assert requests.get(hub.hub_url(hubstack) + "/hub/api/", timeout=10).status_code == 200


def test_build_steps_on_the_build_network_reach_the_package_index_and_nothing_else_inside(
    hubstack, host_canary, netns_canary, docker_client
):
    """The network half of the builds' isolation: a legacy-builder step on ``build_network``."""
    addresses, port = host_canary
    index = dockernet.bridge_address(hubstack.build_network)  # e.g. a local index on the builds' gateway
    assert index in addresses
    with_index = hubstack.with_overrides(package_index_url=f"http://{index}:{port}/simple/")
    targets = [(index, port), ("172.17.0.1", port), (hub.hub_ip(hubstack), hubstack.hub_port), *netns_canary["tcp"]]
    program = f"{PROBE}\nprint('PROBED', [probe(host, port) for host, port in {targets!r}])"
    dockerfile = f"FROM binderlite/base:bookworm\nRUN {json.dumps(['python3', '-c', program])}\n"
    tag = f"{TEST_PREFIX}buildnet-{os.getpid()}"
    try:
        dockernet.ensure_networks(with_index, force=True)
        _image, logs = docker_client.images.build(
            fileobj=io.BytesIO(dockerfile.encode()),
            tag=tag,
            network_mode=hubstack.build_network,
            nocache=True,
            rm=True,
            forcerm=True,
        )
    finally:
        dockernet.ensure_networks(hubstack, force=True)
        try:
            docker_client.images.remove(tag, force=True)
        except docker.errors.ImageNotFound:
            pass
    output = "".join(chunk.get("stream", "") for chunk in logs)
    probed = ast.literal_eval(output.split("PROBED ", 1)[1].splitlines()[0])
    assert probed == ["open", "refused", "refused", "refused", "refused"], list(zip(targets, probed, strict=True))
