"""Classroom mode: serve attendees on the local network, sized for the room.

``enter`` picks the address attendees reach this machine on
(``classroom_address``, else the address of the default route's interface,
else of the first interface that is neither loopback nor Docker's), makes
the web app and the proxy listen there, sizes the quotas from the workshop
manifest's expected attendees, and warns when the machine's memory cannot
hold that many servers at ``memory_limit``. What it decided is kept in
``<run_dir>/classroom.json`` while ``up`` runs, for ``binderlite status``.
The URL is shown as a QR code (segno: pure Python, no native library to
install on a laptop that may be offline) in the terminal and on the landing page.
"""

from __future__ import annotations

import dataclasses
import fcntl
import functools
import io
import ipaddress
import json
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

import segno

from binderlite.errors import ConfigError
from binderlite.settings import Settings, parse_size
from binderlite.workshop.manifest import Manifest, load_manifest
from binderlite.workshop.warmpool import machine_memory, wanted_per_image

GIB = 1024**3
MIB = 1024**2
SYSTEM_RESERVE = 2 * GIB  # memory kept for the OS, Docker, the hub, the web app and the builds
LAUNCHES_PER_ATTENDEE = 3  # launch rate limit per attendee and period: a retry or two each, all at once
NOT_A_ROOM = ("lo", "docker", "br-", "veth", "virbr")  # interfaces attendees never reach (loopback, Docker's)
SIOCGIFADDR = 0x8915
STATE_FILE = "classroom.json"


@dataclass(frozen=True)
class Interface:
    name: str
    address: str


@dataclass(frozen=True)
class Room:
    """What classroom mode decided: where attendees go, how many servers, and any memory warning."""

    url: str
    attendees: int
    pool: int
    servers: int  # attendees + pool: what the machine should hold at once
    total_quota: int
    launch_rate_limit: int
    warning: str = ""


def interface_address(name: str) -> str | None:
    """The IPv4 address of interface ``name``, None when it has none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def interfaces() -> list[Interface]:
    """This machine's interfaces that have an IPv4 address, in the kernel's order."""
    found = [(name, interface_address(name)) for _, name in socket.if_nameindex()]
    return [Interface(name, address) for name, address in found if address]


def default_route_interface(route_table: str | None = None) -> str | None:
    """The interface of the IPv4 default route (from ``/proc/net/route``), None when there is none."""
    if route_table is None:
        try:
            route_table = Path("/proc/net/route").read_text()
        except OSError:
            return None
    for line in route_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[1] == "00000000" and fields[7] == "00000000":
            return fields[0]
    return None


def choose_address(settings: Settings, found: list[Interface] | None = None, default: str | None = None) -> str:
    """The address attendees reach this machine on; ConfigError when there is none."""
    if settings.classroom_address:
        try:
            return str(ipaddress.ip_address(settings.classroom_address))
        except ValueError:
            raise ConfigError(
                f"classroom_address {settings.classroom_address!r} is not an IP address; set it to this "
                "machine's address on the room's network (see `ip -brief address`)."
            ) from None
    found = interfaces() if found is None else found
    default = default_route_interface() if default is None else default
    for interface in found:
        if interface.name == default and not interface.name.startswith(NOT_A_ROOM):
            return interface.address
    for interface in found:
        if not interface.name.startswith(NOT_A_ROOM) and not ipaddress.ip_address(interface.address).is_loopback:
            return interface.address
    raise ConfigError(
        "Classroom mode found no network interface attendees could reach (only loopback and Docker's); "
        "connect this machine to the room's network (Wi-Fi, a cable or its own hotspot), or set classroom_address."
    )


def pool_servers(settings: Settings, manifest: Manifest | None) -> int:
    """Servers the warm pool keeps started: warm_pool_size (-1: the attendees) for each pooled image."""
    images = [i for i in settings.warm_pool_images.split(",") if i.strip()] or (manifest.links if manifest else [])
    return wanted_per_image(settings, manifest) * len(images)


def memory_warning(servers: int, memory_limit: str, total_memory: int) -> str:
    """A warning when ``servers`` servers at ``memory_limit`` do not fit this machine's memory, else ``""``."""
    per_server = parse_size(memory_limit, "memory_limit")
    usable = total_memory - SYSTEM_RESERVE
    if servers <= 0 or servers * per_server <= usable:
        return ""
    fit = max(usable // per_server, 0)
    suggest = max(usable // servers // (64 * MIB) * 64, 0)
    return (
        f"{servers} servers at memory_limit {memory_limit} need up to {servers * per_server / GIB:.1f} GiB, but "
        f"this machine has {total_memory / GIB:.1f} GiB ({SYSTEM_RESERVE / GIB:.0f} GiB kept for the system and "
        f"binderlite), room for {fit}: set memory_limit to {suggest}M or less, or expect fewer attendees."
    )


def web_url(settings: Settings, address: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{settings.web_port}/"


def size_room(settings: Settings, manifest: Manifest | None, url: str, total_memory: int) -> Room:
    """Quotas for the room: total_quota at least attendees + pool, a launch rate limit for everyone at once."""
    attendees = manifest.attendees if manifest else 0
    pool = pool_servers(settings, manifest)
    servers = attendees + pool
    quota = settings.total_quota and max(settings.total_quota, servers)
    rate = settings.launch_rate_limit and max(settings.launch_rate_limit, LAUNCHES_PER_ATTENDEE * attendees)
    return Room(
        url, attendees, pool, servers, quota, rate, memory_warning(servers, settings.memory_limit, total_memory)
    )


def enter(settings: Settings, total_memory: int | None = None) -> tuple[Settings, Room]:
    """The settings for serving the room (addresses, quotas) and what was decided; records it for status."""
    address = choose_address(settings)
    url = web_url(settings, address)
    room = size_room(settings, load_manifest(settings), url, machine_memory() if total_memory is None else total_memory)
    served = dataclasses.replace(
        settings,
        classroom=True,
        web_host=address,
        proxy_ip=address,
        binder_launch_host=url,
        total_quota=room.total_quota,
        launch_rate_limit=room.launch_rate_limit,
    )
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    (settings.run_dir / STATE_FILE).write_text(json.dumps(dataclasses.asdict(room), indent=2) + "\n")
    return served, room


def leave(settings: Settings) -> None:
    (settings.run_dir / STATE_FILE).unlink(missing_ok=True)


def current_room(settings: Settings) -> Room | None:
    """The room ``up --classroom`` is serving (for ``binderlite status``), None when not in classroom mode."""
    try:
        return Room(**json.loads((settings.run_dir / STATE_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def announce(room: Room) -> str:
    """What the terminal shows attendees: the URL, its QR code, the room's size and any warning."""
    out = io.StringIO()
    segno.make(room.url, error="m").terminal(out=out, compact=True, border=2)
    lines = [f"Classroom: attendees open {room.url}", out.getvalue().rstrip("\n")]
    if room.attendees:
        lines.append(
            f"Sized for {room.attendees} attendees and {room.pool} warm servers: total_quota "
            f"{room.total_quota or 'unlimited'}, launch_rate_limit {room.launch_rate_limit or 'unlimited'}"
        )
    else:
        lines.append("No expected attendees in a workshop manifest: quotas as configured.")
    if room.warning:
        lines.append(f"Warning: {room.warning}")
    return "\n".join(lines)


@functools.lru_cache(maxsize=4)
def qr_svg(url: str) -> str:
    """The URL as a QR code, an inline ``<svg>`` element for a page."""
    return segno.make(url, error="m").svg_inline(scale=6, border=2, dark="#000", light="#fff")
