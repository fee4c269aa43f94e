"""systemd units made from the service table: what an administrator installs, checked without systemd."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from binderlite.cli import main
from binderlite.errors import ServiceError
from binderlite.hub.tokens import persistent_secret
from binderlite.services import supervisor
from binderlite.services.table import Service, all_services
from binderlite.services.units import REFERENCE_PROGRAMS, Install, reference_units, render_units, write_units
from binderlite.settings import Settings

COMMITTED = Path(__file__).resolve().parents[2] / "systemd"


def directives(text: str, key: str) -> list[str]:
    return re.findall(rf"^{key}=(.*)$", text, re.M)


def words(text: str, key: str) -> list[str]:
    return [w for value in directives(text, key) for w in value.split()]


def install(venv: str = "/opt/binderlite/venvs/1.0", config: str = "/etc/binderlite/binderlite.toml") -> Install:
    return Install.of(config, venv, REFERENCE_PROGRAMS.__getitem__)


def test_committed_units_are_the_rendered_ones():
    committed = {p.name: p.read_text() for p in COMMITTED.iterdir()}
    assert committed == reference_units(), "systemd/ is out of date: run python scripts/update-systemd-units.py"


def test_every_service_of_the_table_has_a_unit_in_the_target():
    settings = Settings()
    units = render_units(settings, install())
    names = [f"binderlite-{s.name}.service" for s in all_services(settings, find=REFERENCE_PROGRAMS.__getitem__)]
    assert names == [
        "binderlite-registry.service",
        "binderlite-proxy.service",
        "binderlite-hub.service",
        "binderlite-web.service",
        "binderlite-scheduler.service",
    ]
    assert set(units) == {*names, "binderlite-prepare.service", "binderlite.target"}
    assert words(units["binderlite.target"], "Wants") == ["binderlite-prepare.service", *names]
    assert directives(units["binderlite.target"], "WantedBy") == ["multi-user.target"]
    for name in [*names, "binderlite-prepare.service"]:
        assert directives(units[name], "PartOf") == ["binderlite.target"], name
        assert directives(units[name], "WantedBy") == ["binderlite.target"], name


def test_no_registry_no_registry_unit():
    units = render_units(Settings(registry=""), install())
    assert "binderlite-registry.service" not in units
    assert "binderlite-registry.service" not in units["binderlite.target"]


def test_units_start_after_prepare_in_the_order_of_the_table():
    units = render_units(Settings(), install())
    order = ["registry", "proxy", "hub", "web", "scheduler"]
    for i, name in enumerate(order):
        after = words(units[f"binderlite-{name}.service"], "After")
        assert "binderlite-prepare.service" in after
        assert [a for a in after if a.removeprefix("binderlite-").removesuffix(".service") in order] == [
            f"binderlite-{n}.service" for n in order[:i]
        ]
    prepare = units["binderlite-prepare.service"]
    assert directives(prepare, "Type") == ["oneshot"] and directives(prepare, "RemainAfterExit") == ["yes"]
    assert directives(prepare, "ExecStart") == ["/opt/binderlite/venvs/1.0/bin/binderlite prepare"]


def test_no_secret_in_any_unit(tmp_path):
    settings = Settings(state_dir=str(tmp_path), proxy_auth_token="proxy-secret-in-settings")
    secrets = [
        "proxy-secret-in-settings",
        persistent_secret(settings.hub_dir / "service_token"),
        persistent_secret(settings.hub_dir / "jupyterhub_cookie_secret"),
    ]
    for name, text in render_units(settings, install()).items():
        for secret in secrets:
            assert secret not in text, name
        environment = [e for e in directives(text, "Environment") if not e.startswith("PROMETHEUS_MULTIPROC_DIR=")]
        assert environment in ([], [f"BINDERLITE_CONFIG={install().config_file}"]), name
    proxy = render_units(settings, install())["binderlite-proxy.service"]
    assert directives(proxy, "EnvironmentFile") == [f"{tmp_path}/run/proxy.env"]
    assert "--default-target ${BINDERLITE_HUB_URL}" in directives(proxy, "ExecStart")[0]


def test_every_service_restarts_on_failure_logs_to_the_journal_and_is_hardened():
    for name, text in render_units(Settings(), install()).items():
        if not name.endswith(".service") or name == "binderlite-prepare.service":
            continue
        assert directives(text, "Restart") == ["on-failure"], name
        assert directives(text, "StandardOutput") == ["journal"], name
        for key, value in [("ProtectSystem", "strict"), ("PrivateTmp", "yes"), ("NoNewPrivileges", "yes"),
                           ("ProtectHome", "yes")]:  # fmt: skip
            assert directives(text, key) == [value], (name, key)
        lines = text.splitlines()
        for before, line in zip(lines, lines[1:], strict=False):
            if line and not line.startswith(("#", "[")):
                assert before.startswith("#"), f"{name}: {line} has no comment"


def test_only_the_proxy_and_registry_run_as_the_service_user_and_root_says_why():
    units = render_units(Settings(service_user="blsvc"), install())
    for name in ("registry", "proxy"):
        text = units[f"binderlite-{name}.service"]
        assert directives(text, "User") == ["blsvc"] and directives(text, "CapabilityBoundingSet") == [""]
    for name in ("hub", "web", "scheduler"):
        text = units[f"binderlite-{name}.service"]
        assert directives(text, "User") == ["root"]
        assert "root-equivalent" in text
        assert directives(text, "ReadWritePaths")[0].split()[0] == "/var/lib/binderlite"


def test_the_web_app_tells_systemd_when_it_is_ready():
    web = render_units(Settings(), install())["binderlite-web.service"]
    assert directives(web, "Type") == ["notify"] and directives(web, "NotifyAccess") == ["main"]
    gunicorn = "-m gunicorn -c python:binderlite.web.gunicorn_conf binderlite.web.wsgi:app"
    assert directives(web, "ExecStart") == [f"/opt/binderlite/venvs/1.0/bin/python {gunicorn}"]


def test_an_upgrade_changes_binderlites_own_units_but_not_the_proxy_or_registry():
    old, new = render_units(Settings(), install("/opt/v1")), render_units(Settings(), install("/opt/v2"))
    changed = {name for name in old if old[name] != new[name]}
    assert changed == {
        "binderlite-prepare.service",
        "binderlite-hub.service",
        "binderlite-web.service",
        "binderlite-scheduler.service",
    }


def test_up_expands_the_run_time_values_as_systemd_does():
    proxy = all_services(Settings(), find=REFERENCE_PROGRAMS.__getitem__)[1]
    argv = proxy.command({"BINDERLITE_HUB_URL": "http://172.31.0.1:8081"})
    assert argv[argv.index("--default-target") + 1] == "http://172.31.0.1:8081"
    assert argv[argv.index("--error-target") + 1] == "http://172.31.0.1:8081/hub/error"


def test_write_units_writes_only_what_differs(tmp_path):
    units = render_units(Settings(), install())
    assert len(write_units(tmp_path, units)) == len(units)
    assert write_units(tmp_path, units) == []
    (tmp_path / "binderlite-hub.service").write_text("edited")
    assert write_units(tmp_path, units, check=True) == [tmp_path / "binderlite-hub.service"]
    assert (tmp_path / "binderlite-hub.service").read_text() == "edited"
    assert write_units(tmp_path, units) == [tmp_path / "binderlite-hub.service"]


@pytest.fixture
def cli_config(tmp_path, monkeypatch):
    monkeypatch.setattr("binderlite.services.table.shutil.which", lambda name: f"/usr/bin/{name}")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "binderlite.toml"
    config.write_text(f'state_dir = "{tmp_path}/state"\n')
    return config


def test_cli_prints_one_line_per_unit_it_wrote_and_check_exits_1(tmp_path, cli_config):
    out = tmp_path / "units"
    args = ["--config", str(cli_config), "systemd-units", "--out", str(out), "--venv", "/opt/v1"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert sorted(first.output.splitlines()) == sorted(f"wrote {p}" for p in out.iterdir())
    hub = (out / "binderlite-hub.service").read_text()
    assert directives(hub, "Environment") == [f"BINDERLITE_CONFIG={cli_config}"]
    assert directives(hub, "WorkingDirectory") == [f"{tmp_path}/state"]
    assert CliRunner().invoke(main, args).output == ""
    assert CliRunner().invoke(main, [*args, "--check"]).exit_code == 0
    moved = CliRunner().invoke(main, [*args[:-1], "/opt/v2", "--check"])
    assert moved.exit_code == 1
    assert f"differs {out}/binderlite-hub.service" in moved.output.splitlines()
    assert "/opt/v1/bin/python" in (out / "binderlite-hub.service").read_text()


def test_cli_warns_about_settings_the_units_will_not_see(tmp_path, cli_config, monkeypatch):
    monkeypatch.setenv("BINDERLITE_WEB_PORT", "9999")
    result = CliRunner().invoke(main, ["--config", str(cli_config), "systemd-units", "--out", str(tmp_path / "u")])
    assert result.exit_code == 0
    assert "Warning: BINDERLITE_WEB_PORT is set here, but the units' processes will not see it" in result.output


def test_the_hubs_unit_is_started_only_once_the_hub_answers():
    hub = render_units(Settings(), install())["binderlite-hub.service"]
    assert directives(hub, "ExecStartPost") == ["/opt/binderlite/venvs/1.0/bin/binderlite wait-ready hub"]


def test_wait_ready_waits_then_gives_up_with_where_it_looked(monkeypatch):
    monkeypatch.setattr(supervisor, "POLL_INTERVAL", 0.01)
    answers = iter([False, False, True])
    supervisor.wait_ready(Service("hub", "", [], ready=lambda: next(answers), ready_timeout=5))
    never = Service("hub", "", [], ready=lambda: False, describe="http://127.0.0.1:1/hub/api/", ready_timeout=0.05)
    with pytest.raises(ServiceError, match=r"hub did not answer at http://127.0.0.1:1/hub/api/ within 0 s"):
        supervisor.wait_ready(never)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_every_unit(tmp_path):
    units = render_units(
        Settings(), Install.of(str(tmp_path / "binderlite.toml"), sys.prefix, lambda name: "/bin/true")
    )
    write_units(tmp_path, units)
    verify = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(tmp_path / name) for name in units)],
        capture_output=True,
        text=True,
    )
    assert (verify.returncode, verify.stderr) == (0, ""), "systemd-analyze verify complains"
