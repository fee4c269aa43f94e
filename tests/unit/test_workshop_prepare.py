"""The workshop's links file, its manifest merge, and links resolved offline through the manifest."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
from click.testing import CliRunner

from binderlite import links
from binderlite.builds import gitcopy
from binderlite.builds.pipeline import build_events
from binderlite.cli import main
from binderlite.errors import BadInputError, RefNotFoundError
from binderlite.links.model import ResolvedRepo
from binderlite.settings import Settings
from binderlite.web import build_api
from binderlite.workshop import listing, localrepo
from binderlite.workshop import prepare as workshop_prepare
from binderlite.workshop.linksfile import parse_links
from binderlite.workshop.manifest import Manifest, PreparedLink, load_manifest, save_manifest
from binderlite.workshop.resolve import NotPreparedError, resolve, resolve_link

SHA = "a" * 40
GIT_URL = "https://git.example.org/lab/course.git"
GIT_SPEC = f"{urllib.parse.quote(GIT_URL, safe='')}/main"


@pytest.fixture
def cfg(tmp_path) -> Settings:
    return Settings(state_dir=str(tmp_path / "state"), offline="yes")


def prepared(provider: str = "gh", spec: str = "org/repo/main", image: str = "bl-org-repo:abc") -> PreparedLink:
    resolved = ResolvedRepo(
        provider=provider,
        spec=spec,
        repo_url=GIT_URL if provider == "git" else "https://github.com/org/repo",
        unresolved_ref="main",
        resolved_ref=SHA,
        resolved_spec=spec.rsplit("/", 1)[0] + "/" + SHA,
        ref_url="https://github.com/org/repo/tree/" + SHA,
        build_slug="org-repo",
    )
    return PreparedLink.from_resolved(f"{provider}/{spec}", resolved, image, "repos/org-repo.git")


# ---- the links file ----------------------------------------------------------------------


def test_links_file_reads_every_kind_of_link_with_attendees_and_comments(cfg):
    text = f"""# the handout's links
gh/org/repo/main 30
v2/gh/org/other/HEAD   # the second notebook
https://mybinder.org/v2/gh/org/third/v1.0?labpath=intro.ipynb 12

{"git/" + GIT_SPEC}
zenodo/10.5281/zenodo.3242074
doi/10.5281/zenodo.3242074 4
"""
    found = parse_links(text, cfg)
    assert [(line.number, line.provider, line.spec, line.attendees) for line in found] == [
        (2, "gh", "org/repo/main", 30),
        (3, "gh", "org/other/HEAD", 0),
        (4, "gh", "org/third/v1.0", 12),
        (6, "git", GIT_SPEC, 0),
        (7, "zenodo", "10.5281/zenodo.3242074", 0),
        (8, "zenodo", "10.5281/zenodo.3242074", 4),
    ]
    assert found[2].link == "https://mybinder.org/v2/gh/org/third/v1.0?labpath=intro.ipynb"


def test_bad_lines_are_all_named_by_number(cfg):
    text = "\n".join(
        [
            "gh/org/repo/main",
            "gh/org",  # no ref
            "nosuch/org/repo/main",  # unknown provider
            "gh/org/repo/main lots",  # attendees not a number
            "git/file%3A%2F%2F%2Fetc/x",  # a local path on the server
            "git/ext%3A%3Ash%20-c%20id/x",  # git's ext:: transport
            "gh/org/repo/main 3 extra",
            "https://example.org/not-a-binder",
            "doi/10.1234/abc",
        ]
    )
    with pytest.raises(BadInputError) as caught:
        parse_links(text, cfg)
    message = caught.value.message
    for number in range(2, 10):
        assert f"line {number}:" in message
    assert "line 1:" not in message
    assert "Unknown provider 'nosuch'" in message
    assert "'lots' is not a number of attendees" in message
    assert "file:///etc" in message and "ext::" in message
    assert "nothing was prepared" in message


def test_an_empty_links_file_is_refused(cfg):
    with pytest.raises(BadInputError, match="has no links"):
        parse_links("# nothing yet\n\n", cfg)


def test_prepare_with_a_bad_line_exits_2_and_prepares_nothing(tmp_path, monkeypatch):
    state = tmp_path / "state"
    config = tmp_path / "binderlite.toml"
    config.write_text(f'state_dir = "{state}"\n')
    links_file = tmp_path / "links.txt"
    links_file.write_text("gh/org/repo/main\ngit/file%3A%2F%2F%2Fetc/x\n")
    monkeypatch.setattr(links, "resolve", lambda *a: pytest.fail("nothing is resolved when a line is bad"))
    result = CliRunner().invoke(main, ["--config", str(config), "workshop", "prepare", str(links_file)])
    assert result.exit_code == 2, result.output
    assert "line 2:" in result.output and "Traceback" not in result.output
    assert not (state / "workshop").exists()


def test_prepare_of_a_missing_file_says_so(tmp_path):
    config = tmp_path / "binderlite.toml"
    config.write_text(f'state_dir = "{tmp_path}"\n')
    result = CliRunner().invoke(main, ["--config", str(config), "workshop", "prepare", str(tmp_path / "nope.txt")])
    assert result.exit_code == 2
    assert "Cannot read the links file" in result.output


# ---- the manifest ------------------------------------------------------------------------


def test_re_preparing_replaces_the_same_link_and_keeps_the_others(cfg, monkeypatch):
    monkeypatch.setattr(workshop_prepare, "workshop_images", lambda settings, echo: ["binderlite/base:bookworm"])
    lines = parse_links("gh/org/repo/main 20\ngh/org/other/main\n", cfg)
    first = [prepared("gh", "org/repo/main", "img:1"), prepared("gh", "org/other/main", "img:2")]
    workshop_prepare.record(cfg, first, lines, None, ["numpy"])
    again = parse_links("gh/org/repo/main\n", cfg)
    workshop_prepare.record(cfg, [prepared("gh", "org/repo/main", "img:3")], again, None, ["pandas", "numpy"])
    manifest = load_manifest(cfg)
    assert sorted((e.spec, e.image) for e in manifest.links) == [
        ("org/other/main", "img:2"),
        ("org/repo/main", "img:3"),
    ]
    assert manifest.attendees == 20  # kept: neither --attendees nor the column gave a number this time
    assert manifest.extra_packages == ("numpy", "pandas")
    assert manifest.images == ("binderlite/base:bookworm",)
    workshop_prepare.record(cfg, [], again, 45, [])
    assert load_manifest(cfg).attendees == 45


def test_lookup_matches_a_git_spec_escaped_or_not():
    manifest = Manifest(links=(prepared("git", GIT_SPEC),))
    assert manifest.lookup("git", GIT_SPEC) is not None
    assert manifest.lookup("git", urllib.parse.unquote(GIT_SPEC)) is not None
    assert manifest.lookup("gh", GIT_SPEC) is None


def test_extra_packages_file_skips_comments(tmp_path):
    extra = tmp_path / "extra.txt"
    extra.write_text("# more\nnumpy>=1.26\n\nscipy  # for the exercises\n")
    assert workshop_prepare.read_extra_packages(extra) == ["numpy>=1.26", "scipy"]


# ---- offline resolution ------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch):
    """Any DNS question, git run or online resolution fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"offline resolution contacted something: {args[:1]}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(links, "resolve", refuse)
    monkeypatch.setattr(links, "resolve_link", refuse)


def test_offline_a_prepared_link_resolves_to_its_commit_with_a_note(cfg, no_network):
    save_manifest(cfg, Manifest(links=(prepared(),)))
    resolved = resolve("gh", "org/repo/main", cfg)
    assert resolved.resolved_ref == SHA
    assert resolved.notes == [f"Offline: using the prepared version of gh/org/repo/main (commit {SHA[:12]})"]
    first = next(build_events(cfg, resolved))
    assert first["phase"] == "waiting" and "prepared version" in first["message"]
    assert resolve_link("gh/org/repo/main", cfg).resolved_ref == SHA


def test_offline_an_unprepared_link_fails_at_once_with_the_way_to_see_what_was(cfg, no_network):
    save_manifest(cfg, Manifest(links=(prepared(),)))
    started = time.monotonic()
    with pytest.raises(NotPreparedError) as caught:
        resolve("gh", "org/unknown/main", cfg)
    assert time.monotonic() - started < 1
    assert caught.value.status == 404
    assert "gh/org/unknown/main was not prepared for this workshop" in caught.value.message
    assert "binderlite workshop list" in caught.value.message
    with pytest.raises(NotPreparedError):
        resolve_link(GIT_URL, cfg, "main")  # a git URL: the git/ link of the same URL was not prepared


def test_offline_with_no_workshop_says_how_to_prepare_one(cfg, no_network):
    with pytest.raises(NotPreparedError, match="no workshop is prepared here"):
        resolve("gh", "org/repo/main", cfg)


def test_offline_the_build_stream_fails_with_the_message(cfg, no_network):
    save_manifest(cfg, Manifest(links=(prepared(),)))
    events = list(build_api.events_for(cfg, "gh", "org/unknown/main", False, threading.Event()))
    assert [(e["phase"], e["status_code"]) for e in events] == [("failed", 404)]
    assert "was not prepared for this workshop" in events[0]["message"]


def test_offline_banned_specs_still_apply(tmp_path, no_network):
    cfg = Settings(state_dir=str(tmp_path), offline="yes", banned_specs="^org/repo.*")
    save_manifest(cfg, Manifest(links=(prepared(),)))
    with pytest.raises(BadInputError, match="not allowed to launch"):
        resolve("gh", "org/repo/main", cfg)


LOCAL_URLS = [
    "http://127.0.0.1:18997/new.git",
    "http://localhost:8000/new.git",
    "http://[::1]:8000/new.git",
    "http://10.9.8.7/new.git",  # an address of one of this machine's interfaces (patched below)
]


@pytest.fixture
def local_cfg(tmp_path, no_network, monkeypatch) -> tuple[Settings, list]:
    """Offline with allow_local_repos, a prepared workshop, 10.9.8.7 on an interface; online resolution recorded."""
    cfg = Settings(state_dir=str(tmp_path / "state"), offline="yes", allow_local_repos=True)
    save_manifest(cfg, Manifest(links=(prepared(),)))
    monkeypatch.setattr(localrepo, "interface_addresses", lambda: {"10.9.8.7"})
    calls = []
    monkeypatch.setattr(links, "resolve", lambda provider, spec, settings: calls.append((provider, spec)) or "local")
    return cfg, calls


@pytest.mark.parametrize("url", LOCAL_URLS)
def test_offline_a_new_repository_on_this_machine_resolves_as_always(local_cfg, url):
    cfg, calls = local_cfg
    spec = f"{urllib.parse.quote(url, safe='')}/main"
    assert resolve("git", spec, cfg) == "local"
    assert resolve_link(url, cfg, "main") == "local"
    assert calls == [("git", spec), ("git", spec)]


def test_offline_a_local_repository_resolves_even_with_no_workshop(tmp_path, no_network, monkeypatch):
    cfg = Settings(state_dir=str(tmp_path / "state"), offline="yes", allow_local_repos=True)
    monkeypatch.setattr(links, "resolve", lambda provider, spec, settings: "local")
    assert resolve("git", urllib.parse.quote("http://127.0.0.1:1/x.git", safe="") + "/main", cfg) == "local"


@pytest.mark.parametrize(
    "url",
    [
        "https://git.example.org/lab/new.git",  # a name: never looked up (no_network fails any DNS question)
        "http://localhost.example.org/new.git",
        "http://192.0.2.10/new.git",  # an address, but not one of this machine's
        "git@github.com:org/new.git",
    ],
)
def test_offline_a_new_repository_elsewhere_fails_at_once_without_dns(local_cfg, url):
    cfg, calls = local_cfg
    started = time.monotonic()
    with pytest.raises(NotPreparedError, match="only repositories served from this machine"):
        resolve_link(url, cfg, "main")
    assert time.monotonic() - started < 1
    assert calls == []


def test_offline_a_github_link_is_never_local(local_cfg):
    cfg, calls = local_cfg
    with pytest.raises(NotPreparedError):
        resolve("gh", "org/new/main", cfg)
    assert calls == []


def test_offline_a_local_repository_needs_allow_local_repos(cfg, no_network, monkeypatch):
    save_manifest(cfg, Manifest(links=(prepared(),)))
    monkeypatch.setattr(localrepo, "interface_addresses", lambda: {"10.9.8.7"})
    for url in LOCAL_URLS:
        with pytest.raises(NotPreparedError, match="was not prepared"):
            resolve_link(url, cfg, "main")


def test_a_prepared_local_link_still_resolves_to_its_prepared_commit(local_cfg):
    cfg, calls = local_cfg
    url = "http://127.0.0.1:18997/workshop.git"
    entry = prepared("git", f"{urllib.parse.quote(url, safe='')}/main")
    save_manifest(cfg, Manifest(links=(entry,)))
    assert resolve("git", entry.link.split("/", 1)[1], cfg).resolved_ref == SHA
    assert calls == []


def test_this_machine_is_loopback_localhost_or_an_interface_address():
    addresses = {"10.9.8.7"}.copy
    assert localrepo.is_this_machine("127.0.0.2", addresses)
    assert localrepo.is_this_machine("LOCALHOST", addresses)
    assert localrepo.is_this_machine("[::1]", addresses)
    assert localrepo.is_this_machine("10.9.8.7", addresses)
    assert not localrepo.is_this_machine("10.9.8.8", addresses)
    assert not localrepo.is_this_machine("myhost", addresses)
    assert localrepo.interface_addresses() >= {"127.0.0.1"}  # the real lookup: lo is always there


def test_online_links_resolve_as_always(tmp_path, monkeypatch):
    cfg = Settings(state_dir=str(tmp_path), offline="no")
    save_manifest(cfg, Manifest(links=(prepared(),)))
    calls = []
    monkeypatch.setattr(links, "resolve", lambda provider, spec, settings: calls.append((provider, spec)) or "online")
    assert resolve("gh", "org/repo/main", cfg) == "online"
    assert calls == [("gh", "org/repo/main")]


# ---- bare copies and the list ------------------------------------------------------------


def test_copy_names_are_safe_folder_names_and_unique_per_url():
    name = gitcopy.copy_name("https://github.com/org/repo.git")
    assert name.startswith("github.com-org-repo-") and name.endswith(".git")
    assert "/" not in gitcopy.copy_name("file:///../../etc/passwd")
    assert gitcopy.copy_name("https://github.com/org/repo") != gitcopy.copy_name("https://github.com/org/repo.git")


def test_a_copy_is_used_only_when_it_has_the_commit(tmp_path):
    cfg = Settings(state_dir=str(tmp_path))
    work = tmp_path / "work"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    subprocess.run([*git, "init", "-q", str(work)], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-q", "--allow-empty", "-m", "one"], check=True)
    commit = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    copy = gitcopy.copy_path(cfg, GIT_URL)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(copy)], check=True)
    assert gitcopy.copy_with(cfg, GIT_URL, commit.strip()) == copy
    assert gitcopy.copy_with(cfg, GIT_URL, "b" * 40) is None
    assert gitcopy.copy_with(cfg, "https://elsewhere.example/x.git", commit.strip()) is None
    assert gitcopy.copy_with(cfg, GIT_URL, "HEAD") is None  # only a full commit


def test_the_list_shows_each_link_its_commit_image_and_presence(cfg):
    manifest = Manifest(links=(prepared("gh", "org/repo/main", "img:1"), prepared("gh", "org/b/main", "img:2")))
    text = listing.render(cfg, manifest, {"img:1": True})
    assert text.splitlines()[0].split() == ["LINK", "COMMIT", "IMAGE", "ON", "DAEMON"]
    assert "gh/org/repo/main" in text and SHA[:12] in text
    row = next(line for line in text.splitlines() if "img:2" in line)
    assert "MISSING" in row
    assert "2 prepared links" in text
    assert "No workshop is prepared here" in listing.render(cfg, None, {})


def test_workshop_list_without_a_workshop(tmp_path):
    config = tmp_path / "binderlite.toml"
    config.write_text(f'state_dir = "{tmp_path}"\n')
    result = CliRunner().invoke(main, ["--config", str(config), "workshop", "list"])
    assert result.exit_code == 0
    assert "binderlite workshop prepare LINKS_FILE" in result.output


def test_repos_dir_is_under_the_workshop_folder(cfg):
    assert workshop_prepare.repos_dir(cfg) == Path(cfg.state_dir) / "workshop" / "repos"


# ---- prepare, end to end with the build and the copy stubbed --------------------------------


def test_prepare_prints_the_table_and_names_the_line_that_failed(tmp_path, monkeypatch):
    state = tmp_path / "state"
    config = tmp_path / "binderlite.toml"
    config.write_text(f'state_dir = "{state}"\n')
    links_file = tmp_path / "links.txt"
    links_file.write_text("gh/org/repo/main 12\n")

    def fake_resolve(provider, spec, settings):
        if "broken" in spec:
            raise RefNotFoundError("Could not resolve ref 'main': no such branch, tag or commit.")
        return prepared(provider, spec).resolved()

    monkeypatch.setattr(links, "resolve", fake_resolve)
    monkeypatch.setattr("binderlite.cli.build_resolved", lambda settings, resolved: "bl-org-repo:" + SHA[:8])
    monkeypatch.setattr(workshop_prepare, "make_bare_copy", lambda settings, resolved: "repos/org-repo.git")
    monkeypatch.setattr(workshop_prepare, "workshop_images", lambda settings, echo: [])
    monkeypatch.setattr(workshop_prepare, "collect_packages", lambda settings, manifest, echo: None)
    monkeypatch.setattr(listing, "present_images", lambda settings, manifest: {"bl-org-repo:" + SHA[:8]: True})
    result = CliRunner().invoke(main, ["--config", str(config), "workshop", "prepare", str(links_file)])
    assert result.exit_code == 0, result.output
    assert f"gh/org/repo/main  {SHA[:12]}  bl-org-repo:{SHA[:8]}  yes" in result.output
    assert "1 prepared links, 12 expected attendees" in result.output

    links_file.write_text("gh/org/other/main\ngh/org/broken/main\n")
    result = CliRunner().invoke(main, ["--config", str(config), "workshop", "prepare", str(links_file)])
    assert result.exit_code == 2
    assert "gh/org/broken/main (line 2): Could not resolve ref 'main'" in result.output
    assert [e.spec for e in load_manifest(Settings(state_dir=str(state))).links] == ["org/repo/main"]
