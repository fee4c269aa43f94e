"""Persistent homes without Docker: volume names, where the folder goes, the quota's words, the admin's table."""

import io
import re
import tarfile

import docker.errors
import pytest
from traitlets.config import Config

from binderlite.errors import BadInputError, ConfigError
from binderlite.hub import homes
from binderlite.hub.backends import configure_spawner
from binderlite.settings import Settings

SETTINGS = Settings(state_dir="/srv/bl", home_volume_prefix="bltest-home-", home_quota="1G")


def test_volume_names_are_valid_readable_and_distinct_per_user_and_server():
    names = {
        homes.volume_name(SETTINGS, user, server)
        for user, server in [("alice", "repo"), ("Alice", "repo"), ("alice", "repo2"), ("a.l@ice", ""), ("alice", "")]
    }
    assert len(names) == 5
    for name in names:
        assert re.fullmatch(r"bltest-home-[a-z0-9-]+-[0-9a-f]{10}", name), name
    assert homes.volume_name(SETTINGS, "alice", "").startswith("bltest-home-alice-default-")
    assert len(homes.volume_name(SETTINGS, "x" * 200, "y" * 200)) < 80


def test_the_folder_goes_inside_the_images_home():
    assert homes.mount_target(["PATH=/bin", "HOME=/home/jovyan"], "persistent") == "/home/jovyan/persistent"
    assert homes.mount_target(["HOME=/srv/user/"], "work/kept") == "/srv/user/work/kept"
    assert homes.mount_target([], "persistent") == "/home/jovyan/persistent"
    assert homes.mount_target(["HOME=relative"], "persistent") == "/home/jovyan/persistent"


def test_a_user_over_quota_is_told_so_and_keeps_the_files():
    within = homes.Home("v", "alice", "repo", 1024, 2048, enforced=False)
    assert homes.quota_note(within, "persistent") is None
    unknown = homes.Home("v", "alice", "repo", None, 2048, enforced=False)
    assert not unknown.over_quota and homes.quota_note(unknown, "persistent") is None
    no_quota = homes.Home("v", "alice", "repo", 10**9, 0, enforced=False)
    assert not no_quota.over_quota
    over = homes.Home("v", "alice", "repo", 3 * 1024**2, 1024**2, enforced=False)
    note = homes.quota_note(over, "persistent")
    assert note.startswith("Warning: your persistent folder ~/persistent holds 3.0M, over its quota of 1.0M")
    assert "Your files are kept" in note


def test_the_admins_table_shows_size_against_quota_and_how_it_holds():
    table = homes.render(
        [
            homes.Home("bltest-home-a", "alice", "repo", 2 * 1024**3, 1024**3, enforced=False),
            homes.Home("bltest-home-b", "bob", "", 512, 1024**3, enforced=True),
            homes.Home("bltest-home-c", "carol", "r", None, 0, enforced=False),
        ]
    )
    lines = table.splitlines()
    assert lines[0].split() == ["USER", "SERVER", "SIZE", "QUOTA", "VOLUME"]
    assert lines[1].split() == ["alice", "repo", "2.0G", "1.0G", "(measured)", "OVER", "QUOTA", "bltest-home-a"]
    assert lines[2].split() == ["bob", "(default)", "512B", "1.0G", "(enforced)", "bltest-home-b"]
    assert lines[3].split() == ["carol", "r", "?", "none", "bltest-home-c"]
    assert homes.render([]) == "no persistent folders\n"


class FakeVolumes:
    def __init__(self, error: str | None):
        self.error = error
        self.made = []

    def create(self, name, driver, labels, driver_opts=None):
        if driver_opts and self.error:
            raise docker.errors.APIError(self.error)
        self.made.append((name, driver_opts, labels))
        return name


class FakeClient:
    def __init__(self, error: str | None = None):
        self.volumes = FakeVolumes(error)


def test_the_drivers_quota_is_used_where_it_has_one():
    client = FakeClient()
    homes._create(client, SETTINGS, "v", "alice", "repo")
    [(_, opts, labels)] = client.volumes.made
    assert opts == {"size": "1G"} and labels["binderlite.quota"] == "enforced"
    assert labels["binderlite.user"] == "alice" and labels["binderlite.instance"] == "/srv/bl"


def test_without_quota_support_the_volume_is_measured_not_silently_unlimited():
    client = FakeClient("create v: quota size requested but no quota support")
    homes._create(client, SETTINGS, "v", "alice", "repo")
    [(_, opts, labels)] = client.volumes.made
    assert opts is None and labels["binderlite.quota"] == "measured"
    with pytest.raises(docker.errors.APIError):
        homes._create(FakeClient("disk full"), SETTINGS, "v", "alice", "repo")


def archive(*members: tarfile.TarInfo, top: str = "binderlite-home") -> io.BytesIO:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        tar.addfile(tarfile.TarInfo(top) if top else tarfile.TarInfo("."))
        for member in members:
            data = b"x" * member.size if member.isfile() else None
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    raw.seek(0)
    return raw


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size, info.uid = kind, link, size, 1000
    return info


def test_an_exported_folder_keeps_its_files_owners_and_links_relative_to_it():
    out = io.BytesIO()
    homes._strip_top(
        archive(
            member("binderlite-home/a.txt", size=3),
            member("binderlite-home/hard", tarfile.LNKTYPE, "binderlite-home/a.txt"),
            member("binderlite-home/sym", tarfile.SYMTYPE, "/etc/passwd"),
        ),
        out,
    )
    out.seek(0)
    got = {m.name: (m.uid, m.linkname) for m in tarfile.open(fileobj=out)}
    assert got == {"a.txt": (1000, ""), "hard": (1000, "a.txt"), "sym": (1000, "/etc/passwd")}


@pytest.mark.parametrize(
    "bad",
    [
        [member("../escape", size=1)],
        [member("dev", tarfile.CHRTYPE)],
        [member("up", tarfile.SYMTYPE, "/etc"), member("up/passwd", size=1)],
        [member("hard", tarfile.LNKTYPE, "../../etc/shadow")],
    ],
)
def test_a_hostile_folder_archive_is_refused(bad):
    with pytest.raises(BadInputError, match="not restoring"):
        homes._strip_top(archive(*bad, top=""), io.BytesIO(), top=False)


def test_only_signed_in_users_get_a_persistent_folder():
    for mode, on, expected in [
        ("anonymous", True, False),
        ("authenticated", False, False),
        ("authenticated", True, True),
    ]:
        c = Config()
        configure_spawner(c, Settings(auth_mode=mode, persistent_homes=on, persistent_folder="work"), "10.99.0.1")
        assert ("ensure_home" in c.BinderSpawner) is expected, (mode, on)
        if expected:
            assert c.BinderSpawner.persistent_folder == "work"


@pytest.mark.parametrize("folder", ["", "/abs", "../up", "a/../b", "a//b", "with space"])
def test_the_persistent_folder_must_stay_inside_the_home(folder):
    with pytest.raises(ConfigError, match="persistent_folder"):
        Settings(persistent_folder=folder)


def test_a_quota_must_be_a_size_or_empty():
    assert Settings(home_quota="").home_quota_bytes == 0
    assert Settings(home_quota="2G").home_quota_bytes == 2 * 1024**3
    with pytest.raises(ConfigError, match="home_quota"):
        Settings(home_quota="lots")
