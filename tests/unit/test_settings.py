"""Settings: defaults ← TOML config file ← BINDERLITE_* environment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from binderlite import settings as settings_module
from binderlite.errors import ConfigError
from binderlite.settings import Settings, load_settings, setting_fields


@pytest.fixture(autouse=True)
def no_system_config(tmp_path, monkeypatch):
    """Tests never read /etc/binderlite."""
    monkeypatch.setattr(settings_module, "DEFAULT_CONFIG_FILE", str(tmp_path / "absent.toml"))


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "binderlite.toml"
    path.write_text(text)
    return str(path)


def test_defaults_without_file_or_env():
    assert load_settings(environ={}) == Settings()


def test_file_overrides_defaults(tmp_path):
    path = write(tmp_path, 'image_prefix = "r2d-"\nbuild_concurrency = 4\nallow_local_repos = true\n')
    cfg = load_settings(path, environ={})
    assert (cfg.image_prefix, cfg.build_concurrency, cfg.allow_local_repos) == ("r2d-", 4, True)
    assert cfg.build_timeout == Settings().build_timeout


def test_env_overrides_file(tmp_path):
    path = write(tmp_path, 'image_prefix = "file-"\nbuild_concurrency = 4\n')
    env = {"BINDERLITE_IMAGE_PREFIX": "env-", "BINDERLITE_ALLOW_LOCAL_REPOS": "yes"}
    cfg = load_settings(path, environ=env)
    assert (cfg.image_prefix, cfg.build_concurrency, cfg.allow_local_repos) == ("env-", 4, True)


def test_config_path_from_env(tmp_path):
    path = write(tmp_path, 'registry = ""\n')
    assert load_settings(environ={"BINDERLITE_CONFIG": path}).registry == ""


def test_explicit_argument_beats_env_config_path(tmp_path):
    path = write(tmp_path, 'image_prefix = "arg-"\n')
    assert load_settings(path, environ={"BINDERLITE_CONFIG": "/nonexistent.toml"}).image_prefix == "arg-"


@pytest.mark.parametrize(
    "raw,expected",
    [("1", True), ("TRUE", True), (" on ", True), ("0", False), ("no", False), ("off", False), ("", False)],
)
def test_bool_coercion(raw, expected):
    assert load_settings(environ={"BINDERLITE_ALLOW_LOCAL_REPOS": raw}).allow_local_repos is expected


@pytest.mark.parametrize("raw", ["maybe", "2", "enabled"])
def test_bad_bool_names_the_variable(raw):
    with pytest.raises(ConfigError, match="BINDERLITE_ALLOW_LOCAL_REPOS must be true or false"):
        load_settings(environ={"BINDERLITE_ALLOW_LOCAL_REPOS": raw})


def test_int_coercion():
    assert load_settings(environ={"BINDERLITE_BUILD_TIMEOUT": " 120 "}).build_timeout == 120


@pytest.mark.parametrize("raw", ["ten", "1.5", ""])
def test_bad_int_names_the_variable(raw):
    with pytest.raises(ConfigError, match="BINDERLITE_BUILD_TIMEOUT must be a whole number"):
        load_settings(environ={"BINDERLITE_BUILD_TIMEOUT": raw})


def test_bad_int_in_file(tmp_path):
    with pytest.raises(ConfigError, match="build_concurrency must be a whole number"):
        load_settings(write(tmp_path, 'build_concurrency = "many"\n'), environ={})


def test_unknown_key_in_file(tmp_path):
    with pytest.raises(ConfigError, match="Unknown setting 'image_prefx'"):
        load_settings(write(tmp_path, 'image_prefx = "x"\n'), environ={})


def test_unknown_env_variables_are_ignored():
    assert load_settings(environ={"BINDERLITE_NOT_A_SETTING": "1"}) == Settings()


def test_invalid_toml(tmp_path):
    with pytest.raises(ConfigError, match="could not be read"):
        load_settings(write(tmp_path, "image_prefix = \n"), environ={})


@pytest.mark.parametrize("use_env", [False, True])
def test_missing_explicit_config_file(tmp_path, use_env):
    missing = str(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="does not exist"):
        if use_env:
            load_settings(environ={"BINDERLITE_CONFIG": missing})
        else:
            load_settings(missing, environ={})


@pytest.mark.parametrize(
    "env,message",
    [
        ({"BINDERLITE_BUILD_PACKS": "conda"}, "build_packs is 'conda', but it must be one of 'binderlite'"),
        ({"BINDERLITE_BUILD_CONCURRENCY": "0"}, "build_concurrency is 0, but it must be at least 1"),
        ({"BINDERLITE_BUILD_TIMEOUT": "-5"}, "build_timeout is -5, but it must be at least 1"),
        ({"BINDERLITE_MEMORY_LIMIT": "lots"}, "memory_limit is 'lots', but it must be a size"),
        ({"BINDERLITE_CPU_LIMIT": "fast"}, "BINDERLITE_CPU_LIMIT must be a number"),
        ({"BINDERLITE_CPU_LIMIT": "0"}, "cpu_limit is 0.0, but it must be between"),
        ({"BINDERLITE_STREAM_KEEPALIVE": "60"}, "stream_keepalive is 60, but it must be between 1 and 25"),
        ({"BINDERLITE_BANNED_SPECS": "org/(unclosed"}, "banned_specs: 'org/(unclosed' is not a valid regular"),
        ({"BINDERLITE_BLOCKED_NETWORKS": "10.0.0.0/8,lan"}, "'lan' is not one"),
        ({"BINDERLITE_PACKAGE_INDEX_URL": "ftp://mirror/simple"}, "must be an http(s) URL"),
        ({"BINDERLITE_REGISTRY": "localhost"}, "must be host:port"),
        ({"BINDERLITE_PACKAGE_INDEX_URL": "https://u:p@mirror/simple"}, "must not carry credentials"),
        ({"BINDERLITE_EXTRA_INDEX_URL": "https://token@mirror/simple"}, "must not carry credentials"),
        ({"BINDERLITE_STATE_DIR": "relative/dir"}, "must be an absolute path"),
        ({"BINDERLITE_DISK_LOW_WATER": "90"}, "disk_low_water (90) must be below disk_high_water (85)"),
    ],
)
def test_validation(env, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(environ=env)


def test_derived_paths_under_state_dir(tmp_path):
    cfg = load_settings(environ={"BINDERLITE_STATE_DIR": str(tmp_path / "state")})
    root = tmp_path / "state"
    assert cfg.db_path.parent == root
    for path in (cfg.db_path, cfg.build_logs_dir, cfg.build_work_dir, cfg.registry_dir):
        assert root in path.parents
    cfg.ensure_dirs()
    assert cfg.build_logs_dir.is_dir() and cfg.build_work_dir.is_dir()


def test_with_overrides_is_a_copy():
    base = Settings()
    changed = base.with_overrides(allow_local_repos=True)
    assert changed.allow_local_repos and not base.allow_local_repos


def test_every_setting_has_help_and_a_known_type():
    for field in setting_fields():
        assert field.metadata["help"]
        assert field.type in ("str", "int", "bool", "float")


def test_proxy_environment_prefers_settings_and_adds_bypass_hosts(monkeypatch):
    from binderlite.settings import Settings, proxy_environment

    monkeypatch.setenv("HTTPS_PROXY", "http://from-env:1")
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    env = proxy_environment(Settings(http_proxy="http://from-settings:2"), bypass=("172.17.0.1",))
    assert env["HTTP_PROXY"] == env["http_proxy"] == "http://from-settings:2"
    assert env["HTTPS_PROXY"] == "http://from-env:1"
    assert env["NO_PROXY"] == "172.17.0.1"


def test_proxy_environment_is_empty_without_a_proxy(monkeypatch):
    from binderlite.settings import Settings, proxy_environment

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert proxy_environment(Settings(), bypass=("172.17.0.1",)) == {}
