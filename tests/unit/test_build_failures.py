"""A failed build ends with one line a user understands: the step, its exit status, the limit hit."""

import pytest

from binderlite.builds.engine import BuildLimits, failure_reason, output_lines, telling_line

LIMITS = BuildLimits(memory=512 * 2**20, cpus=1.0, processes=64, disk=200 * 2**20, image=2**34, network="n")


def command(script: str, code: int) -> str:
    return f"The command '/bin/sh -c {script}' returned a non-zero code: {code}"


@pytest.mark.parametrize(
    "error, reason",
    [
        (command("chmod +x postBuild && ./postBuild", 3), "postBuild failed (exit status 3)"),
        (command("chmod +x binder/postBuild && ./binder/postBuild", 1), "postBuild failed (exit status 1)"),
        (command("apt-get -qq update && apt-get install --yes x", 100), "apt.txt failed (exit status 100)"),
        (
            command("uv pip install --python ${VENV_DIR}/bin/python -r 'requirements.txt'", 1),
            "requirements.txt failed (exit status 1)",
        ),
        (command("make all", 2), "a build step failed (exit status 2)"),
        (
            "pull access denied for jupyter/scipy-notebook, repository does not exist",
            "base image jupyter/scipy-notebook is not available here",
        ),
        (command("./postBuild", 137), "needed more than 512 MiB of memory (setting build_memory_limit)"),
    ],
)
def test_build_failures_name_the_step_never_the_command(error, reason):
    said = failure_reason(error, LIMITS, disk_stopped=False)
    assert reason in said and "/bin/sh" not in said, said


def test_a_step_stopped_for_its_disk_says_so():
    said = failure_reason(command("./postBuild", 137), LIMITS, disk_stopped=True)
    assert "more than 200 MiB (setting build_disk_limit)" in said


def test_a_step_binderlite_wrote_gives_its_own_reason():
    said = failure_reason(
        command("Rscript /tmp/check.R", 1), LIMITS, disk_stopped=False, note="binderlite: package blnot could not load"
    )
    assert said == "a build step failed (exit status 1): package blnot could not load"


def test_a_failed_step_of_the_repositorys_own_dockerfile_is_named_so():
    said = failure_reason(command("make all", 2), LIMITS, disk_stopped=False, repository_dockerfile=True)
    assert said == "a step of the repository's Dockerfile failed (exit status 2); its output is above"


@pytest.mark.parametrize(
    "error",
    [
        'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host',
        'Get "https://registry-1.docker.io/v2/": dial tcp 10.0.0.1:443: i/o timeout',
    ],
)
def test_an_unreachable_registry_names_the_dockerfiles_base_image(error):
    said = failure_reason(error, LIMITS, disk_stopped=False, step="Step 1/6 : FROM python:3.7-slim")
    assert said.startswith("The Dockerfile's base image python:3.7-slim could not be pulled: no registry is reachable")
    assert "registry-1.docker.io" not in said and "Get " not in said


def test_a_failed_step_without_binderlites_words_ends_with_its_last_output_line():
    said = failure_reason(
        command("apt-get -qq update && apt-get install --yes x", 100),
        LIMITS,
        disk_stopped=False,
        telling="E: Unable to locate package texlive-generic-recommended",
    )
    assert said == "apt.txt failed (exit status 100): E: Unable to locate package texlive-generic-recommended"


def test_the_builders_own_lines_and_colour_codes_are_not_a_steps_output():
    assert output_lines("\x1b[91mE: Unable to locate package x\n\x1b[0m") == ["E: Unable to locate package x"]
    assert output_lines(" ---> Running in 0ba7898b3ea9\nRemoving intermediate container 0ba7898b3ea9\n") == []


def test_the_telling_line_is_the_last_error_not_the_last_warning():
    jupyterlab = [
        "/srv/venv/lib/python3.11/site-packages/jupyterlab/debuglog.py:54: UserWarning: An error occurred.",
        '  warnings.warn("An error occurred.")'.strip(),
        "/srv/venv/lib/python3.11/site-packages/jupyterlab/debuglog.py:55: UserWarning: ValueError: Please install "
        "Node.js and npm before continuing installation.",
        '  warnings.warn("ValueError: Please install Node.js")'.strip(),
        "/srv/venv/lib/python3.11/site-packages/jupyterlab/debuglog.py:56: UserWarning: See the log file for details",
        'warnings.warn(f"See the log file for details: {log_path!s}")',
    ]
    assert telling_line(jupyterlab) == "ValueError: Please install Node.js and npm before continuing installation."
    assert telling_line(["Reading package lists...", "E: Unable to locate package x"]) == (
        "E: Unable to locate package x"
    )
    assert telling_line(["compiling", "done, exit 3"]) == "done, exit 3"
