"""The compatibility corpus's fast subset: one small fixture repository per repo2docker convention.

Each ``tests/fixtures/repos/compat-*`` repository is modelled on a real one of
``benchmarks/compat_corpus.toml`` (named in its README) but installs only tiny
packages. It is built with the real pipeline and checked the way
``benchmarks/compat.py`` checks the corpus: a command in a container of the
image, as uid 1000, without network. Conventions binderlite cannot build here
(Julia, Nix, a Docker Hub base image) must fail fast and say why. All builds
start together (the queue runs ``build_concurrency`` at once), then each test
reads its result.
"""

from __future__ import annotations

import dataclasses
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from benchmarks.compat import Build, build, reason_line, run_check

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Case:
    fixture: str
    check: str = ""  # a shell command that must exit 0 in the image (expects a build)
    output: str = ""  # a regex its output must match
    reason: tuple[str, ...] = ()  # regexes the failure's reason line must match (expects a failure)
    fail_within: float = 60.0


WORKS = [
    pytest.param(
        Case("compat-requirements", "jupyter nbconvert --to notebook --execute --stdout index.ipynb", r"0\.12\.1"),
        id="requirements.txt",
    ),
    pytest.param(
        Case("compat-apt", "jupyter nbconvert --to notebook --execute --stdout index.ipynb && command -v figlet"),
        id="apt.txt",
    ),
    pytest.param(
        Case(
            "compat-postbuild",
            "cat ~/.postbuild-marker data/squares.csv && jupyter server extension list 2>&1",
            r"postBuild ran as jovyan[\s\S]*4,16(?=[\s\S]*jupyter_resource_usage\s+(\x1b\[\d+m)?enabled)"
            r"(?=[\s\S]*movedextension\s+(\x1b\[\d+m)?enabled)",
        ),
        id="postBuild",
    ),
    pytest.param(Case("compat-start", "echo start=$COMPAT_START", "start=ran"), id="start"),
    pytest.param(
        Case("compat-setup-py", "cd /tmp && python -c 'import compatsetup; print(compatsetup.ANSWER)'", "42"),
        id="setup.py",
    ),
    pytest.param(
        Case(
            "compat-pyproject",
            "cd /tmp && python -c 'import compatproject, tabulate; print(compatproject.add_one(41))'",
            "42",
        ),
        id="pyproject.toml",
    ),
    pytest.param(
        Case(
            "compat-pipfile",
            "python -c 'import toolz; print(toolz.__version__)' && python -c 'import pytest; print(\"dev\", 1)'",
            r"0\.12\.1[\s\S]*dev 1",  # dev-packages too, as repo2docker (pipenv install --dev)
        ),
        id="Pipfile",
    ),
    pytest.param(
        Case(
            "compat-environment-yml",
            "python -c 'import toolz, tabulate, sys; print(toolz.__version__, tabulate.__version__, sys.version)'",
            r"0\.12\.1 0\.9\.0 3\.11",
        ),
        id="environment.yml",
    ),
    pytest.param(
        Case("compat-dockerfile", "cat /srv/compat-dockerfile.txt; id -un", "dockerfile built for jovyan"),
        id="Dockerfile",
    ),
    pytest.param(
        Case("compat-binder-dir", "python -c 'import toolz; print(toolz.__version__)'", r"0\.12\.1"),
        id="binder/",
    ),
    pytest.param(
        Case(
            "compat-dot-binder",
            "cat ~/.dot-binder-marker && python -c 'import toolz' && cd /tmp && "
            "(python -c 'import compatdot' || echo not-installed)",
            r"\.binder postBuild[\s\S]*not-installed",
        ),
        id=".binder/",
    ),
    pytest.param(
        Case("compat-runtime-py39", "python -c 'import sys, six; print(sys.version)'", r"^3\.9\."),
        id="runtime.txt-python-3.9",
    ),
    pytest.param(
        Case(
            "compat-runtime-py27",
            "jupyter nbconvert --to notebook --execute --ExecutePreprocessor.kernel_name=python2 --stdout index.ipynb",
            r"python 2\.7\.\d+ six 1\.16\.0",
        ),
        id="runtime.txt-python-2.7",
    ),
    pytest.param(
        Case(
            "compat-r-install",
            "cat ~/.install-r-marker; jupyter nbconvert --to notebook --execute --stdout index.ipynb",
            r"install\.R ran[\s\S]*\[1\] 2",
        ),
        id="install.R+runtime.txt-r",
    ),
    pytest.param(
        Case("compat-r-description", "Rscript -e 'library(compatdesc); cat(hello())'", "hello from compatdesc"),
        id="DESCRIPTION",
    ),
]
FAILS = [
    pytest.param(Case("compat-julia", reason=(r"(?i)julia", "build_packs")), id="Project.toml"),
    pytest.param(Case("compat-nix", reason=(r"(?i)nix", "build_packs")), id="default.nix"),
    pytest.param(
        Case("compat-dockerfile-hub", reason=(r"(?i)base image", r"(?i)registry")), id="Dockerfile-docker-hub"
    ),
]


def _cases(items) -> set[str]:
    """The fixtures of the selected tests of this module (a -k run builds only what it checks)."""
    fixtures = set()
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec and isinstance(callspec.params.get("case"), Case):
            fixtures.add(callspec.params["case"].fixture)
        elif item.name == "test_docker_hub_failure_names_the_image":
            fixtures.add("compat-dockerfile-hub")
    return fixtures


@pytest.fixture(scope="module")
def compat_builds(request, settings, git_server) -> dict[str, Build]:
    """Every selected fixture, published and built at once (no registry push: the checks run locally)."""
    local = dataclasses.replace(settings, registry="")
    fixtures = sorted(_cases(request.session.items))
    for fixture in fixtures:
        git_server.add_fixture(fixture)
    with ThreadPoolExecutor(max_workers=len(fixtures) or 1) as pool:
        results = pool.map(lambda f: build(local, git_server.link(f)), fixtures)
        return dict(zip(fixtures, results, strict=True))


@pytest.mark.parametrize("case", WORKS)
def test_convention_builds_and_works(case: Case, compat_builds):
    result = compat_builds[case.fixture]
    assert result.built, result.message[-3000:]
    ok, output = run_check(result.final["imageName"], case.check, timeout=300)
    assert ok, output[-3000:]
    assert re.search(case.output, output, re.MULTILINE), output[-3000:]


@pytest.mark.parametrize("case", FAILS)
def test_unbuildable_convention_fails_fast_and_says_why(case: Case, compat_builds):
    result = compat_builds[case.fixture]
    assert not result.built, "built an image instead of refusing: " + "\n".join(result.lines[-20:])
    reason = reason_line(result.message)
    for pattern in case.reason:
        assert re.search(pattern, reason), f"reason {reason!r} does not match {pattern!r}"
    took = result.seconds - result.started
    assert took < case.fail_within, f"failed after {took:.0f} s"
    assert not result.ran_steps, "RUN steps ran before the failure"


def test_docker_hub_failure_names_the_image(compat_builds):
    result = compat_builds["compat-dockerfile-hub"]
    assert not result.built
    assert "python:3.7-slim" in reason_line(result.message)
