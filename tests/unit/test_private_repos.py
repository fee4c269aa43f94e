"""Private repositories: credentials per host, links with credentials, resolution, keyed image names."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import stat
import subprocess
import threading
import urllib.parse
from pathlib import Path
from unittest import mock

import pytest

from binderlite.builds.pipeline import image_for
from binderlite.builds.queue import BuildQueue
from binderlite.errors import ConfigError, FetchError, RefNotFoundError, SpecError
from binderlite.links import git as providers
from binderlite.links import gitcredentials
from binderlite.links.git import GitProvider
from binderlite.links.imagenames import image_name_key, private_image_name
from binderlite.links.model import ResolvedRepo
from binderlite.settings import Settings
from binderlite.web import build_api
from binderlite.web.accesslog import redact

SHA = "b" * 40
TOKEN = "glpat-UNIQUE-0123456789"
HOST = "git.dept.example"


@pytest.fixture
def secrets_file(tmp_path) -> Path:
    key = tmp_path / "deploy_key"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nKEYMATERIAL\n-----END OPENSSH PRIVATE KEY-----\n")
    key.chmod(0o600)
    path = tmp_path / "credentials.toml"
    path.write_text(
        f'[[git]]\nhost = "{HOST}"\nusername = "deploy"\ntoken = "{TOKEN}"\n\n'
        f'[[git]]\nhost = "{HOST}:2222"\nssh_key = "{key}"\n'
    )
    path.chmod(0o600)
    return path


@pytest.fixture
def cfg(tmp_path, secrets_file) -> Settings:
    return Settings(state_dir=str(tmp_path / "state"), allow_local_repos=True, credentials_file=str(secrets_file))


# ---- links with a credential in them ------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"https://deploy:{TOKEN}@{HOST}/lab/x.git",
        f"https://{TOKEN}@{HOST}/lab/x.git",
        f"http://deploy:{TOKEN}@{HOST}:8080/lab/x.git",
        f"ssh://git:{TOKEN}@{HOST}/lab/x.git",
        f"deploy:{TOKEN}@{HOST}/lab/x.git",
    ],
)
def test_link_with_credential_is_refused_without_echoing_it(cfg, url):
    spec = urllib.parse.quote(url, safe="") + "/main"
    with mock.patch.object(providers, "ls_remote") as ls, pytest.raises(SpecError) as err:
        GitProvider(spec, cfg).resolve()
    assert TOKEN not in err.value.message
    assert "Never paste a credential into a link" in err.value.message
    assert "secrets file" in err.value.message
    ls.assert_not_called()


@pytest.mark.parametrize("url", [f"ssh://git@{HOST}/lab/x.git", f"git@{HOST}:lab/x.git", f"https://{HOST}/a@b.git"])
def test_ssh_user_names_and_at_signs_in_paths_are_not_credentials(url):
    gitcredentials.check_no_userinfo(providers.normalize_git_url(url))


def test_access_log_redacts_pasted_credentials():
    line = f"GET /v2/git/https%3A%2F%2Fdeploy%3A{TOKEN}%40{HOST}%2Flab%2Fx.git/main HTTP/1.1"
    assert redact(line) == f"GET /v2/git/https%3A%2F%2F[redacted]@{HOST}%2Flab%2Fx.git/main HTTP/1.1"
    assert TOKEN not in redact(f"/?repo=https://deploy:{TOKEN}@{HOST}/x&ref=main")
    public = "GET /v2/gh/org/repo/main HTTP/1.1"
    assert redact(public) == public


# ---- which credential fits which URL --------------------------------------------------


@pytest.mark.parametrize(
    "url,host",
    [
        ("https://Git.Dept.Example/x.git", "git.dept.example"),
        ("https://git.dept.example:8443/x.git", "git.dept.example:8443"),
        ("ssh://git@gitea.dept.example:2222/x.git", "gitea.dept.example:2222"),
        ("http://127.0.0.1:5000/git/x.git", "127.0.0.1:5000"),
        ("/srv/repos/x", ""),
        ("https://h:notaport/x", ""),
    ],
)
def test_url_host_is_the_secrets_file_key(url, host):
    assert gitcredentials.url_host(url) == host


def test_credential_matches_scheme_and_host(cfg):
    assert gitcredentials.credential_for(cfg, f"https://{HOST}/lab/x.git").token == TOKEN
    assert gitcredentials.credential_for(cfg, f"https://{HOST.upper()}/lab/x.git").token == TOKEN
    assert gitcredentials.credential_for(cfg, f"ssh://git@{HOST}:2222/lab/x.git").ssh_key
    assert gitcredentials.credential_for(cfg, f"ssh://git@{HOST}/lab/x.git") is None  # a token is no SSH key
    assert gitcredentials.credential_for(cfg, f"https://{HOST}:2222/lab/x.git") is None  # a key is no token
    assert gitcredentials.credential_for(cfg, f"https://{HOST}:8443/lab/x.git") is None  # host:port is exact
    assert gitcredentials.credential_for(cfg, "https://other.example/lab/x.git") is None
    assert gitcredentials.credential_for(cfg, f"git://{HOST}/lab/x.git") is None
    # a token never crosses the network in clear: plain http only to this machine, and only in local mode
    assert gitcredentials.credential_for(cfg, f"http://{HOST}/lab/x.git") is None


def test_plain_http_gets_the_token_only_on_loopback_in_local_mode(tmp_path):
    secrets = tmp_path / "credentials.toml"
    secrets.write_text(f'[[git]]\nhost = "127.0.0.1:8080"\nusername = "deploy"\ntoken = "{TOKEN}"\n')
    secrets.chmod(0o600)
    local = Settings(state_dir=str(tmp_path / "s"), allow_local_repos=True, credentials_file=str(secrets))
    assert gitcredentials.credential_for(local, "http://127.0.0.1:8080/x.git").token == TOKEN
    server = dataclasses.replace(local, allow_local_repos=False)
    assert gitcredentials.credential_for(server, "http://127.0.0.1:8080/x.git") is None


def git_credential_fill(
    env: dict[str, str], tmp_path: Path, host: str, protocol: str = "https"
) -> subprocess.CompletedProcess:
    """What git's credential machinery answers for ``host`` with ``env`` (no network involved)."""
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}
    base.update({"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false"})
    return subprocess.run(
        ["git", "credential", "fill"],
        input=f"protocol={protocol}\nhost={host}\npath=lab/x.git\n\n",
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_credential_helper_answers_its_host_only(cfg, tmp_path):
    env = gitcredentials.https_environment(gitcredentials.credential_for(cfg, f"https://{HOST}/x.git"))
    assert TOKEN not in env["GIT_CONFIG_VALUE_0"]  # the helper reads the token from the environment
    filled = git_credential_fill(env, tmp_path, HOST)
    assert filled.returncode == 0, filled.stderr
    assert f"username=deploy\npassword={TOKEN}" in filled.stdout
    other = git_credential_fill(env, tmp_path, "evil.example")  # a redirect or a submodule elsewhere
    assert other.returncode != 0
    assert TOKEN not in other.stdout + other.stderr
    downgraded = git_credential_fill(env, tmp_path, HOST, protocol="http")  # a redirect from https to http
    assert downgraded.returncode != 0
    assert TOKEN not in downgraded.stdout + downgraded.stderr


def test_ssh_key_copy_is_private_and_removed(cfg, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    with gitcredentials.credential_environment(
        cfg, f"ssh://git@{HOST}:2222/x.git", work, mount="/run/w", ssh_command="ssh", owner=None
    ) as env:
        (copy,) = work.iterdir()
        assert stat.S_IMODE(copy.stat().st_mode) == 0o400
        assert "KEYMATERIAL" in copy.read_text()
        assert env["GIT_SSH_COMMAND"] == f"ssh -o IdentitiesOnly=yes -i /run/w/{copy.name}"
        assert "KEYMATERIAL" not in str(env)
    assert list(work.iterdir()) == []


def test_missing_ssh_key_is_a_clear_error(cfg, tmp_path, secrets_file):
    Path(gitcredentials.credential_for(cfg, f"ssh://git@{HOST}:2222/x.git").ssh_key).unlink()
    with pytest.raises(ConfigError, match=f"SSH key for {HOST}:2222 in the secrets file could not be read"):
        with gitcredentials.credential_environment(
            cfg, f"ssh://git@{HOST}:2222/x.git", tmp_path, mount="/m", ssh_command="ssh", owner=None
        ):
            pass


# ---- resolution: anonymous first, then the host's credential ---------------------------------


def test_public_repo_on_a_credentialed_host_is_not_private(cfg):
    with mock.patch.object(providers, "ls_remote", return_value=SHA) as ls:
        resolved = GitProvider(urllib.parse.quote(f"https://{HOST}/lab/pub.git", safe="") + "/main", cfg).resolve()
    assert (resolved.resolved_ref, resolved.private) == (SHA, False)
    ls.assert_called_once()  # anonymously only: the credential is not needed, so not used


def fake_private_ls_remote(settings, url, ref, private=False):
    if not private:
        raise RefNotFoundError(f"Could not read the repository {url}: it does not exist, or is not public.")
    return SHA


def test_private_repo_resolves_with_the_credential(cfg):
    spec = urllib.parse.quote(f"https://{HOST}/lab/secret.git", safe="") + "/main"
    with mock.patch.object(providers, "ls_remote", side_effect=fake_private_ls_remote):
        resolved = GitProvider(spec, cfg).resolve()
    assert (resolved.resolved_ref, resolved.private) == (SHA, True)


def test_commit_link_of_a_private_repo_is_private(cfg):
    spec = urllib.parse.quote(f"https://{HOST}/lab/secret.git", safe="") + "/" + SHA
    with mock.patch.object(providers, "ls_remote", side_effect=fake_private_ls_remote):
        assert GitProvider(spec, cfg).resolve().private


def test_wrong_credential_says_so(cfg):
    spec = urllib.parse.quote(f"https://{HOST}/lab/secret.git", safe="") + "/main"
    refused = RefNotFoundError("Could not read the repository: it does not exist, or is not public.")
    with mock.patch.object(providers, "ls_remote", side_effect=refused), pytest.raises(RefNotFoundError) as err:
        GitProvider(spec, cfg).resolve()
    assert f"the credential for {HOST} in the secrets file does not give access" in err.value.message
    assert TOKEN not in err.value.message


def test_no_credential_means_no_second_try(cfg):
    spec = urllib.parse.quote("https://other.example/lab/secret.git", safe="") + "/main"
    with mock.patch.object(providers, "ls_remote", side_effect=fake_private_ls_remote) as ls:
        with pytest.raises(RefNotFoundError, match="not public"):
            GitProvider(spec, cfg).resolve()
    assert ls.call_count == 1


def test_unreachable_host_is_not_retried_with_the_credential(cfg):
    spec = urllib.parse.quote(f"https://{HOST}/lab/secret.git", safe="") + "/main"
    down = FetchError("Could not read the repository: its host could not be reached.")
    with mock.patch.object(providers, "ls_remote", side_effect=down) as ls, pytest.raises(FetchError):
        GitProvider(spec, cfg).resolve()
    assert ls.call_count == 1


# ---- image names --------------------------------------------------------------------------


def resolved(private: bool) -> ResolvedRepo:
    url = f"https://{HOST}/physics/secret-thesis.git"
    return ResolvedRepo("git", "spec", url, "main", SHA, "spec", url, url, private=private)


def test_private_image_name_reveals_nothing_and_is_stable(cfg):
    public, private = image_for(cfg, resolved(False)), image_for(cfg, resolved(True))
    assert "secret-2dthesis" in public and SHA in public  # BinderHub's name: the URL, escaped
    assert "secret" not in private.partition("/")[2] and SHA not in private and "physics" not in private
    assert private.startswith(f"{cfg.registry}/{cfg.image_prefix}private-")
    assert image_for(cfg, resolved(True)) == private
    key_file = cfg.hub_dir / "image_name_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    other_key = private_image_name(cfg.image_prefix, b"k" * 32, "x", SHA)
    assert other_key != private_image_name(cfg.image_prefix, b"j" * 32, "x", SHA)


def test_image_name_key_is_made_once_under_concurrency(tmp_path):
    keys: list[bytes] = []
    threads = [threading.Thread(target=lambda: keys.append(image_name_key(tmp_path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and len(keys[0]) == 32
    assert [p.name for p in tmp_path.iterdir()] == ["image_name_key"]


# ---- the build queue carries the flag ----------------------------------------------------------


def test_queue_records_private_builds_and_upgrades_an_old_database(tmp_path):
    cfg = Settings(state_dir=str(tmp_path))
    cfg.ensure_dirs()
    with sqlite3.connect(cfg.db_path) as db:  # the table as earlier releases made it
        db.execute(
            "CREATE TABLE builds (id TEXT PRIMARY KEY, image TEXT NOT NULL, repo_url TEXT NOT NULL, ref TEXT NOT "
            "NULL, content_provider TEXT NOT NULL, state TEXT NOT NULL, pid INTEGER, created REAL NOT NULL, "
            "started REAL, finished REAL, message TEXT)"
        )
    queue = BuildQueue(cfg)
    build, new = queue.request("bltest-private-x:y", "https://h/x.git", SHA, "git", private=True)
    assert new and build.private == 1
    assert queue.request("bltest-pub:y", "https://h/p.git", SHA, "git")[0].private == 0


# ---- anonymous mode never builds or launches a private repository ---------------------------------


def test_private_repo_is_refused_in_anonymous_mode(cfg):
    with (
        mock.patch.object(build_api, "resolve", return_value=resolved(True)),
        mock.patch.object(build_api.pipeline, "build_events") as build,
        mock.patch.object(build_api.launcher, "launch") as launch,
    ):
        events = list(build_api.events_for(cfg, "git", "spec", False, threading.Event()))
    assert [(e["phase"], e["status_code"]) for e in events] == [("failed", 403)]
    assert "is a private repository" in events[0]["message"]
    assert "auth_mode = 'authenticated'" in events[0]["message"]
    build.assert_not_called()
    launch.assert_not_called()
