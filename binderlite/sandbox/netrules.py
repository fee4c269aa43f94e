"""The kernel's rules for the sandbox users: no connection to internal addresses, checked at connect time.

Two iptables chains (and their ip6tables twins), entered from ``OUTPUT`` for
the sandbox users by owner match:

- ``BINDERLITE-SANDBOX`` for the strict user: loopback, link-local (cloud
  metadata), private, shared, multicast and reserved networks, and their
  IPv4-mapped, NAT64 and 6to4 forms, are refused at once (a TCP reset, not a
  hang). The host's DNS resolvers (port 53) and the configured HTTP(S)
  proxies are let through, since a fetch needs them.
- ``BINDERLITE-SANDBOX-LOCAL`` for the user that fetches when
  ``allow_local_repos`` is on: only link-local (cloud metadata) is refused.

The chains are replaced atomically (``iptables-restore --noflush``), at most
every ``RECHECK_SECONDS`` per process (resolvers and proxies may change). A
fetch never starts without them (fail closed). ``dockernet`` confines the
Docker networks of servers and builds with the same address lists and helpers.
"""

from __future__ import annotations

import ipaddress
import pwd
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from binderlite.errors import ConfigError
from binderlite.sandbox.process import ensure_user, sandbox_user
from binderlite.settings import Settings, proxy_environment

STRICT_CHAIN = "BINDERLITE-SANDBOX"
LOCAL_CHAIN = "BINDERLITE-SANDBOX-LOCAL"
RECHECK_SECONDS = 30.0

BLOCKED_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT (shared address space)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local: cloud metadata services live here
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
    )
)
BLOCKED_V6_NATIVE = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/128",
        "::1/128",
        "::ffff:0:0/96",  # IPv4-mapped
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard
        "2001::/32",  # Teredo
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "ff00::/8",  # multicast
    )
)
LINK_LOCAL = (ipaddress.IPv4Network("169.254.0.0/16"), ipaddress.IPv6Network("fe80::/10"))
NAT64_PREFIX = int(ipaddress.IPv6Address("64:ff9b::"))
SIX_TO_FOUR_PREFIX = 0x2002 << 112

_checked: dict[tuple, float] = {}
_lock = threading.Lock()


def embedded_v6(network: ipaddress.IPv4Network) -> list[ipaddress.IPv6Network]:
    """The NAT64 (64:ff9b::/96) and 6to4 (2002::/16) forms of an IPv4 network."""
    address = int(network.network_address)
    return [
        ipaddress.IPv6Network((NAT64_PREFIX | address, 96 + network.prefixlen)),
        ipaddress.IPv6Network((SIX_TO_FOUR_PREFIX | address << 80, 16 + network.prefixlen)),
    ]


def blocked_networks(extra: str = "") -> tuple[list[ipaddress.IPv4Network], list[ipaddress.IPv6Network]]:
    """Every network the strict sandbox may not reach, IPv4 and IPv6 (``extra``: comma-separated CIDRs)."""
    v4, v6 = list(BLOCKED_V4), list(BLOCKED_V6_NATIVE)
    for text in filter(None, (part.strip() for part in extra.split(","))):
        network = ipaddress.ip_network(text, strict=False)
        (v4 if network.version == 4 else v6).append(network)
    for network in list(v4):
        v6.extend(embedded_v6(network))
    return v4, v6


def is_blocked(address: str, extra: str = "") -> bool:
    """True if the strict sandbox may not connect to ``address`` (an IP literal)."""
    ip = ipaddress.ip_address(address)
    v4, v6 = blocked_networks(extra)
    return any(ip in network for network in (v4 if ip.version == 4 else v6))


def resolvers(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[str]:
    """The DNS servers this host uses (a fetch must reach them, wherever they are)."""
    found = []
    try:
        lines = resolv_conf.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                found.append(str(ipaddress.ip_address(parts[1].split("%")[0])))
            except ValueError:
                continue
    return found


def url_endpoints(urls: list[str]) -> list[tuple[str, int]]:
    """(address, port) of every host the URLs name, resolved now (a host that does not resolve is left out)."""
    endpoints = set()
    for url in urls:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        try:
            host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:  # a port that is not a number
            continue
        if not host:
            continue
        try:
            infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
        except socket.gaierror:
            continue
        endpoints.update((info[4][0], port) for info in infos)
    return sorted(endpoints)


def proxy_endpoints(settings: Settings) -> list[tuple[str, int]]:
    """(address, port) of every configured HTTP(S) proxy, resolved now."""
    urls = [url for key, url in proxy_environment(settings).items() if key.lower() != "no_proxy" and url]
    return url_endpoints(urls)


@dataclass(frozen=True)
class RuleSet:
    """The contents of both chains for one address family, as iptables-restore lines."""

    family: int  # 4 or 6
    strict: tuple[str, ...]
    local: tuple[str, ...]

    def restore_input(self) -> str:
        lines = ["*filter", f":{STRICT_CHAIN} - [0:0]", f":{LOCAL_CHAIN} - [0:0]"]
        lines += [f"-A {STRICT_CHAIN} {rule}" for rule in self.strict]
        lines += [f"-A {LOCAL_CHAIN} {rule}" for rule in self.local]
        return "\n".join([*lines, "COMMIT", ""])


def reject_rules(family: int, match: str = "") -> list[str]:
    """Refuse what ``match`` selects at once: a TCP reset, an ICMP "port unreachable" for the rest."""
    other = "icmp-port-unreachable" if family == 4 else "icmp6-port-unreachable"
    match = f"{match} " if match else ""
    return [
        f"{match}-p tcp -j REJECT --reject-with tcp-reset",
        f"{match}-j REJECT --reject-with {other}",
    ]


def _reject(network, family: int) -> list[str]:
    return reject_rules(family, f"-d {network}")


def rule_set(family: int, dns: list[str], proxies: list[tuple[str, int]], extra: str = "") -> RuleSet:
    """The rules for one address family (pure: unit-tested without iptables)."""
    allowed = []
    for address in dns:
        if ipaddress.ip_address(address).version == family:
            allowed += [f"-d {address} -p udp --dport 53 -j RETURN", f"-d {address} -p tcp --dport 53 -j RETURN"]
    for address, port in proxies:
        if ipaddress.ip_address(address).version == family:
            allowed.append(f"-d {address} -p tcp --dport {port} -j RETURN")
    v4, v6 = blocked_networks(extra)
    blocked = v4 if family == 4 else v6
    strict = [rule for network in blocked for rule in _reject(network, family)]
    local = _reject(LINK_LOCAL[0 if family == 4 else 1], family)
    return RuleSet(family, tuple(allowed + strict), tuple(local))


def tool(family: int, name: str) -> str:
    """``iptables``/``iptables-restore`` or their IPv6 twins."""
    return name if family == 4 else name.replace("iptables", "ip6tables")


def run_tool(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise ConfigError(f"{argv[0]} is not installed; binderlite needs it: apt-get install iptables.") from None


def restore_chains(family: int, text: str, what: str) -> None:
    """Replace the chains ``text`` declares, all at once, leaving every other chain alone."""
    proc = run_tool([tool(family, "iptables-restore"), "-w", "--noflush"], text)
    if proc.returncode != 0:
        raise ConfigError(f"Could not install {what} (IPv{family}): {proc.stderr.strip()}")


def ensure_jump(family: int, rule: list[str], what: str) -> None:
    """Insert ``rule`` (e.g. ``["OUTPUT", "-m", …, "-j", CHAIN]``) first in its chain unless it is there."""
    if run_tool([tool(family, "iptables"), "-w", "-C", *rule]).returncode != 0:
        proc = run_tool([tool(family, "iptables"), "-w", "-I", *rule])
        if proc.returncode != 0:
            raise ConfigError(f"Could not install {what} (IPv{family}): {proc.stderr.strip()}")


def _install(rules: RuleSet, uids: dict[str, int]) -> None:
    what = "the sandbox's network rules"
    restore_chains(rules.family, rules.restore_input(), what)
    for chain, uid in ((STRICT_CHAIN, uids["strict"]), (LOCAL_CHAIN, uids["local"])):
        ensure_jump(rules.family, ["OUTPUT", "-m", "owner", "--uid-owner", str(uid), "-j", chain], what)


def ipv6_in_use() -> bool:
    """True if this host has an IPv6 address beyond loopback (else IPv6 rules are optional)."""
    try:
        return any(
            not line.split()[0].startswith("00000000000000000000000000000001")
            for line in Path("/proc/net/if_inet6").read_text().splitlines()
            if line.strip()
        )
    except OSError:
        return False


def ensure_rules(settings: Settings, force: bool = False) -> None:
    """Make sure both sandbox users exist and the kernel refuses their internal connections."""
    users: dict[str, pwd.struct_passwd] = {
        "strict": ensure_user(sandbox_user(settings, False)),
        "local": ensure_user(sandbox_user(settings, True)),
    }
    dns, proxies = resolvers(), proxy_endpoints(settings)
    key = (settings.sandbox_user, settings.blocked_networks, tuple(dns), tuple(proxies))
    with _lock:
        if not force and time.monotonic() - _checked.get(key, -RECHECK_SECONDS) < RECHECK_SECONDS:
            return
        uids = {kind: user.pw_uid for kind, user in users.items()}
        _install(rule_set(4, dns, proxies, settings.blocked_networks), uids)
        try:
            _install(rule_set(6, dns, proxies, settings.blocked_networks), uids)
        except ConfigError:
            if ipv6_in_use():
                raise
        _checked[key] = time.monotonic()
