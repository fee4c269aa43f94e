"""``binderlite backup`` / ``restore``: a round trip into a new state dir, and archives restore must refuse."""

import gzip
import io
import json
import sqlite3
import stat
import tarfile

import pytest
from click.testing import CliRunner

from binderlite.cli import main
from binderlite.services import backup as bk
from binderlite.settings import Settings, load_settings

SECRETS = {
    "service_token": "svc-token",
    "proxy_token": "proxy-token",
    "jupyterhub_cookie_secret": "ab" * 32,
    "auth_state_key": "cd" * 32,  # authenticated mode: without it the users' auth state cannot be read
}


def make_state(settings: Settings) -> None:
    """A state dir as a running install has it: the hub's users, binderlite's builds, the secrets."""
    settings.ensure_dirs()
    hub = sqlite3.connect(settings.hub_dir / "jupyterhub.sqlite")
    hub.executescript("CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('fixture-ab12');")
    hub.commit()
    hub.close()
    db = sqlite3.connect(settings.db_path)
    db.executescript("CREATE TABLE builds (id TEXT, state TEXT); INSERT INTO builds VALUES ('b1', 'built');")
    db.commit()
    db.close()
    for name, value in SECRETS.items():
        (settings.hub_dir / name).write_text(value + "\n")
        (settings.hub_dir / name).chmod(0o600)
    (settings.hub_dir / "jupyterhub.pid").write_text("123\n")
    (settings.logs_dir / "hub.log").write_text("a log line\n")


@pytest.fixture
def old(tmp_path):
    config = tmp_path / "old.toml"
    config.write_text(f'state_dir = "{tmp_path}/old-state"\nweb_port = 9585\n')
    settings = load_settings(str(config))
    make_state(settings)
    return settings, config


def nobody_running(settings):
    return []


def test_round_trip_into_a_new_state_dir(tmp_path, old, monkeypatch):
    settings, config = old
    archive = tmp_path / "backups" / "b.tar.gz"
    names = bk.backup(settings, str(config), archive)
    assert set(names) == {
        "config/binderlite.toml",
        "state/hub/jupyterhub.sqlite",
        "state/binderlite.sqlite",
        "state/hub/service_token",
        "state/hub/proxy_token",
        "state/hub/jupyterhub_cookie_secret",
        "state/hub/auth_state_key",
    }
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as tar:
        assert tar.getnames()[0] == "manifest.json"
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert manifest["format"] == "binderlite-backup" and manifest["created"].endswith("Z")
    assert "hub.log" not in str(manifest) and "jupyterhub.pid" not in str(manifest)

    new_config = tmp_path / "new" / "binderlite.toml"
    monkeypatch.setenv("BINDERLITE_STATE_DIR", str(tmp_path / "new-state"))  # the environment still wins
    restored = bk.restore(lambda: load_settings(str(new_config)), str(new_config), archive, nobody_running)
    assert new_config in restored
    new = load_settings(str(new_config))
    assert new.web_port == 9585 and new.state_dir == str(tmp_path / "new-state")
    hub = sqlite3.connect(new.hub_dir / "jupyterhub.sqlite")
    assert hub.execute("SELECT name FROM users").fetchall() == [("fixture-ab12",)]
    hub.close()
    for name, value in SECRETS.items():
        path = new.hub_dir / name
        assert path.read_text() == value + "\n" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sqlite3.connect(new.db_path).execute("SELECT id FROM builds").fetchall() == [("b1",)]


def test_backup_of_a_live_database_is_consistent(tmp_path, old):
    settings, config = old
    writer = sqlite3.connect(settings.db_path)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO builds VALUES ('b2', 'running')")  # not committed while the backup runs
    bk.backup(settings, str(config), tmp_path / "b.tar.gz")
    writer.commit()
    writer.close()
    with tarfile.open(tmp_path / "b.tar.gz") as tar:
        (tmp_path / "copy.sqlite").write_bytes(tar.extractfile("state/binderlite.sqlite").read())
    assert sqlite3.connect(tmp_path / "copy.sqlite").execute("SELECT id FROM builds").fetchall() == [("b1",)]


def test_nothing_to_back_up_says_where_it_looked(tmp_path):
    settings = Settings(state_dir=str(tmp_path / "empty"))
    result = CliRunner().invoke(main, ["--config", "/dev/null", "backup", str(tmp_path / "b.tar.gz")], env={
        "BINDERLITE_STATE_DIR": settings.state_dir})  # fmt: skip
    assert result.exit_code == 4
    assert f"Nothing to back up in {settings.state_dir}" in result.output
    assert not (tmp_path / "b.tar.gz").exists()


def test_restore_refuses_while_services_run_unless_forced(tmp_path, old):
    settings, config = old
    archive = tmp_path / "b.tar.gz"
    bk.backup(settings, str(config), archive)
    with pytest.raises(bk.ServiceError) as refused:
        bk.restore(lambda: settings, str(config), archive, lambda s: ["hub", "web"])
    assert "binderlite is running (hub, web)" in refused.value.message
    assert "systemctl stop 'binderlite-*'" in refused.value.message
    assert bk.restore(lambda: settings, str(config), archive, lambda s: ["hub"], force=True)


def write_tar(path, members: dict[str, bytes], manifest: dict | None = None, extra=()):
    with tarfile.open(path, "w:gz") as tar:
        if manifest is not None:
            data = json.dumps(manifest).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)


def manifest_for(members: dict[str, bytes]) -> dict:
    import hashlib

    files = [
        {"name": n, "size": len(d), "mode": 0o600, "sha256": hashlib.sha256(d).hexdigest()} for n, d in members.items()
    ]
    return {"format": "binderlite-backup", "format_version": 1, "files": files}


def restore_error(tmp_path, archive) -> str:
    settings = Settings(state_dir=str(tmp_path / "target"))
    with pytest.raises(bk.BadInputError) as refused:
        bk.restore(lambda: settings, str(tmp_path / "target.toml"), archive, nobody_running)
    assert not (tmp_path / "target").exists() and not (tmp_path / "target.toml").exists()
    return refused.value.message


def test_foreign_and_corrupted_archives_are_refused_with_a_clear_message(tmp_path, old):
    (tmp_path / "text.tar.gz").write_text("not an archive")
    assert "is not a binderlite backup (not a tar.gz archive" in restore_error(tmp_path, tmp_path / "text.tar.gz")

    write_tar(tmp_path / "foreign.tar.gz", {"etc/hosts": b"127.0.0.1 localhost\n"})
    assert "is not a binderlite backup (no binderlite manifest in it)" in restore_error(
        tmp_path, tmp_path / "foreign.tar.gz"
    )

    settings, config = old
    good = tmp_path / "good.tar.gz"
    bk.backup(settings, str(config), good)
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    assert "damaged" in restore_error(tmp_path, truncated) or "not a binderlite backup" in restore_error(
        tmp_path, truncated
    )

    members = {"state/hub/service_token": b"svc\n"}
    manifest = manifest_for(members)
    write_tar(tmp_path / "changed.tar.gz", {"state/hub/service_token": b"evil\n"}, manifest)
    assert "service_token does not match its checksum" in restore_error(tmp_path, tmp_path / "changed.tar.gz")

    newer = {**manifest, "format_version": 99}
    write_tar(tmp_path / "newer.tar.gz", members, newer)
    assert "of format 99; this binderlite" in restore_error(tmp_path, tmp_path / "newer.tar.gz")


@pytest.mark.parametrize("name", ["../../etc/cron.d/x", "/etc/cron.d/x", "state/../../x", "other/x"])
def test_a_path_outside_the_backups_folders_is_refused(tmp_path, name):
    members = {name: b"* * * * * root sh -c 'id'\n"}
    write_tar(tmp_path / "hostile.tar.gz", members, manifest_for(members))
    assert "a path outside its folders" in restore_error(tmp_path, tmp_path / "hostile.tar.gz")


def test_links_and_devices_are_refused(tmp_path):
    link = tarfile.TarInfo("state/hub/service_token")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
    write_tar(tmp_path / "link.tar.gz", {}, manifest_for({"state/hub/service_token": b""}), extra=[link])
    assert "which a binderlite backup never holds" in restore_error(tmp_path, tmp_path / "link.tar.gz")


def test_cli_round_trip_prints_what_it_wrote_and_restored(tmp_path, old):
    settings, config = old
    archive = tmp_path / "cli.tar.gz"
    made = CliRunner().invoke(main, ["--config", str(config), "backup", str(archive)])
    assert made.exit_code == 0, made.output
    assert made.output.startswith(f"wrote {archive}: config/binderlite.toml, state/hub/jupyterhub.sqlite")
    with gzip.open(archive) as fh:
        assert fh.read(1)  # a gzip stream
    back = CliRunner().invoke(main, ["--config", str(config), "restore", str(archive)])
    assert back.exit_code == 0, back.output
    assert f"restored {settings.hub_dir / 'jupyterhub.sqlite'}" in back.output.splitlines()
    foreign = CliRunner().invoke(main, ["--config", str(config), "restore", str(config)])
    assert foreign.exit_code == 2
    assert foreign.output.startswith(f"Error: {config} is not a binderlite backup")


def test_a_persistent_folder_entry_is_restorable_but_not_one_that_leaves_its_folder(tmp_path):
    folder = {"homes/bltest-home-alice-repo-0123456789.tar": b"not checked before the manifest"}
    write_tar(tmp_path / "ok.tar.gz", folder, manifest_for(folder))
    with tarfile.open(tmp_path / "ok.tar.gz") as tar:
        assert bk.read_manifest(tar, tmp_path / "ok.tar.gz")["files"][0]["name"].startswith("homes/")
    for name in ["homes/../state/x.tar", "homes/sub/x.tar", "homes/x.sqlite"]:
        members = {name: b"x"}
        write_tar(tmp_path / "bad.tar.gz", members, manifest_for(members))
        assert "not restoring" in restore_error(tmp_path, tmp_path / "bad.tar.gz"), name


def test_anonymous_mode_backs_up_no_folders_and_needs_no_docker(tmp_path, old, monkeypatch):
    settings, config = old
    monkeypatch.setattr(bk.homes, "list_homes", lambda s: pytest.fail("anonymous mode has no persistent folders"))
    names = bk.backup(settings, str(config), tmp_path / "b.tar.gz")
    assert not any(name.startswith("homes/") for name in names)
