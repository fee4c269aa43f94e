"""Classroom mode: the address attendees get, the room's quotas, the memory warning, and what they see."""

from __future__ import annotations

import re

import pytest
import segno

from binderlite.errors import ConfigError
from binderlite.services.status import Report, render
from binderlite.settings import Settings
from binderlite.web.app import create_app
from binderlite.workshop import classroom
from binderlite.workshop.classroom import Interface, Room
from binderlite.workshop.manifest import Manifest, PreparedLink, save_manifest

GIB = 1024**3
LAPTOP = [
    Interface("lo", "127.0.0.1"),
    Interface("docker0", "172.17.0.1"),
    Interface("br-1a2b3c", "172.18.0.1"),
    Interface("eth0", "10.1.2.3"),
    Interface("wlan0", "192.168.4.20"),
]
ROUTES = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
wlan0\t00000000\t0104A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
wlan0\t0004A8C0\t00000000\t0001\t0\t0\t600\t00FFFFFF\t0\t0\t0
"""


def test_the_default_routes_interface_is_the_rooms():
    assert classroom.default_route_interface(ROUTES) == "wlan0"
    assert classroom.choose_address(Settings(), LAPTOP, "wlan0") == "192.168.4.20"


def test_without_a_default_route_the_first_interface_that_is_not_loopback_or_dockers():
    assert classroom.default_route_interface(ROUTES.splitlines()[0] + "\n") is None
    assert classroom.choose_address(Settings(), LAPTOP, "") == "10.1.2.3"
    assert classroom.choose_address(Settings(), LAPTOP, "docker0") == "10.1.2.3"


def test_the_setting_wins_over_the_interfaces():
    assert classroom.choose_address(Settings(classroom_address="127.0.0.2"), LAPTOP, "wlan0") == "127.0.0.2"


def test_no_reachable_interface_is_a_clear_error():
    with pytest.raises(ConfigError, match="no network interface attendees could reach.*set classroom_address"):
        classroom.choose_address(Settings(), LAPTOP[:3], "")


def test_an_address_that_is_not_one_is_refused():
    with pytest.raises(ConfigError, match="classroom_address 'laptop.local' is not an IP address"):
        classroom.choose_address(Settings(classroom_address="laptop.local"), LAPTOP, "")


def workshop(attendees: int, images: int = 1) -> Manifest:
    """A manifest of ``images`` prepared links (and base images, which the pool never keeps)."""
    links = tuple(
        PreparedLink(f"gh/org/r{i}/main", "gh", f"org/r{i}/main", "u", "main", "c", "s", "r", "b", "git", f"i{i}:c")
        for i in range(images)
    )
    return Manifest(links=links, attendees=attendees, images=("binderlite/base:bookworm", "binderlite/stage:x"))


def test_quotas_hold_every_attendee_and_the_warm_pool():
    settings = Settings(total_quota=20, launch_rate_limit=30, warm_pool_size=10)
    room = classroom.size_room(settings, workshop(30), "http://10.1.2.3:8585/", 128 * GIB)
    assert (room.attendees, room.pool, room.servers) == (30, 10, 40)
    assert room.total_quota == 40
    assert room.launch_rate_limit == 90  # three launches per attendee per period, at once
    assert room.warning == ""


def test_a_larger_configured_quota_and_no_limit_stay():
    settings = Settings(total_quota=0, launch_rate_limit=500, warm_pool_size=0)
    room = classroom.size_room(settings, workshop(30), "http://x:1/", 64 * GIB)
    assert (room.total_quota, room.launch_rate_limit, room.pool) == (0, 500, 0)


def test_the_automatic_pool_is_the_attendees_for_each_image():
    assert classroom.pool_servers(Settings(warm_pool_size=-1), workshop(12, images=2)) == 24
    assert classroom.pool_servers(Settings(warm_pool_size=-1), None) == 0
    assert classroom.pool_servers(Settings(warm_pool_size=3, warm_pool_images="a,b,c"), None) == 9


def test_without_a_manifest_quotas_stay_as_configured():
    room = classroom.size_room(Settings(total_quota=64), None, "http://x:1/", 24 * GIB)
    assert (room.attendees, room.total_quota, room.warning) == (0, 64, "")


def test_memory_warning_names_the_numbers_and_what_to_do():
    warning = classroom.memory_warning(40, "2G", 24 * GIB)
    assert warning == (
        "40 servers at memory_limit 2G need up to 80.0 GiB, but this machine has 24.0 GiB (2 GiB kept for the "
        "system and binderlite), room for 11: set memory_limit to 512M or less, or expect fewer attendees."
    )
    assert classroom.memory_warning(11, "2G", 24 * GIB) == ""


def test_entering_the_room_moves_the_web_app_and_proxy_and_is_recorded(tmp_path):
    settings = Settings(state_dir=str(tmp_path), classroom_address="127.0.0.2", web_port=18585, warm_pool_size=0)
    save_manifest(settings, workshop(25))
    served, room = classroom.enter(settings, total_memory=16 * GIB)
    assert (served.web_host, served.proxy_ip) == ("127.0.0.2", "127.0.0.2")
    assert served.binder_launch_host == room.url == "http://127.0.0.2:18585/"
    assert served.total_quota == 64 and served.launch_rate_limit == 75
    assert "25 servers at memory_limit 2G" in room.warning
    assert classroom.current_room(settings) == room
    text = classroom.announce(room)
    assert text.splitlines()[0] == "Classroom: attendees open http://127.0.0.2:18585/"
    assert "Sized for 25 attendees and 0 warm servers: total_quota 64, launch_rate_limit 75" in text
    assert "Warning: 25 servers" in text
    classroom.leave(settings)
    assert classroom.current_room(settings) is None


def test_status_shows_the_room_and_its_warning_without_calling_it_down():
    room = Room("http://10.1.2.3:8585/", 30, 10, 40, 40, 90, "40 servers at memory_limit 2G need up to 80.0 GiB")
    report = Report([], "http://10.1.2.3:8000/", room.url, {"ok": True, "count": 0, "servers": []},
                    {"running": 0, "queued": 0, "active": [], "error": ""},
                    {"percent_used": 10, "path": "/", "high_water": 85, "low_water": 70, "error": ""}, None,
                    classroom=room.__dict__, warnings=[room.warning])  # fmt: skip
    text = render(report, now=0)
    assert report.ok
    assert "  warning: 40 servers at memory_limit 2G need up to 80.0 GiB" in text
    assert "classroom   http://10.1.2.3:8585/ (30 attendees, 10 warm; total_quota 40)" in text


def test_the_landing_page_shows_the_url_and_its_qr_code_in_classroom_mode(tmp_path):
    url = "http://127.0.0.2:18585/"
    app = create_app(Settings(state_dir=str(tmp_path), classroom=True, binder_launch_host=url))
    page = app.test_client().get("/").get_data(as_text=True)
    assert f'<a id="classroom-url" href="{url}">{url}</a>' in page
    svg = re.search(r'<div id="classroom-qr"[^>]*>(<svg.*?</svg>)</div>', page, re.S)
    assert svg and svg.group(1) == segno.make(url, error="m").svg_inline(scale=6, border=2, dark="#000", light="#fff")


def test_the_landing_page_has_no_classroom_card_otherwise(tmp_path):
    page = create_app(Settings(state_dir=str(tmp_path))).test_client().get("/").get_data(as_text=True)
    assert "classroom" not in page
