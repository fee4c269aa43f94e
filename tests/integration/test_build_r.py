"""R, Julia and Nix repositories on the real stack: R from Debian runs notebooks; Julia and Nix are refused at once.

The R images start from ``binderlite/base-r:bookworm``, made by the first R
build with debootstrap (and kept, as the base image is). A tiny CRAN-like
repository, served on the build network's gateway, stands in for a CRAN
mirror: CRAN itself is not reachable from this machine.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import tarfile
import threading
import time
from http.server import ThreadingHTTPServer

import pytest

from binderlite.sandbox import dockernet
from tests.helpers.gitserver import QuietHandler
from tests.helpers.images import build_fixture, build_link, run_in_image

pytestmark = pytest.mark.integration

PROBE = {
    "blcranprobe/DESCRIPTION": (
        "Package: blcranprobe\nVersion: 0.1.0\nTitle: A Package Only the Test Mirror Has\n"
        "Description: Says that it came from the mirror.\nAuthor: binderlite tests\n"
        "Maintainer: binderlite tests <tests@binderlite.invalid>\nLicense: MIT\n"
    ),
    "blcranprobe/NAMESPACE": "export(probe)\n",
    "blcranprobe/R/probe.R": 'probe <- function() "from the test mirror"\n',
}


def _tarball(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def cran_mirror(settings, docker_client, tmp_path):
    """A CRAN-like repository of one package at http://<build network gateway>:<port>/2023-01-01/; its requests."""
    contrib = tmp_path / "cran" / "2023-01-01" / "src" / "contrib"
    contrib.mkdir(parents=True)
    (contrib / "PACKAGES").write_text("Package: blcranprobe\nVersion: 0.1.0\nNeedsCompilation: no\n")
    (contrib / "blcranprobe_0.1.0.tar.gz").write_bytes(_tarball(PROBE))
    gateway = dockernet.ensure_network(docker_client, settings.build_network)
    requests: list[str] = []

    class Recording(QuietHandler):
        def do_GET(self):  # noqa: N802 - the base class's name
            requests.append(self.path)
            super().do_GET()

    server = ThreadingHTTPServer((gateway, 0), functools.partial(Recording, directory=str(tmp_path / "cran")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://{gateway}:{server.server_address[1]}/{{date}}", requests
    server.shutdown()
    server.server_close()


def notebook_outputs(out: str) -> list[list[dict]]:
    notebook = json.loads(out[out.index("{") :])
    return [cell["outputs"] for cell in notebook["cells"]]


def test_install_r_repo_runs_an_r_notebook(settings, git_server, docker_client):
    image, log = build_fixture(settings, git_server, "r-install")
    assert "R 4.2.2 from Debian bookworm, with IRkernel" in log
    assert "installing from Debian: r-cran-jsonlite" in log
    assert "install.R runs as jovyan" in log, "install.R runs as the notebook user, never root"
    assert "RStudio Server is not packaged by Debian" in log
    out = run_in_image(
        docker_client,
        image,
        'id -un; jupyter kernelspec list; Rscript -e \'cat(find.package("jsonlite"), .libPaths()[1], sep="\\n")\';'
        " jupyter nbconvert --to notebook --execute --stdout index.ipynb 2>/dev/null",
    )
    lines = out.splitlines()
    assert lines[0] == "jovyan"
    assert any(line.split()[:1] == ["ir"] for line in lines), out
    assert "/usr/lib/R/site-library/jsonlite" in lines and "/srv/rlibs" in lines, out
    first, second = notebook_outputs(out)
    assert any("".join(o.get("data", {}).get("text/plain", "")) == "[1] 2" for o in first), first
    assert any('{"answer":42}' in "".join(o.get("text", "")) for o in second), second


def test_description_repo_installs_the_package(settings, git_server, docker_client):
    image, log = build_fixture(settings, git_server, "r-description")
    assert "installing from Debian: r-cran-jsonlite r-cran-digest" in log
    assert "R packages installed: jsonlite, digest, blfixture" in log
    out = run_in_image(
        docker_client, image, 'cd /tmp && Rscript -e \'cat(blfixture::answer(), find.package("blfixture"), "\\n")\''
    )
    assert '{"answer":42,"hash":' in out and "/srv/rlibs/blfixture" in out, out


def test_nearest_r_version_from_another_release_when_every_package_installs(settings, git_server, docker_client):
    image, log = build_fixture(settings, git_server, "r-nearest-trixie")
    assert "R 4.4 was asked for (runtime.txt)" in log and "the nearest, R 4.5.0 (trixie)" in log
    out = run_in_image(
        docker_client,
        image,
        "R --version | head -n 1; python3 --version; jupyter nbconvert --to notebook --execute --stdout index.ipynb",
    )
    assert "R version 4.5.0" in out and "Python 3.13" in out, out
    first, _ = notebook_outputs(out)
    assert any("".join(o.get("data", {}).get("text/plain", "")) == "[1] 2" for o in first), first


def test_runtime_txt_version_and_date_with_a_cran_mirror(settings, git_server, docker_client, cran_mirror):
    url, requests = cran_mirror
    mirrored = dataclasses.replace(settings, cran_mirror_url=url)
    git_server.add_fixture("r-runtime-mirror")
    final, events = build_link(mirrored, git_server.link("r-runtime-mirror"))
    log = "".join(ev.get("message", "") for ev in events)
    assert final["phase"] == "built", log[-3000:]
    dated = url.replace("{date}", "2023-01-01")
    assert "already installed (Debian's r-cran-* packages): jsonlite" in log
    assert f"from the CRAN mirror {dated}: blcranprobe" in log
    assert "/2023-01-01/src/contrib/blcranprobe_0.1.0.tar.gz" in requests
    out = run_in_image(
        docker_client, final["imageName"], 'Rscript -e \'cat(blcranprobe::probe(), getOption("repos"), "\\n")\''
    )
    assert f"from the test mirror {dated}" in out, out


def test_nearest_r_version_fails_naming_both_when_a_package_does_not_install(settings, git_server):
    git_server.add_fixture("r-nearest-missing")
    final, _ = build_link(settings, git_server.link("r-nearest-missing"))
    assert final["phase"] == "failed"
    message = final["message"]
    assert "R packages that did not install: blnotindebian" in message
    assert "r-cran-blnotindebian" in message and "cran_mirror_url" in message
    assert "R 4.1 was asked for (runtime.txt)" in message and "R 4.2.2 in bookworm" in message


@pytest.mark.parametrize(
    "fixture, expected",
    [
        ("r-old-version", ["R 3.6", "R 4.2.2 in bookworm, R 4.5.0 in trixie"]),
        ("julia-project", ["Julia (Project.toml)", "julialang.org", "build_packs = 'repo2docker'"]),
        ("nix-default", ["Nix (default.nix)", "nixpkgs", "build_packs = 'repo2docker'"]),
    ],
)
def test_unbuildable_repositories_fail_at_once(settings, git_server, fixture, expected):
    git_server.add_fixture(fixture)
    started = time.monotonic()
    final, events = build_link(settings, git_server.link(fixture))
    elapsed = time.monotonic() - started
    assert final["phase"] == "failed"
    assert all(text in final["message"] for text in expected), final["message"]
    log = "".join(ev.get("message", "") for ev in events)
    assert "Step 1/" not in log, "no build step may run"
    assert elapsed < 30, f"{fixture} failed after {elapsed:.0f} s"
    print(f"{fixture}: failed after {elapsed:.1f} s")


def test_shiny_app_is_served_by_debians_shiny_server_through_the_proxys_command(settings, git_server, docker_client):
    image, log = build_fixture(settings, git_server, "r-shiny")
    assert "Shiny Server from Debian bookworm" in log
    serve = (
        "import subprocess, time, urllib.request\n"
        "from jupyter_shiny_proxy import setup_shiny\n"
        "server = subprocess.Popen(setup_shiny()['command'](8787))\n"
        "for _ in range(60):\n"
        "    try:\n"
        "        print(urllib.request.urlopen('http://127.0.0.1:8787/').read().decode()); break\n"
        "    except OSError:\n"
        "        time.sleep(1)\n"
        "server.terminate()\n"
    )
    out = run_in_image(docker_client, image, f"python - <<'EOF'\n{serve}EOF\n")
    assert "binderlite shiny app" in out, out[-3000:]
