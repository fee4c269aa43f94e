"""The workshop's package mirror and local index, without Docker or a network: platform tags, what an
image holds, what the mirror lacks, when builds use the index, and what a build says when the mirror lacks
a package."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import subprocess
import threading

import pytest
from packaging.tags import Tag

from binderlite.builds import packageindex
from binderlite.builds.buildpacks import build_options, buildpack_classes, envtool, mirror_environment
from binderlite.errors import ConfigError
from binderlite.links import offline
from binderlite.sandbox import dockernet
from binderlite.services.table import all_services, index_service
from binderlite.settings import Settings
from binderlite.workshop import index, manifest, mirror
from binderlite.workshop.mirror import Target, no_match, parse_probe, wanted_now
from tests.unit.test_stages import BASE

BOOKWORM = Target("3.11", "cp311", "x86_64", 36)
URL = "http://172.19.0.1:8587/simple/"


# ---- platform tags ------------------------------------------------------------------
def test_platforms_are_every_manylinux_the_c_library_runs_newest_first_then_plain_linux():
    platforms = BOOKWORM.platforms()
    assert platforms[0] == "manylinux_2_36_x86_64"
    assert platforms[-1] == "linux_x86_64"
    for tag in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"):
        assert tag in platforms
    assert "manylinux_2_37_x86_64" not in platforms and not any("aarch64" in p for p in platforms)


def test_pip_is_asked_for_wheels_of_that_python_and_platform_only():
    options = BOOKWORM.pip_options()
    assert options[:6] == ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"]
    assert options.count("--platform") == len(BOOKWORM.platforms())


def test_wheel_tags_of_the_target_include_abi3_and_pure_wheels_not_other_pythons():
    wanted = BOOKWORM.tags()
    assert Tag("cp311", "cp311", "manylinux_2_17_x86_64") in wanted
    assert Tag("cp38", "abi3", "manylinux2014_x86_64") in wanted
    assert Tag("py3", "none", "any") in wanted
    assert Tag("cp312", "cp312", "manylinux_2_17_x86_64") not in wanted
    assert Tag("cp311", "cp311", "musllinux_1_2_x86_64") not in wanted


# ---- what an image holds ----------------------------------------------------------------
def probe_output(**overrides) -> str:
    raw = {
        "python": "3.11",
        "implementation": "cpython",
        "soabi": "cpython-311-x86_64-linux-gnu",
        "platform": "linux-x86_64",
        "libc": ["glibc", "2.36"],
        "distributions": [["toolz", "1.0.0"], ["jupyterlab", "4.4.0"], ["toolz", "1.0.0"]],
    }
    return "some noise\n" + json.dumps({**raw, **overrides}) + "\n"


def test_the_probe_gives_the_python_and_the_distributions_without_repeats():
    contents = parse_probe("img:1", probe_output())
    assert contents.target == BOOKWORM
    assert contents.distributions == (("jupyterlab", "4.4.0"), ("toolz", "1.0.0"))


@pytest.mark.parametrize(
    "output",
    ["", "not json\n", probe_output(libc=["", ""]), probe_output(implementation="pypy"), probe_output(python="3")],
)
def test_an_image_that_is_not_binderlites_is_named_in_a_clear_error(output):
    with pytest.raises(ConfigError, match=r"Could not read which Python packages img:2 holds"):
        parse_probe("img:2", output)


# ---- what the mirror lacks --------------------------------------------------------------
def test_only_what_the_mirror_lacks_for_that_python_is_fetched(tmp_path):
    for name in (
        "toolz-1.0.0-py3-none-any.whl",
        "numpy-2.1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",  # another Python's
        "pyyaml-6.0.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "Legacy_Thing-0.3.tar.gz",  # no wheel existed: its sdist counts
        "not-a-distribution.txt",
    ):
        (tmp_path / name).write_text("")
    wanted = [("toolz", "1.0.0"), ("numpy", "2.1.0"), ("PyYAML", "6.0.2"), ("legacy.thing", "0.3"), ("six", "1.16")]
    lacking, have = wanted_now(tmp_path, BOOKWORM, wanted)
    assert have == 3
    assert lacking == [("numpy", "2.1.0"), ("six", "1.16")]


def test_pips_no_match_lines_name_the_distributions_with_no_wheel():
    output = (
        "ERROR: Could not find a version that satisfies the requirement Legacy.Thing==0.3 (from versions: none)\n"
        "ERROR: No matching distribution found for Legacy.Thing==0.3\n"
    )
    assert no_match(output) == {"legacy-thing"}
    assert no_match("ERROR: HTTP error 503") == set()


def test_the_report_says_what_was_not_mirrored(tmp_path):
    report = mirror.MirrorReport(tmp_path, images=1, wanted=3, already=1, wheels=1, missing=["mine==0.1 (Python 3.11)"])
    assert "not on the index (not mirrored): mine==0.1 (Python 3.11)" in report.summary()


# ---- when builds use the index ----------------------------------------------------------
@pytest.mark.parametrize(
    ("setting", "mirror_there", "offline", "used"),
    [
        ("offline", True, True, True),
        ("offline", True, False, False),
        ("offline", False, True, False),
        ("always", True, False, True),
        ("always", False, False, False),
        ("never", True, True, False),
    ],
)
def test_the_index_decision_table(setting, mirror_there, offline, used):
    assert index.index_in_use(setting, mirror_there, lambda: offline) is used


def test_builds_look_for_the_manifest_and_the_mirror_where_the_workshop_keeps_them(tmp_path):
    settings = Settings(state_dir=str(tmp_path))
    assert settings.workshop_dir / offline.MANIFEST_NAME == manifest.manifest_path(settings)
    assert packageindex.mirror_path(settings) == mirror.mirror_dir(settings) == settings.workshop_dir / "mirror"


def test_always_does_not_ask_whether_the_machine_is_offline():
    def asked():
        raise AssertionError("asked")

    assert index.index_in_use("always", True, asked)
    assert not index.index_in_use("offline", False, asked)


def test_the_url_is_the_builds_gateway_on_the_index_port(tmp_path, monkeypatch):
    settings = Settings(state_dir=str(tmp_path), workshop_index="always", workshop_index_port=18587)
    monkeypatch.setattr(packageindex, "build_network_gateway", lambda s: "172.19.0.1")
    assert index.workshop_index_url(settings) is None, "no mirror: the configured index"
    mirror.mirror_dir(settings).mkdir(parents=True)
    (mirror.mirror_dir(settings) / "toolz-1.0.0-py3-none-any.whl").write_text("")
    assert index.workshop_index_url(settings) == "http://172.19.0.1:18587/simple/"


# ---- builds pointed at it -----------------------------------------------------------------
def test_the_mirrors_variables_send_uv_and_pip_to_the_index_alone(tmp_path):
    settings = Settings(state_dir=str(tmp_path), extra_index_url="https://extra.example/simple", no_proxy="corp")
    env = dict(mirror_environment(settings, URL))
    assert env["UV_DEFAULT_INDEX"] == env["PIP_INDEX_URL"] == URL
    assert env["UV_INDEX"] == env["PIP_EXTRA_INDEX_URL"] == "", "no other index to look up offline"
    assert env["PIP_TRUSTED_HOST"] == "172.19.0.1" and env["UV_NO_CONFIG"] == "1"
    assert env["NO_PROXY"] == env["no_proxy"] == "corp,172.19.0.1"
    assert env[envtool.MIRROR_VARIABLE] == "1"
    assert mirror_environment(settings, None) == ()


def test_only_the_repositorys_packages_stage_uses_the_mirror_and_the_shared_stages_stay(tmp_path, monkeypatch):
    from tests.helpers.stages import RecordingStages

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "requirements.txt").write_text("toolz==1.0.0\n")
    monkeypatch.chdir(repo)
    rendered = {}
    for url in (None, URL):
        monkeypatch.setattr("binderlite.builds.buildpacks.workshop_index_url", lambda s, url=url: url)
        stages = RecordingStages()
        cls = next(c for c in buildpack_classes(Settings(state_dir=str(tmp_path / "s"))) if "Python" in c.__name__)
        cls.options = type(cls.options)(**{**cls.options.__dict__, "base_images": (BASE,), "stages": stages})
        dockerfile = cls(base_image=BASE.name).render({"NB_USER": "jovyan", "NB_UID": "1000"})
        rendered[url] = (dockerfile, [s.key for s in stages.asked])
    plain, keys = rendered[None]
    with_mirror, mirror_keys = rendered[URL]
    assert keys == mirror_keys, "the shared stages are the same images: nothing to remake offline"
    assert "BINDERLITE_PACKAGE_MIRROR" not in plain
    packages_stage, image_stage = with_mirror.split("# ---- the image:")
    assert f'ENV UV_DEFAULT_INDEX="{URL}"' in packages_stage and f'ENV PIP_INDEX_URL="{URL}"' in packages_stage
    assert URL not in image_stage, "the image keeps the configured index"


# ---- what a build says when the mirror lacks a package ------------------------------------
UV_NOT_FOUND = (
    "  cause: Because more-itertools was not found in the package registry and you require "
    "more-itertools==10.5.0, we can conclude that your requirements are unsatisfiable.\n"
)
PIP_NOT_FOUND = "ERROR: No matching distribution found for more-itertools==10.5.0\n"
UV_NO_VERSION = "  cause: Because there is no version of toolz==9.9 and you require toolz==9.9, we can conclude\n"


@pytest.mark.parametrize(
    ("output", "name"),
    [(UV_NOT_FOUND, "more-itertools"), (PIP_NOT_FOUND, "more-itertools==10.5.0"), (UV_NO_VERSION, "toolz==9.9")],
)
def test_a_package_the_mirror_lacks_is_named_and_the_mirror_blamed(output, name):
    found, why = envtool.reason(output, "3.11", mirror=True)
    assert found == name
    assert why.startswith("the workshop's package mirror lacks it")
    assert "mirror" not in envtool.reason(output, "3.11")[1], "without the mirror: the package index's words"


def test_the_install_line_names_the_mirror_when_the_build_uses_it(monkeypatch, capsys):
    monkeypatch.setenv(envtool.MIRROR_VARIABLE, "1")
    command = ["sh", "-c", f"printf '%s\\n' '{UV_NOT_FOUND.strip()}'; exit 1"]
    assert envtool.install(["3.11", "requirements.txt", "", "--", *command]) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(
        "binderlite: error: more-itertools (from requirements.txt) could not be installed on Python 3.11: "
        "the workshop's package mirror lacks it"
    )


# ---- the kernel's rules and the service -------------------------------------------------------
def test_builds_may_reach_the_index_on_their_gateway_and_servers_may_not(monkeypatch):
    monkeypatch.setattr(dockernet, "docker_resolvers", lambda: [])
    settings = Settings(workshop_index_port=18587)
    server, build = dockernet.confinements(settings, "172.18.0.1", "172.19.0.1")
    assert ("172.19.0.1", 18587) in build.endpoints
    assert not any(port == 18587 for _, port in server.endpoints)
    never = dockernet.confinements(settings.with_overrides(workshop_index="never"), "172.18.0.1", "172.19.0.1")
    assert not any(port == 18587 for _, port in never[1].endpoints)


def test_the_index_service_runs_only_where_a_mirror_exists(tmp_path, monkeypatch):
    settings = Settings(state_dir=str(tmp_path), registry="")
    find = {"configurable-http-proxy": "/usr/bin/chp"}.__getitem__
    assert "index" not in [s.name for s in all_services(settings, find=find)]
    mirror.mirror_dir(settings).mkdir(parents=True)
    (mirror.mirror_dir(settings) / "toolz-1.0.0-py3-none-any.whl").write_text("")
    names = [s.name for s in all_services(settings, find=find)]
    assert names == ["proxy", "hub", "index", "web", "scheduler"], "before the web app, which starts builds"
    assert "index" not in [s.name for s in all_services(settings.with_overrides(workshop_index="never"), find=find)]


def test_the_index_serves_the_mirror_read_only_never_falling_back_to_pypi(tmp_path, monkeypatch):
    settings = Settings(state_dir=str(tmp_path), workshop_index_port=18587)
    monkeypatch.setattr("binderlite.services.table.build_network_gateway", lambda s: "172.19.0.1")
    service = index_service(settings, python="/venv/bin/python")
    argv = service.command(service.setup())
    assert argv[:4] == ["/venv/bin/python", "-m", "pypiserver", "run"]
    assert argv[argv.index("--host") + 1] == "172.19.0.1" and argv[argv.index("--port") + 1] == "18587"
    assert "--disable-fallback" in argv and argv[-1] == str(mirror.mirror_dir(settings))
    assert service.user == settings.service_user


# ---- fetching ---------------------------------------------------------------------------------
def test_pins_with_no_wheel_leave_the_batch_and_the_rest_still_come(tmp_path, monkeypatch):
    fetcher = mirror.Fetcher(Settings(state_dir=str(tmp_path)), tmp_path, print)
    asked = []

    def pip_download(target, specs, deps):
        asked.append(list(specs))
        if "legacy==0.3" in specs:
            return subprocess.CompletedProcess([], 1, "", "ERROR: No matching distribution found for legacy==0.3\n")
        return subprocess.CompletedProcess([], 0, "", "")

    monkeypatch.setattr(fetcher, "pip_download", pip_download)
    fetched, without = fetcher.wheels(BOOKWORM, [("toolz", "1.0.0"), ("legacy", "0.3")])
    assert (fetched, without) == (1, [("legacy", "0.3")])
    assert asked == [["toolz==1.0.0", "legacy==0.3"], ["toolz==1.0.0"]]


def test_pip_failing_for_another_reason_is_an_error_in_words(tmp_path, monkeypatch):
    fetcher = mirror.Fetcher(Settings(state_dir=str(tmp_path)), tmp_path, print)
    failed = subprocess.CompletedProcess([], 1, "", "ERROR: HTTP error 503 while getting https://index/x.whl\n")
    monkeypatch.setattr(fetcher, "pip_download", lambda *args, **kwargs: failed)
    with pytest.raises(ConfigError, match="pip could not download wheels for Python 3.11 .*HTTP error 503"):
        fetcher.wheels(BOOKWORM, [("toolz", "1.0.0")])


@pytest.fixture
def simple_index(tmp_path):
    """A one-project simple index on 127.0.0.1: legacy 0.3's sdist (right hash) and 0.4's (wrong hash)."""
    root = tmp_path / "index"
    (root / "simple" / "legacy").mkdir(parents=True)
    (root / "files").mkdir()
    good, bad = b"sdist 0.3", b"sdist 0.4"
    (root / "files" / "legacy-0.3.tar.gz").write_bytes(good)
    (root / "files" / "legacy-0.4.tar.gz").write_bytes(bad)
    page = (
        f'<a href="../../files/legacy-0.3.tar.gz#sha256={hashlib.sha256(good).hexdigest()}">legacy-0.3.tar.gz</a>\n'
        f'<a href="../../files/legacy-0.4.tar.gz#sha256={"0" * 64}">legacy-0.4.tar.gz</a>\n'
    )
    (root / "simple" / "legacy" / "index.html").write_text(page)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple/"
    server.shutdown()


def test_an_sdist_comes_from_the_simple_index_only_with_the_indexs_hash(tmp_path, simple_index):
    out = tmp_path / "mirror"
    out.mkdir()
    said = []
    fetcher = mirror.Fetcher(Settings(state_dir=str(tmp_path), package_index_url=simple_index), out, said.append)
    assert fetcher.sdist("Legacy", "0.3")
    assert (out / "legacy-0.3.tar.gz").read_bytes() == b"sdist 0.3"
    assert not fetcher.sdist("legacy", "0.4")
    assert said == ["legacy-0.4.tar.gz: its sha256 is not the one the index gives; not mirrored"]
    assert not fetcher.sdist("legacy", "0.5") and not fetcher.sdist("absent", "1.0")
    assert sorted(p.name for p in out.iterdir()) == ["legacy-0.3.tar.gz"]


def test_with_a_mirror_the_units_start_the_index_as_the_service_user_before_the_web_app(tmp_path):
    from binderlite.services.units import REFERENCE_PROGRAMS, Install, render_units

    settings = Settings(state_dir=str(tmp_path))
    mirror.mirror_dir(settings).mkdir(parents=True)
    (mirror.mirror_dir(settings) / "toolz-1.0.0-py3-none-any.whl").write_text("")
    units = render_units(settings, Install.of("/etc/binderlite.toml", "/opt/venv", REFERENCE_PROGRAMS.__getitem__))
    unit = units["binderlite-index.service"]
    assert f"User={settings.service_user}\n" in unit and "--disable-fallback" in unit
    assert "the host's address on the builds' network" in unit
    wants = units["binderlite.target"].split("Wants=")[1].split()
    assert wants.index("binderlite-hub.service") < wants.index("binderlite-index.service")
    assert wants.index("binderlite-index.service") < wants.index("binderlite-web.service")


def test_an_index_that_does_not_answer_is_said_so_not_blamed_on_a_package():
    output = (
        "error: Request failed after 3 retries\n"
        "  cause: error sending request for url (http://172.19.0.1:8587/simple/toolz/)\n"
        "  cause: Connection refused (os error 111)\n"
    )
    assert envtool.reason(output, "3.11", mirror=True) == (
        "",
        "the workshop's package index did not answer (`binderlite up` runs it where a mirror exists)",
    )


def test_offline_builds_copy_in_the_ca_bundle_the_carried_stages_were_made_with(tmp_path):
    own = tmp_path / "own-ca.crt"
    own.write_text("this laptop's CA bundle\n")
    settings = Settings(state_dir=str(tmp_path / "state"), ca_bundle=str(own), offline="yes")
    assert packageindex.build_ca_bundle(settings) == str(own)  # nothing carried: the machine's own
    carried = packageindex.carried_ca_bundle(settings)
    carried.parent.mkdir(parents=True)
    carried.write_text("the preparing machine's CA bundle\n")
    assert packageindex.build_ca_bundle(settings) == str(carried)
    assert packageindex.build_ca_bundle(settings.with_overrides(offline="no")) == str(own)  # online: its own
    assert build_options(settings).ca_bundle == str(carried.resolve())
