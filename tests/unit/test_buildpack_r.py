"""R, Julia and Nix: which build pack a repository gets, which R it gets, and what its files put in the Dockerfile."""

from __future__ import annotations

import logging

import pytest

from binderlite.builds.baseimage import LocalBase
from binderlite.builds.buildpacks import buildpack_classes
from binderlite.builds.buildpacks.r import ROptions, choose_r_release
from binderlite.builds.buildpacks.rpackages import description_dependencies, install_r_packages
from binderlite.errors import BadInputError, ConfigError
from binderlite.sandbox import dockernet
from binderlite.settings import Settings


@pytest.fixture
def settings(tmp_path, stages):
    return Settings(state_dir=str(tmp_path / "state"))


@pytest.fixture
def repo(tmp_path, monkeypatch):
    path = tmp_path / "repo"
    path.mkdir()
    monkeypatch.chdir(path)
    return path


def picked(settings, cran_mirror_url="https://cran.example.org", made=None):
    """The build pack repo2docker would pick for the current folder, with the R base image faked."""
    made = [] if made is None else made

    def base_image(suite, log):
        made.append(suite)
        python = {"bookworm": "3.11", "trixie": "3.13"}[suite]
        return LocalBase(f"binderlite/base-r:{suite}", f"sha256:{suite}-r-base-id", (python,), None)

    for cls in buildpack_classes(settings):
        if cls.__name__ == "BinderliteRBuildPack":
            cls.r_options = ROptions(cran_mirror_url, base_image)
        pack = cls(base_image="binderlite/base:bookworm")
        if pack.detect():
            return pack
    raise AssertionError("nothing detected")


def render(pack) -> str:
    return pack.render({"NB_USER": "jovyan", "NB_UID": "1000"})


# ---- which build pack -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "files, expected",
    [
        ({"install.R": 'install.packages("x")\n'}, "BinderliteRBuildPack"),
        ({"binder/install.R": ""}, "BinderliteRBuildPack"),
        ({"DESCRIPTION": "Package: p\n"}, "BinderliteRBuildPack"),
        ({"DESCRIPTION": "Package: p\n", "binder/requirements.txt": "six\n"}, "BinderlitePythonBuildPack"),
        ({"runtime.txt": "r-4.2-2023-01-01\n"}, "BinderliteRBuildPack"),
        ({"runtime.txt": "r-2023-01-01\n"}, "BinderliteRBuildPack"),
        ({"runtime.txt": "python-3.11\n"}, "BinderlitePythonBuildPack"),
        ({"requirements.txt": "six\n"}, "BinderlitePythonBuildPack"),
        ({"Project.toml": "", "install.R": ""}, "JuliaBuildPack"),  # more specific first, as repo2docker
        ({"binder/REQUIRE": ""}, "JuliaBuildPack"),
        ({"JuliaProject.toml": ""}, "JuliaBuildPack"),
        ({"default.nix": "", "install.R": ""}, "NixBuildPack"),
        ({"Dockerfile": "FROM x\n", "install.R": ""}, "DockerBuildPack"),
    ],
)
def test_detection_follows_repo2docker_order(settings, repo, files, expected):
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    assert type(picked(settings)).__name__ == expected


@pytest.mark.parametrize("files", [{"Project.toml": ""}, {"REQUIRE": ""}, {"binder/default.nix": ""}])
def test_julia_and_nix_are_refused_naming_what_is_missing_and_the_setting(settings, repo, files):
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    with pytest.raises(BadInputError) as error:
        render(picked(settings))
    message = error.value.message
    assert "build_packs = 'repo2docker'" in message
    assert ("julialang.org" in message) if "nix" not in str(files) else ("nixpkgs" in message)


# ---- which R -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "requested, suite, substituted",
    [
        (None, "bookworm", False),
        ("4.2", "bookworm", False),
        ("4.2.3", "bookworm", False),  # the same X.Y is the same R for this rule, as for Python
        ("4.0", "bookworm", True),  # bullseye has R 4.0.4, but no Python the hub's jupyterhub runs on
        ("4.5.1", "trixie", False),
        ("4.1", "bookworm", True),  # as near to 4.0 as to 4.2: the newer
        ("4.3", "bookworm", True),
        ("4.4", "trixie", True),
        ("4.9", "trixie", True),
    ],
)
def test_r_version_is_what_a_release_has_or_the_nearest_of_that_major(requested, suite, substituted):
    choice = choose_r_release(requested)
    assert choice.release.suite == suite
    assert bool(choice.note) is substituted
    if substituted:
        assert f"R {requested} was asked for" in choice.note and f"nearest, R {choice.release.version}" in choice.note


@pytest.mark.parametrize("requested", ["3.6", "5.0", "3.6.3"])
def test_an_r_no_release_has_fails_naming_requested_and_available(requested):
    with pytest.raises(BadInputError) as error:
        choose_r_release(requested)
    assert f"R {requested}" in error.value.message
    assert "R 4.2.2 in bookworm, R 4.5.0 in trixie" in error.value.message


@pytest.mark.parametrize("requested", ["four", "4", "4.2;id", "4.2.2.1"])
def test_an_r_version_that_is_not_a_version_fails(requested):
    with pytest.raises(BadInputError, match="not a version"):
        choose_r_release(requested)


def test_runtime_txt_that_is_not_r_syntax_fails_clearly(settings, repo):
    (repo / "runtime.txt").write_text("r-4.2-2023-13-45\n")
    with pytest.raises(BadInputError, match="runtime.txt says"):
        render(picked(settings))


def test_an_unavailable_r_fails_before_the_base_image_is_made(settings, repo):
    (repo / "runtime.txt").write_text("r-3.6-2019-01-01\n")
    made: list[str] = []
    with pytest.raises(BadInputError):
        render(picked(settings, made=made))
    assert made == []


# ---- the R packages a repository names --------------------------------------------------------


@pytest.mark.parametrize(
    "code, names",
    [
        ('install.packages("jsonlite")', ["jsonlite"]),
        ("install.packages(c('a1', \"data.table\"), repos = 'https://x.org/cran')", ["a1", "data.table"]),
        ('utils::install.packages(pkgs = c("R6"), dependencies = TRUE)', ["R6"]),
        ('install.packages(dependencies = TRUE, pkgs = "ggplot2")', ["ggplot2"]),
        ('install.packages(\n  c("a1",  # a comment "x1"\n    "b2")\n)', ["a1", "b2"]),
        ('# install.packages("commented")\ninstall.packages("kept")', ["kept"]),
        ('install.packages("local_1.0.tar.gz", repos = NULL)', []),
        ('install.packages("pkg.tar.gz")', []),
        ('pkgs <- c("dyn"); install.packages(pkgs)', []),  # not static: install.R still installs it at build time
        ('install.packages("stats"); install.packages("x;rm -rf /")', []),
        ('remotes::install_github("a/b"); devtools::install_version("c", "1.0")', []),
        ('install.packages("a1"); install.packages("a1")', ["a1"]),
        ('my_install.packages("no")', []),
    ],
)
def test_install_r_package_names_are_found_in_the_text(code, names):
    assert install_r_packages(code) == names


def test_description_dependencies_without_r_and_its_own_packages():
    text = (
        "Package: p\nDepends: R (>= 4.0), methods\nImports:\n    jsonlite (>= 1.0),\n    digest,\n"
        "    x;evil\nLinkingTo: Rcpp\nSuggests: testthat\n"
    )
    assert description_dependencies(text) == ["jsonlite", "digest", "Rcpp"]


# ---- the Dockerfile ----------------------------------------------------------------------------


def test_r_dockerfile_starts_from_the_r_base_and_runs_install_r_as_the_notebook_user(settings, repo, caplog, stages):
    (repo / "install.R").write_text('install.packages(c("jsonlite", "shiny"))\n')
    (repo / "runtime.txt").write_text("r-4.4-2024-05-01\n")
    made: list[str] = []
    pack = picked(settings, cran_mirror_url="https://p3m.example.org/cran/{date}", made=made)
    with caplog.at_level(logging.INFO, logger="repo2docker"):
        dockerfile = render(pack)
        render(pack)  # repo2docker renders twice
    assert made == ["trixie"], "the base image is asked for once"
    assert "FROM sha256:trixie-r-base-id\n" in stages.dockerfile("tooling")
    assert "uv venv --quiet --python /usr/bin/python3.13" in stages.dockerfile("tooling"), "JupyterLab on R's Python"
    assert f"FROM sha256:tooling-stage-{stages.asked[0].key}\n" in dockerfile, "the image starts from the tooling"
    assert 'options(repos = c(CRAN = "https://p3m.example.org/cran/2024-05-01"))' in dockerfile
    assert "'r-cran-jsonlite' 'r-cran-shiny'" in dockerfile and "wanted='shiny-server'" in dockerfile
    assert "jupyter-shiny-proxy" in dockerfile
    lines = dockerfile.splitlines()
    install = next(i for i, line in enumerate(lines) if "/srv/binderlite/r/install.R 'install.R'" in line)
    user = [line for line in lines[:install] if line.startswith("USER ")][-1]
    assert user == "USER ${NB_USER}", "install.R runs as the notebook user, never root"
    # install.R failing, or a package not loading after it, names the versions (the nearest R was used)
    assert "|| { echo 'binderlite: R 4.4 was asked for" in lines[install]
    assert "R 4.4 was asked for" in lines[install + 1] and "check.R" in lines[install + 1]
    notes = [r.getMessage() for r in caplog.records]
    assert sum("R 4.4 was asked for" in n for n in notes) == 1
    assert any("RStudio Server is not packaged by Debian" in n for n in notes)
    assert any("Shiny Server from Debian trixie" in n for n in notes)


def test_snapshot_date_without_a_date_mirror_is_said_and_no_mirror_is_r_s_own_word(settings, repo, caplog, stages):
    (repo / "runtime.txt").write_text("r-2023-01-01\n")
    with caplog.at_level(logging.INFO, logger="repo2docker"):
        dockerfile = render(picked(settings, cran_mirror_url=""))
    assert 'options(repos = c(CRAN = "@CRAN@"))' in dockerfile
    assert "FROM sha256:bookworm-r-base-id\n" in stages.dockerfile("tooling")
    assert any("snapshot date 2023-01-01 is not used" in r.getMessage() for r in caplog.records)


def test_description_installs_dependencies_then_the_package_and_checks_it(settings, repo):
    (repo / "DESCRIPTION").write_text("Package: mypkg\nImports: jsonlite\n")
    dockerfile = render(picked(settings))
    assert "install.R --packages 'jsonlite' && R CMD INSTALL ." in dockerfile
    assert "check.R 'jsonlite' 'mypkg'" in dockerfile


@pytest.mark.parametrize("url", ['https://x.org/"); system("id', "https://x.org/$(id)", "https://u:p@x.org/", "x"])
def test_cran_mirror_url_setting_is_checked(url):
    with pytest.raises(ConfigError, match="cran_mirror_url"):
        Settings(cran_mirror_url=url)


def test_a_cran_mirror_is_reachable_from_builds_and_servers():
    settings = Settings(cran_mirror_url="http://192.0.2.7:8080/cran/{date}")
    assert ("192.0.2.7", 8080) in dockernet.index_endpoints(settings)
