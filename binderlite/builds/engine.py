"""repo2docker's container engine, replaced by one that builds every step with limits, offline.

``docker buildx build`` ignores repo2docker's memory limits, and its docker
driver ignores a cgroup parent (see DESIGN.md). Docker's classic builder runs
each ``RUN`` step in an ordinary container, so the kernel enforces, per step:
memory with no swap (``build_memory_limit``), CPU (``build_cpu_limit``), the
processes of the repository's user (``build_pids_limit``, as RLIMIT_NPROC;
root steps are bounded by the memory limit), and the network: steps run on
``build_network``, whose kernel rules let them reach the package index and
the internet but nothing internal. While a build runs, ``DiskWatch`` stops
any step container whose writable layer grows past ``build_disk_limit``; the
finished image must be under ``max_image_size``. The classic builder has no
cache mounts, so no step of one repository can write into a cache another
reads (the uv download cache used to be shared that way).
"""

from __future__ import annotations

import collections
import collections.abc
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
from docker.utils.build import tar
from repo2docker.docker import DockerEngine

from binderlite.errors import BuildFailedError
from binderlite.settings import Settings, parse_size

CPU_PERIOD = 100_000  # microseconds; the quota is a share of it
DISK_WATCH_SECONDS = 3.0
KILLED = 137  # 128 + SIGKILL: what a step killed for its memory or its disk returns


@dataclass(frozen=True)
class BuildLimits:
    """What every build step may use (from settings)."""

    memory: int
    cpus: float
    processes: int
    disk: int
    image: int
    network: str
    cache: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> BuildLimits:
        return cls(
            memory=parse_size(settings.build_memory_limit, "build_memory_limit"),
            cpus=settings.build_cpu_limit,
            processes=settings.build_pids_limit,
            disk=parse_size(settings.build_disk_limit, "build_disk_limit"),
            image=parse_size(settings.max_image_size, "max_image_size"),
            network=settings.build_network,
            cache=settings.build_cache,
        )

    def query(self) -> dict[str, Any]:
        """The classic builder's parameters that apply these limits to every step."""
        return {
            "memory": self.memory,
            "memswap": self.memory,  # the same: no swap
            "cpuperiod": CPU_PERIOD,
            "cpuquota": int(self.cpus * CPU_PERIOD),
            "ulimits": json.dumps([{"Name": "nproc", "Soft": self.processes, "Hard": self.processes}]),
            "networkmode": self.network,
        }


class DiskWatch:
    """Stops build step containers (on the build network) whose writable layer exceeds the disk limit."""

    def __init__(self, client: docker.APIClient, limits: BuildLimits):
        self.client = client
        self.limits = limits
        self.stopped: set[str] = set()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="build-disk-watch")

    def __enter__(self) -> DiskWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=10)

    def check(self) -> None:
        try:
            steps = self.client.containers(filters={"network": self.limits.network}, size=True)
        except docker.errors.DockerException:
            return
        for step in steps:
            if (step.get("SizeRw") or 0) > self.limits.disk and step["Id"] not in self.stopped:
                self.stopped.add(step["Id"])
                try:
                    self.client.kill(step["Id"])
                except docker.errors.DockerException:
                    pass

    def _run(self) -> None:
        while not self._done.wait(DISK_WATCH_SECONDS):
            self.check()


STEPS = (  # what a failed RUN line was, in the repository's terms (most specific first)
    ("postBuild", "postBuild"),  # ./postBuild, ./binder/postBuild, ./.binder/postBuild
    ("apt-get install", "apt.txt"),
    ("converted-requirements.txt", "the environment file's packages (environment.yml or Pipfile)"),
    ("requirements.txt", "requirements.txt"),
    ("uv pip install --python ${VENV_DIR}/bin/python .", "installing the repository (setup.py or pyproject.toml)"),
    ("uv venv", "the tooling step (Python, JupyterLab, jupyterhub)"),
)


def describe_step(command: str, repository_dockerfile: bool = False) -> str:
    """A failed step named as a user knows it: postBuild, apt.txt, requirements.txt, … or the Dockerfile."""
    if repository_dockerfile:
        return "a step of the repository's Dockerfile"
    for marker, name in STEPS:
        if marker in command:
            return name
    return "a build step"


def failure_reason(
    error: str,
    limits: BuildLimits,
    disk_stopped: bool,
    note: str = "",
    repository_dockerfile: bool = False,
    step: str = "",
    telling: str = "",
) -> str:
    """The classic builder's error as one line a user understands: which step, which limit, never a command.

    ``step`` is the builder's ``Step n/m : …`` line of the failing step (its ``FROM`` names the image);
    ``note`` binderlite's own last words in that step, else ``telling`` the line of its output that says why
    (``telling_line``).
    """
    from_image = re.match(r"Step \d+/\d+ : FROM\s+(?:--platform=\S+\s+)?([^\s]{1,200})", step, re.I)
    code = re.search(r"The command '(.*)' returned a non-zero code: (\d+)", error, re.S)
    if code and int(code.group(2)) == KILLED:
        if disk_stopped:
            return (
                f"A build step wrote more than {limits.disk // 1024**2} MiB (setting build_disk_limit) and was stopped."
            )
        return (
            f"A build step was killed: it needed more than {limits.memory // 1024**2} MiB of memory "
            "(setting build_memory_limit) or too many processes."
        )
    if "pull access denied" in error or "manifest unknown" in error or "repository does not exist" in error:
        image = from_image or re.search(r"(?:for|image) ([^\s,]+)", error)
        named = f" {image.group(1)}" if image else ""
        return f"The Dockerfile's base image{named} is not available here."
    if "dial tcp" in error or "no such host" in error or "i/o timeout" in error:
        named = f" {from_image.group(1)}" if from_image else ""
        return (
            f"The Dockerfile's base image{named} could not be pulled: no registry is reachable from this machine "
            "(Docker Hub included)."
        )
    if code:
        if note:
            said = f": {note.removeprefix('binderlite: ')}"
        elif telling:
            said = f": {telling[:300]}"
        else:
            said = "; its output is above"
        return f"{describe_step(code.group(1), repository_dockerfile)} failed (exit status {code.group(2)}){said}"
    if "requires BuildKit" in error or "--mount" in error or "--chmod" in error:
        return f"The Dockerfile uses a BuildKit-only feature, which binderlite's builds do not run ({error.strip()})."
    return error.strip().splitlines()[-1] if error.strip() else "The build failed."


class LimitedDockerEngine(DockerEngine):
    """repo2docker's Docker engine, building with the classic builder and binderlite's limits."""

    limits: BuildLimits

    def build(
        self,
        *,
        push: bool = False,
        load: bool = False,
        buildargs: dict | None = None,
        cache_from: list | None = None,
        container_limits: dict | None = None,
        tag: str = "",
        custom_context: bool = False,
        dockerfile: str = "",
        fileobj: Any = None,
        path: str = "",
        labels: dict | None = None,
        platform: str | None = None,
        **kwargs: Any,
    ) -> Iterator[str]:
        client = docker.APIClient(version="auto", **self.extra_init_args)
        params: dict[str, Any] = {
            "t": tag,
            "rm": "1",
            "forcerm": "1",  # intermediate containers go even when a step fails
            "version": "1",  # the classic builder
            "nocache": "0" if self.limits.cache else "1",
            "buildargs": json.dumps(buildargs or {}),
            "labels": json.dumps(labels or {}),
            **self.limits.query(),
        }
        if cache_from:
            params["cachefrom"] = json.dumps(cache_from)
        if custom_context:
            context = fileobj
        else:
            params["dockerfile"] = dockerfile or "Dockerfile"  # repo2docker names it inside the context
            context = tar(path, exclude=_dockerignore(path), dockerfile=(params["dockerfile"], None))
        response = client._post(
            client._url("/build"),
            data=context,
            params=params,
            headers={"Content-Type": "application/x-tar"},
            stream=True,
            timeout=None,
        )
        client._raise_for_status(response)
        note = ""  # the step's last line of binderlite's own words: the reason a step it wrote gives
        step = ""  # the builder's "Step n/m : …" line of the step running
        output: collections.deque[str] = collections.deque(maxlen=OUTPUT_KEPT)  # the step's last output lines
        with DiskWatch(client, self.limits) as watch:
            for chunk in client._stream_helper(response, decode=True):
                if "error" in chunk:
                    stopped = bool(watch.stopped)
                    reason = failure_reason(
                        chunk["error"], self.limits, stopped, note, not custom_context, step, telling_line(output)
                    )
                    raise BuildFailedError(reason)
                text = chunk.get("stream") or ""
                if text.startswith("Step "):
                    note, step = "", text.strip()
                    output.clear()
                elif "binderlite: " in text:
                    note = text[text.index("binderlite: ") :].strip()
                else:
                    output.extend(output_lines(text))
                if text:
                    yield text
        size = client.inspect_image(tag).get("Size", 0)
        if size > self.limits.image:
            client.remove_image(tag, force=True)
            raise BuildFailedError(
                f"The image is {size // 1024**2} MiB, more than the {self.limits.image // 1024**2} MiB "
                "an image may have (setting max_image_size); it was removed."
            )


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
BUILDER_LINES = re.compile(r"^(---> |Removing intermediate container |Successfully |Step \d+/\d+ : )")
OUTPUT_KEPT = 40  # output lines of a step kept to find the one that tells why it failed
TELLING = re.compile(r"Error\b|error:|^E: |[Uu]nable to|not found|[Nn]o such|[Cc]annot|can't|[Ff]ailed")
WARNING_PREFIX = re.compile(r"^\S+\.py:\d+: \w*Warning: ")  # "…/debuglog.py:55: UserWarning: ValueError: …"


def output_lines(text: str) -> list[str]:
    """The lines of ``text`` a build step printed (colour codes removed), without the builder's own lines."""
    lines = [ANSI.sub("", line).strip() for line in text.splitlines()]
    return [line for line in lines if line and not BUILDER_LINES.match(line)]


def telling_line(lines: collections.abc.Iterable[str]) -> str:
    """The line of a failed step's output that tells why: its last error-like line, else its last line."""
    lines = [WARNING_PREFIX.sub("", line) for line in lines if not line.startswith("warnings.warn(")]
    telling = [line for line in lines if TELLING.search(line)]
    return (telling or lines or [""])[-1]


def _dockerignore(path: str) -> list[str] | None:
    ignore = os.path.join(path, ".dockerignore")
    if not os.path.exists(ignore):
        return None
    with open(ignore) as fh:
        return [line.strip() for line in fh.read().splitlines() if line.strip() and not line.startswith("#")]
