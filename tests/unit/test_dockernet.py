"""The rules of binderlite's Docker networks, built as text (no iptables, no Docker)."""

from __future__ import annotations

import docker.errors
import pytest

from binderlite.errors import ConfigError
from binderlite.sandbox import dockernet
from binderlite.sandbox.dockernet import Confinement, bridge_name, chain_names
from binderlite.settings import Settings

HUB = ("172.18.0.1", 8081)
DNS = ("10.255.255.53", "fd00::53")


def servers(*endpoints) -> Confinement:
    return Confinement("bl-servers", (HUB, *endpoints), DNS)


def test_bridge_and_chain_names_follow_the_network_name():
    assert bridge_name("binderlite-servers") == "bl-servers"
    assert bridge_name("binderlite-builds") == "bl-builds"
    assert bridge_name("bltest-srv") == "bl-bltest-srv"
    assert chain_names("bl-servers") == ("BINDERLITE-SERVERS-IN", "BINDERLITE-SERVERS-FWD")


@pytest.mark.parametrize(
    "network",
    ["a-network-name-far-too-long-for-linux", "Binderlite-Servers", "lab_servers", "lab.servers", "x" * 12 + "y"],
)
def test_names_that_do_not_fit_get_a_digest_and_stay_within_kernel_limits(network):
    bridge = bridge_name(network)
    assert len(bridge) <= 15 and bridge.startswith("bl-")
    assert all(c.isascii() and (c.isalnum() or c == "-") for c in bridge)
    assert all(len(chain) <= 28 for chain in chain_names(bridge)), "iptables' longest chain name"
    assert bridge_name(network + "2") != bridge, "two installs with different networks never share a bridge"


def test_to_the_host_only_replies_dns_and_the_allowed_endpoints_then_everything_refused():
    rules = servers(("10.0.0.8", 3128)).chains(4)["BINDERLITE-SERVERS-IN"]
    assert rules == [
        "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        "-d 10.255.255.53 -p udp --dport 53 -j RETURN",
        "-d 10.255.255.53 -p tcp --dport 53 -j RETURN",
        "-d 172.18.0.1 -p tcp --dport 8081 -j RETURN",
        "-d 10.0.0.8 -p tcp --dport 3128 -j RETURN",
        "-p tcp -j REJECT --reject-with tcp-reset",
        "-j REJECT --reject-with icmp-port-unreachable",
    ]


def test_through_the_host_internal_networks_are_refused_and_nothing_else():
    rules = servers().chains(4, extra="93.184.216.0/24")["BINDERLITE-SERVERS-FWD"]
    assert rules[0] == "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN", "replies first"
    allowed = [r for r in rules if r.endswith("RETURN")]
    assert rules[: len(allowed)] == allowed, "everything allowed comes before every refusal"
    refused = {r.split()[1] for r in rules if "REJECT" in r}
    for network in ("169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"):
        assert network in refused
        assert f"-d {network} -p tcp -j REJECT --reject-with tcp-reset" in rules
    assert "93.184.216.0/24" in refused, "blocked_networks too"
    assert all(r.startswith("-d ") or "RETURN" in r for r in rules), "no catch-all: the internet stays reachable"


def test_ipv6_chains_cover_link_local_unique_local_and_embedded_ipv4():
    chains = servers().chains(6)
    through = chains["BINDERLITE-SERVERS-FWD"]
    for network in ("fe80::/10", "fc00::/7", "::1/128", "::ffff:0:0/96", "64:ff9b::a9fe:0/112"):
        assert f"-d {network} -j REJECT --reject-with icmp6-port-unreachable" in through, network
    assert "-d fd00::53 -p udp --dport 53 -j RETURN" in through
    assert not any("10.255.255.53" in r or "172.18.0.1" in r for r in through), "no IPv4 address in IPv6 rules"
    assert chains["BINDERLITE-SERVERS-IN"][-1] == "-j REJECT --reject-with icmp6-port-unreachable"


def test_a_hub_on_every_address_is_allowed_to_the_host_only():
    chains = Confinement("bl-servers", (("0.0.0.0", 8081),), ()).chains(4)
    assert "-p tcp --dport 8081 -j RETURN" in chains["BINDERLITE-SERVERS-IN"]
    assert not any("8081" in r for r in chains["BINDERLITE-SERVERS-FWD"]), "not a hole to port 8081 everywhere"


def test_restore_input_replaces_every_chain_in_one_transaction():
    builds = Confinement("bl-builds", (), DNS)
    text = dockernet.restore_input([servers(), builds], 4)
    lines = text.splitlines()
    assert lines[0] == "*filter" and lines[-1] == "COMMIT" and text.endswith("\n")
    declared = [line for line in lines if line.startswith(":")]
    assert declared == [
        ":BINDERLITE-SERVERS-IN - [0:0]",
        ":BINDERLITE-SERVERS-FWD - [0:0]",
        ":BINDERLITE-BUILDS-IN - [0:0]",
        ":BINDERLITE-BUILDS-FWD - [0:0]",
    ]
    rules = [line for line in lines if line.startswith("-")]
    assert all(line.startswith("-A BINDERLITE-") for line in rules), "only binderlite's own chains are touched"
    assert not any("8081" in line for line in lines if line.startswith("-A BINDERLITE-BUILDS")), "builds: no hub"


def test_jumps_match_only_the_bridge():
    assert servers().jumps("DOCKER-USER") == [
        ["INPUT", "-i", "bl-servers", "-j", "BINDERLITE-SERVERS-IN"],
        ["DOCKER-USER", "-i", "bl-servers", "-j", "BINDERLITE-SERVERS-FWD"],
    ]


def test_servers_reach_the_hub_and_both_networks_the_index_and_proxy(monkeypatch):
    monkeypatch.setattr(dockernet, "docker_resolvers", lambda: ["10.255.255.53"])
    settings = Settings(
        hub_port=18781,
        package_index_url="http://10.1.2.3:3141/root/pypi/+simple/",
        extra_index_url="https://192.168.7.7/simple http://10.9.9.9:8080/extra",
        http_proxy="http://10.0.0.8:3128",
        https_proxy="http://10.0.0.8:3128",
    )
    server, build = dockernet.confinements(settings, "172.18.0.1")
    shared = {("10.1.2.3", 3141), ("192.168.7.7", 443), ("10.9.9.9", 8080), ("10.0.0.8", 3128)}
    assert server.bridge == "bl-servers" and build.bridge == "bl-builds"
    assert set(server.endpoints) == shared | {("172.18.0.1", 18781)}
    assert set(build.endpoints) == shared, "builds never reach the hub"
    assert server.dns == build.dns == ("10.255.255.53",)
    explicit = dockernet.confinements(settings.with_overrides(hub_ip="192.0.2.2"), "172.18.0.1")[0]
    assert ("192.0.2.2", 18781) in explicit.endpoints and ("172.18.0.1", 18781) not in explicit.endpoints


def test_resolvers_are_the_ones_docker_forwards_to(monkeypatch, tmp_path):
    conf, upstream = tmp_path / "resolv.conf", tmp_path / "upstream.conf"
    conf.write_text("nameserver 127.0.0.53\noptions edns0\n")
    upstream.write_text("nameserver 10.0.0.2\nnameserver fd00::2\n")
    monkeypatch.setattr(dockernet, "SYSTEMD_RESOLV_CONF", upstream)
    real = dockernet.resolvers
    monkeypatch.setattr(dockernet, "resolvers", lambda path=conf: real(path))
    assert dockernet.docker_resolvers() == ["10.0.0.2", "fd00::2"], "systemd-resolved's stub: its upstreams"
    conf.write_text("nameserver 10.255.255.53\nnameserver 127.0.0.1\n")
    assert dockernet.docker_resolvers() == ["10.255.255.53"]


def test_gateway_from_inspect():
    assert dockernet.gateway({"IPAM": {"Config": [{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]}}) == (
        "172.18.0.1"
    )
    assert dockernet.gateway({"IPAM": {"Config": [{"Subnet": "172.19.0.0/16"}]}}) == "172.19.0.1"
    assert dockernet.gateway({"IPAM": {"Config": None}}) is None


class FakeAPI:
    """Just enough of docker's APIClient for ensure_network."""

    def __init__(self, existing: dict | None = None):
        self.networks = {existing["Name"]: existing} if existing else {}
        self.created: list[tuple] = []

    def inspect_network(self, name):
        if name not in self.networks:
            raise docker.errors.NotFound("no such network")
        return self.networks[name]

    def create_network(self, name, driver, options, labels, check_duplicate):
        self.created.append((name, driver, options, labels))
        ipam = {"Config": [{"Subnet": "172.30.0.0/16", "Gateway": "172.30.0.1"}]}
        self.networks[name] = {"Name": name, "Driver": driver, "Options": options, "Labels": labels, "IPAM": ipam}


class FakeClient:
    def __init__(self, api: FakeAPI):
        self.api = api


def test_a_missing_network_is_created_without_inter_container_traffic():
    api = FakeAPI()
    assert dockernet.ensure_network(FakeClient(api), "binderlite-servers") == "172.30.0.1"
    assert api.created == [
        (
            "binderlite-servers",
            "bridge",
            {"com.docker.network.bridge.enable_icc": "false", "com.docker.network.bridge.name": "bl-servers"},
            {"binderlite.managed": "1"},
        )
    ]
    assert dockernet.ensure_network(FakeClient(api), "binderlite-servers") == "172.30.0.1"
    assert len(api.created) == 1, "idempotent"


@pytest.mark.parametrize(
    "options",
    [
        {},  # made by hand: inter-container traffic on
        {"com.docker.network.bridge.enable_icc": "true", "com.docker.network.bridge.name": "bl-servers"},
        {"com.docker.network.bridge.enable_icc": "false", "com.docker.network.bridge.name": "br-other"},
    ],
)
def test_a_network_made_otherwise_is_refused_not_used(options):
    existing = {"Name": "binderlite-servers", "Driver": "bridge", "Options": options, "IPAM": {"Config": []}}
    with pytest.raises(ConfigError, match="docker network rm binderlite-servers"):
        dockernet.ensure_network(FakeClient(FakeAPI(existing)), "binderlite-servers")


def test_one_network_for_both_is_refused_when_settings_load():
    with pytest.raises(ConfigError, match="need networks of their own"):
        Settings(server_network="shared", build_network="shared")
