"""A host "outside": a network namespace the test creates, joined to this machine by a veth pair.

Addresses come from TEST-NET-2 (198.51.100.0/24, never routed on the
internet), which binderlite does not treat as internal: a server there is a
stand-in for a public git host, so the tests can show what the sandbox's
kernel rules do when such a host redirects, or names a submodule, inside
this machine. Traffic stays on this machine.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class OutsideHost:
    namespace: str
    address: str  # the namespace's address, as the host sees it

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        """Start a process inside the namespace."""
        return subprocess.Popen(["ip", "netns", "exec", self.namespace, *argv], **kwargs)


@contextmanager
def outside_host(subnet: int = 0) -> Iterator[OutsideHost]:
    """A namespace at 198.51.100.<4k+2>, the host at .<4k+1> (a /30 each)."""
    tag = uuid.uuid4().hex[:6]
    namespace, host_end, ns_end = f"bltest-{tag}", f"blt{tag}h", f"blt{tag}n"
    host_ip, ns_ip = f"198.51.100.{4 * subnet + 1}", f"198.51.100.{4 * subnet + 2}"
    _ip("netns", "add", namespace)
    try:
        _ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        _ip("link", "set", ns_end, "netns", namespace)
        _ip("addr", "add", f"{host_ip}/30", "dev", host_end)
        _ip("link", "set", host_end, "up")
        _ip("-n", namespace, "addr", "add", f"{ns_ip}/30", "dev", ns_end)
        _ip("-n", namespace, "link", "set", ns_end, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        yield OutsideHost(namespace, ns_ip)
    finally:
        subprocess.run(["ip", "link", "del", host_end], capture_output=True)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
