"""The steps binderlite's R build pack adds to the Python build pack's Dockerfile, and the R code they run.

Every step is a (user, script) pair of repo2docker's hooks. In order:

1. ``setup`` (root, the same for every repository on a release): the folder
   R packages install into (``R_LIBS_USER``, owned by the notebook user, as
   repo2docker's), the CRAN mirror as R's ``repos`` option, and two helpers.
2. ``debian_packages`` (root): the ``r-cran-*`` packages Debian has for the
   R packages the repository names; Shiny Server when it uses Shiny.
3. ``run_install_r`` (the notebook user, never root): ``install.R`` through
   the helper, after the repository is copied in (as repo2docker's second
   try; its first, before the copy, would need the Python build pack to tell
   its requirements from other early files). Debian's packages, the slow
   part, come from the step before, which a new commit does not rerun
   unless the names change.
4. ``install_description`` (the notebook user): DESCRIPTION's dependencies,
   then the package itself (``R CMD INSTALL .``).
5. ``check_packages`` (the notebook user): every R package the repository
   named must load, or the build fails saying which and why.

The helpers are written with ``printf`` (one quoted argument per line) because
a Dockerfile instruction cannot span lines and the classic builder has no
heredocs; they do not depend on the repository, so their layer is shared.
"""

from __future__ import annotations

R_LIBS_USER = "/srv/rlibs"
HELPERS = "/srv/binderlite/r"
INSTALL_HELPER = f"{HELPERS}/install.R"
CHECK_HELPER = f"{HELPERS}/check.R"
RSCRIPT = "Rscript --no-save --no-restore --no-init-file"
NO_MIRROR = "@CRAN@"  # R's own word for "no mirror chosen": install.packages() then stops and says so

# install.R's install.packages() takes a package that is already installed (from
# Debian's r-cran-* packages, installed in the step before) as done: Debian built
# it for this R, and CRAN would only build it again from source, or be unreachable.
# Everything else goes to the CRAN mirror, as install.packages() always does.
INSTALL_R_CODE = r"""
options(warn = 1)
install.packages <- function(pkgs, ...) {
  have <- intersect(pkgs, rownames(utils::installed.packages()))
  if (length(have))
    message("binderlite: already installed (Debian's r-cran-* packages): ", paste(have, collapse = ", "))
  rest <- setdiff(pkgs, have)
  if (length(rest)) {
    message("binderlite: from the CRAN mirror ", getOption("repos")[["CRAN"]], ": ", paste(rest, collapse = ", "))
    utils::install.packages(rest, ...)
  }
  invisible(NULL)
}
args <- commandArgs(trailingOnly = TRUE)
if (identical(args[1], "--packages")) install.packages(args[-1]) else source(args[1])
"""

CHECK_CODE = r"""
wanted <- commandArgs(trailingOnly = TRUE)
missing <- Filter(function(p) !suppressWarnings(requireNamespace(p, quietly = TRUE)), wanted)
if (length(missing)) {
  mirror <- getOption("repos")[["CRAN"]]
  from <- if (identical(mirror, "@CRAN@")) "no CRAN mirror is configured (setting cran_mirror_url)" else
    paste0("the CRAN mirror ", mirror, " (setting cran_mirror_url) did not provide them: see the lines above ",
           "for why (a mirror this machine cannot reach, or a system library missing from apt.txt)")
  cat("binderlite: R packages that did not install: ", paste(missing, collapse = ", "), ".\n", sep = "")
  cat("binderlite: Debian ", Sys.getenv("BINDERLITE_DEBIAN"), " has no ",
      paste0("r-cran-", tolower(missing), collapse = ", "), ", and ", from, ".\n", sep = "")
  note <- Sys.getenv("BINDERLITE_R_VERSION_NOTE")
  if (nzchar(note)) cat("binderlite: ", note, "\n", sep = "")
  quit(status = 1)
}
if (length(wanted)) cat("binderlite: R packages installed: ", paste(wanted, collapse = ", "), "\n", sep = "")
"""


def shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _write(path: str, code: str) -> str:
    lines = " ".join(shell_quote(line) for line in code.strip().splitlines())
    return f"printf '%s\\n' {lines} > {path}"


def setup(cran_url: str) -> tuple[str, str]:
    """Root: the user library, R's CRAN mirror (for builds and servers), the helpers."""
    repos = f'options(repos = c(CRAN = "{cran_url or NO_MIRROR}"))'
    return (
        "root",
        f"install -o ${{NB_USER}} -g ${{NB_USER}} -d {R_LIBS_USER} && "
        f"echo 'R_LIBS_USER={R_LIBS_USER}' >> /etc/R/Renviron.site && "
        f"echo {shell_quote(repos)} >> /etc/R/Rprofile.site && "
        f"install -d {HELPERS} && {_write(INSTALL_HELPER, INSTALL_R_CODE)} && {_write(CHECK_HELPER, CHECK_CODE)} && "
        "R --version | head -n 1",
    )


def debian_packages(candidates: list[str], extra: list[str]) -> tuple[str, str]:
    """Root: those of ``candidates`` Debian has, and ``extra``; the rest is said in the log."""
    names = " ".join(shell_quote(name) for name in candidates)
    return (
        "root",
        "apt-get -qq update && wanted=" + shell_quote(" ".join(extra)) + " && "
        f"for p in {names}; do "
        'if apt-cache show --no-all-versions "$p" 2>/dev/null | grep -q \'^Package:\'; then wanted="$wanted $p"; '
        'else echo "binderlite: Debian has no $p; install.R or DESCRIPTION gets it from the CRAN mirror"; fi; '
        "done && "
        'if [ -n "$wanted" ]; then echo "binderlite: installing from Debian:$wanted" && '
        "apt-get install --yes --no-install-recommends $wanted; fi && "
        "apt-get -qq clean && rm -rf /var/lib/apt/lists/*",
    )


def shiny_folders() -> tuple[str, str]:
    """Root: what Shiny Server writes, owned by the notebook user it runs as (as repo2docker does)."""
    return (
        "root",
        "install -o ${NB_USER} -g ${NB_USER} -d /var/log/shiny-server /var/lib/shiny-server && "
        "install -o ${NB_USER} -g ${NB_USER} /dev/null /var/log/shiny-server.log && "
        "install -o ${NB_USER} -g ${NB_USER} /dev/null /var/run/shiny-server.pid",
    )


def _saying(command: str, version_note: str) -> str:
    """``command``, and if it fails, the R version note as the log's last line."""
    if not version_note:
        return command
    return f"{command} || {{ echo {shell_quote('binderlite: ' + version_note)}; exit 1; }}"


def run_install_r(path: str, version_note: str) -> tuple[str, str]:
    """The notebook user runs install.R, in the repository (it may read its files)."""
    return ("${NB_USER}", _saying(f"{RSCRIPT} {INSTALL_HELPER} {shell_quote(path)}", version_note))


def install_description(dependencies: list[str], version_note: str) -> tuple[str, str]:
    """The notebook user installs DESCRIPTION's dependencies (Debian's first), then the package."""
    deps = " ".join(shell_quote(name) for name in dependencies)
    install_deps = f"{RSCRIPT} {INSTALL_HELPER} --packages {deps} && " if dependencies else ""
    return ("${NB_USER}", _saying(f"{install_deps}R CMD INSTALL .", version_note))


def check_packages(packages: list[str], suite: str, version_note: str) -> tuple[str, str]:
    """The notebook user checks that every named package loads; the build fails naming those that do not."""
    names = " ".join(shell_quote(name) for name in packages)
    env = f"BINDERLITE_DEBIAN={shell_quote(suite)}"
    if version_note:
        env += f" BINDERLITE_R_VERSION_NOTE={shell_quote(version_note)}"
    return ("${NB_USER}", f"{env} {RSCRIPT} {CHECK_HELPER} {names}")
