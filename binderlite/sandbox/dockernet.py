"""binderlite's own Docker networks for servers and builds, and the kernel's rules that confine them.

Users' servers run on ``server_network`` and build steps on ``build_network``:
user-defined bridges with traffic between containers off
(``com.docker.network.bridge.enable_icc=false``), labelled
``binderlite.managed=1``, whose Linux bridge has a fixed name
(``bridge_name``: ``binderlite-servers`` → ``bl-servers``) so that rules can
name it. For each bridge two chains (and their ip6tables twins), checked at
connect time, refuse what its containers may not reach:

- ``BINDERLITE-<NAME>-IN``, entered from ``INPUT`` for traffic from the bridge
  to this host itself: everything is refused except replies, DNS to the
  host's resolvers and the endpoints the network needs — for servers the hub;
  for both the configured package indexes, CRAN mirror and HTTP(S) proxies (servers get
  them too: their images and environment name them); for builds the workshop's local
  package index, on the host's address on their network.
- ``BINDERLITE-<NAME>-FWD``, entered from ``DOCKER-USER`` (``FORWARD`` where
  Docker made no such chain, as for IPv6): the internal networks of
  ``netrules`` — loopback, link-local (cloud metadata), private, shared,
  reserved and ``blocked_networks`` — are refused, the same endpoints
  excepted; that also keeps containers from each other and from other Docker
  networks. The internet stays reachable, as on mybinder.org.

Docker's embedded DNS server (127.0.0.11) answers in the container's
namespace and, on Docker 20.10, forwards from there too: the host's
resolvers, often on private addresses, must be let through on port 53.

The chains are replaced atomically (``iptables-restore --noflush``); the
jumps into them match only binderlite's bridges (``-i <bridge>``) and are
inserted once, so the host's other traffic never meets these rules, and
``DOCKER-USER`` still ends by returning.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import ipaddress
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import docker.errors
from docker import DockerClient

from binderlite.dockerutil import docker_client
from binderlite.errors import ConfigError, DockerUnavailableError
from binderlite.sandbox.netrules import (
    blocked_networks,
    ensure_jump,
    ipv6_in_use,
    proxy_endpoints,
    reject_rules,
    resolvers,
    restore_chains,
    run_tool,
    tool,
    url_endpoints,
)
from binderlite.settings import Settings

ICC_OPTION = "com.docker.network.bridge.enable_icc"
BRIDGE_OPTION = "com.docker.network.bridge.name"
MANAGED_LABEL = "binderlite.managed"
BRIDGE_PREFIX = "bl-"
MAX_INTERFACE_NAME = 15  # Linux's IFNAMSIZ, less the final NUL
SYSTEMD_RESOLV_CONF = Path("/run/systemd/resolve/resolv.conf")
SIOCGIFADDR = 0x8915
RECHECK_SECONDS = 30.0
WHAT = "the rules of binderlite's Docker networks"

_checked: dict[tuple, float] = {}
_lock = threading.Lock()

Endpoint = tuple[str, int]  # (IP address, TCP port); an unspecified address means any address of this host


def bridge_name(network: str) -> str:
    """The Linux bridge of a binderlite network: ``binderlite-servers`` → ``bl-servers``, ≤ 15 characters.

    A name that does not fit (or has other characters than ``a-z0-9-``) is
    shortened and given a digest of the whole name, so two installs with
    different network names never share a bridge.
    """
    base = network.removeprefix("binderlite-")
    clean = re.sub(r"[^a-z0-9-]", "", base.lower())
    if clean == base and len(BRIDGE_PREFIX + clean) <= MAX_INTERFACE_NAME:
        return BRIDGE_PREFIX + clean
    digest = hashlib.sha256(network.encode()).hexdigest()[:5]
    return f"{BRIDGE_PREFIX}{clean[:6]}-{digest}"


def chain_names(bridge: str) -> tuple[str, str]:
    """The chains for traffic from ``bridge`` to this host (INPUT) and through it (FORWARD)."""
    stem = "BINDERLITE-" + bridge.removeprefix(BRIDGE_PREFIX).upper()
    return f"{stem}-IN", f"{stem}-FWD"


@dataclass(frozen=True)
class Confinement:
    """What the containers on one bridge may reach besides the internet."""

    bridge: str
    endpoints: tuple[Endpoint, ...]  # TCP endpoints, on this host or on internal networks
    dns: tuple[str, ...]  # resolvers Docker's embedded DNS server forwards to

    def _allowed(self, family: int, forward: bool) -> list[str]:
        rules = ["-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"]
        for address in self.dns:
            if ipaddress.ip_address(address).version == family:
                rules += [f"-d {address} -p udp --dport 53 -j RETURN", f"-d {address} -p tcp --dport 53 -j RETURN"]
        for address, port in self.endpoints:
            ip = ipaddress.ip_address(address)
            if ip.is_unspecified and not forward:
                rules.append(f"-p tcp --dport {port} -j RETURN")
            elif not ip.is_unspecified and ip.version == family:
                rules.append(f"-d {ip} -p tcp --dport {port} -j RETURN")
        return list(dict.fromkeys(rules))

    def chains(self, family: int, extra: str = "") -> dict[str, list[str]]:
        """Both chains' rules for one address family (pure: unit-tested without iptables)."""
        to_host, through = chain_names(self.bridge)
        v4, v6 = blocked_networks(extra)
        refused = [rule for network in (v4 if family == 4 else v6) for rule in reject_rules(family, f"-d {network}")]
        return {
            to_host: self._allowed(family, forward=False) + reject_rules(family),
            through: self._allowed(family, forward=True) + refused,
        }

    def jumps(self, forward_chain: str) -> list[list[str]]:
        """The rules that send this bridge's traffic into its chains (nothing else's)."""
        to_host, through = chain_names(self.bridge)
        return [["INPUT", "-i", self.bridge, "-j", to_host], [forward_chain, "-i", self.bridge, "-j", through]]


def restore_input(confinements: list[Confinement], family: int, extra: str = "") -> str:
    """iptables-restore input that replaces every chain of ``confinements`` at once."""
    chains: dict[str, list[str]] = {}
    for confinement in confinements:
        chains.update(confinement.chains(family, extra))
    lines = ["*filter", *(f":{name} - [0:0]" for name in chains)]
    for name, rules in chains.items():
        lines += [f"-A {name} {rule}" for rule in rules]
    return "\n".join([*lines, "COMMIT", ""])


def docker_resolvers() -> list[str]:
    """The DNS servers Docker's embedded resolver forwards to (a loopback stub's upstreams, as Docker does)."""
    found = [a for a in resolvers() if not ipaddress.ip_address(a).is_loopback]
    if not found:
        found = [a for a in resolvers(SYSTEMD_RESOLV_CONF) if not ipaddress.ip_address(a).is_loopback]
    return found


def host_endpoints(host: str, port: int) -> list[Endpoint]:
    """(address, port) for a host name or address, resolved now."""
    try:
        return [(str(ipaddress.ip_address(host)), port)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        return []
    return sorted({(info[4][0], port) for info in infos})


def index_endpoints(settings: Settings) -> list[Endpoint]:
    """(address, port) of the configured package indexes and CRAN mirror (empty: PyPI, on the internet)."""
    return url_endpoints([settings.package_index_url, *settings.extra_index_url.split(), settings.cran_mirror_url])


def workshop_index_endpoints(settings: Settings, build_gateway: str | None) -> list[Endpoint]:
    """The workshop's local package index, on the host's address on the builds' network (unless 'never')."""
    if settings.workshop_index == "never" or not build_gateway:
        return []
    return [(build_gateway, settings.workshop_index_port)]


def confinements(settings: Settings, server_gateway: str, build_gateway: str | None = None) -> list[Confinement]:
    """The servers' and the builds' confinement, from settings and the networks' gateways.

    Only builds reach the workshop's index: servers install nothing from it.
    """
    dns = tuple(docker_resolvers())
    shared = tuple(sorted(set(index_endpoints(settings)) | set(proxy_endpoints(settings))))
    hub = tuple(host_endpoints(settings.hub_ip or server_gateway, settings.hub_port))
    workshop = tuple(workshop_index_endpoints(settings, build_gateway))
    return [
        Confinement(bridge_name(settings.server_network), hub + shared, dns),
        Confinement(bridge_name(settings.build_network), shared + workshop, dns),
    ]


# ---- Docker's side ---------------------------------------------------------


def gateway(attrs: dict) -> str | None:
    """The host's address on a network, from ``docker network inspect``."""
    for config in (attrs.get("IPAM") or {}).get("Config") or []:
        if config.get("Gateway"):
            return config["Gateway"].split("/")[0]
        if config.get("Subnet"):
            return str(ipaddress.ip_network(config["Subnet"])[1])  # Docker's choice when none is given
    return None


def _find(client: DockerClient, name: str) -> dict | None:
    try:
        attrs = client.api.inspect_network(name)
    except docker.errors.NotFound:
        return None
    return attrs if attrs.get("Name") == name else None


def ensure_network(client: DockerClient, name: str) -> str:
    """Create the network if missing, check it if not; return the host's address on it.

    A network of that name made otherwise (inter-container traffic on, another
    bridge name) is refused rather than used: the rules would not hold on it.
    """
    bridge = bridge_name(name)
    attrs = _find(client, name)
    if attrs is None:
        try:
            client.api.create_network(
                name,
                driver="bridge",
                options={ICC_OPTION: "false", BRIDGE_OPTION: bridge},
                labels={MANAGED_LABEL: "1"},
                check_duplicate=True,
            )
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: another process made it meanwhile
                raise ConfigError(f"Could not create the Docker network {name}: {exc.explanation}") from None
        attrs = _find(client, name) or {}
    options = attrs.get("Options") or {}
    if attrs.get("Driver") != "bridge" or options.get(ICC_OPTION) != "false" or options.get(BRIDGE_OPTION) != bridge:
        raise ConfigError(
            f"The Docker network {name} exists but is not binderlite's (it needs driver bridge, {ICC_OPTION}=false "
            f"and {BRIDGE_OPTION}={bridge}). Remove it (`docker network rm {name}`, after removing its containers) "
            "and binderlite creates it, or name another network in the settings."
        )
    address = gateway(attrs)
    if address is None:
        raise ConfigError(f"The Docker network {name} has no IPv4 subnet; remove it and binderlite creates it.")
    return address


def bridge_address(network: str) -> str | None:
    """The host's IPv4 address on the network's bridge, asked of the kernel (works while Docker does not answer)."""
    request = struct.pack("256s", bridge_name(network).encode())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            answer = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, request)
        except OSError:
            return None
    return socket.inet_ntoa(answer[20:24])


# ---- the kernel's side -----------------------------------------------------


@functools.lru_cache(maxsize=8)
def _cached_gateway(docker_host: str, network: str) -> str:
    """The network's gateway, the network made if missing (cached); raises when Docker does not answer: not cached."""
    client = docker_client(Settings(docker_host=docker_host), timeout=10)
    try:
        return ensure_network(client, network)
    finally:
        client.close()


def network_gateway(settings: Settings, network: str) -> str | None:
    """The host's address on one of binderlite's networks (made if missing), looked up once per process.

    When Docker does not answer, the kernel still knows the address of the
    network's bridge; None when neither knows it.
    """
    try:
        return _cached_gateway(settings.docker_host, network)
    except (DockerUnavailableError, docker.errors.DockerException):
        return bridge_address(network)


def _forward_chain(family: int) -> str:
    """DOCKER-USER where Docker made it (Docker's rules come after it), else FORWARD itself."""
    exists = run_tool([tool(family, "iptables"), "-w", "-n", "-L", "DOCKER-USER"]).returncode == 0
    return "DOCKER-USER" if exists else "FORWARD"


def install(wanted: list[Confinement], family: int, extra: str = "") -> None:
    """Replace the chains at once, then make sure the jumps into them are there."""
    restore_chains(family, restore_input(wanted, family, extra), WHAT)
    forward = _forward_chain(family)
    for confinement in wanted:
        for jump in confinement.jumps(forward):
            ensure_jump(family, jump, WHAT)


def ensure_networks(settings: Settings, force: bool = False) -> None:
    """Make sure both networks exist as binderlite needs them and the kernel confines them.

    Run before the hub starts (``binderlite up``, the hub's config) and before
    each spawn; the rules are rewritten at most every ``RECHECK_SECONDS`` per
    process unless ``force`` (the host may have flushed them meanwhile).
    """
    client = docker_client(settings, timeout=30)
    try:
        server_gateway = ensure_network(client, settings.server_network)
        build_gateway = ensure_network(client, settings.build_network)
    finally:
        client.close()
    wanted = confinements(settings, server_gateway, build_gateway)
    key = (tuple(wanted), settings.blocked_networks)
    with _lock:
        if not force and time.monotonic() - _checked.get(key, -RECHECK_SECONDS) < RECHECK_SECONDS:
            return
        install(wanted, 4, settings.blocked_networks)
        try:
            install(wanted, 6, settings.blocked_networks)
        except ConfigError:
            if ipv6_in_use():
                raise
        _checked[key] = time.monotonic()
