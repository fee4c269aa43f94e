"""Build-time benchmark: binderlite's real build pipeline against a hand-written floor.

Run from the repository root::

    /opt/binderlite/venv/bin/python -m benchmarks.build [--runs N]

It makes a small requirements.txt repository in a temp dir, serves it over
git's HTTP protocol on 127.0.0.1 (tests/helpers/gitserver.py) and
measures, with ``binderlite.builds.pipeline.build_events`` (the same path the CLI,
the SSE API and the launcher use):

(a) a cold build — binderlite builds with its build cache off (every step anew:
    the first build on a new machine); the floor's BuildKit cache is emptied with
    ``docker builder prune -af`` before it (the daemon's whole build cache, not images);
(b) a rebuild of the same commit (the image is found, nothing is built);
(c) a rebuild after a commit that changes only the notebook (new image tag,
    the Docker layer cache should make it quick);
(d) a build after a commit that adds a requirement, on a warm machine: what
    every build after a machine's first meets (the shared layers are cached,
    the repository's install runs);
(e) once, a cold build on a machine without the shared stage images
    (builds/stages.py: ``binderlite base-image`` makes them at install, so (a)
    starts from them): binderlite is given the package index's address
    explicitly, which gives its stages a new name, so it makes them within the
    build; the stage images it made are removed at the end.

Beside them, in the same run, a floor: a minimal hand-written Dockerfile on
the same base image doing the same installs (venv, pip install uv, uv pip
install the same JupyterLab and jupyterhub specs, the requirements, COPY the
repo, the CA bundle available), built with ``docker buildx build`` after the
prune, then rebuilt unchanged, after the same notebook-only edit and after the
same added requirement.

It prints numbers (seconds, ratios, image sizes and where the cold-build time
goes), never pass/fail. Every image it makes is named ``bltest-bench-…`` and
removed at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker as docker_sdk

from binderlite.builds.pipeline import build_events
from binderlite.builds.queue import pid_alive
from binderlite.builds.run_repo2docker import proxy_build_args
from binderlite.builds.stages import STAGE_REPOSITORY
from binderlite.links import resolve_link
from binderlite.settings import Settings
from tests.helpers.containers import remove_containers_and_images
from tests.helpers.gitserver import GitServer
from tests.helpers.images import active_build_pids

PREFIX = "bltest-bench-"
FLOOR_IMAGE = f"{PREFIX}floor"
REQUIREMENTS = ["six==1.16.0", "toolz==0.12.1", "tabulate==0.9.0"]
COLD_TARGET = 1.3  # binderlite cold build ≤ 1.3 × floor
NOTEBOOK_TARGET = 10.0  # notebook-only rebuild < 10 s
NEW_REQUIREMENTS = ["idna==3.6", "idna==3.7"]  # (d): a requirement the repository adds
DEFAULT_INDEX = "https://pypi.org/simple"  # (e): the index builds use anyway, named, so the stages get new names

STEP_START = re.compile(r"^#(\d+) (.+)$")
STEP_DONE = re.compile(r"^#(\d+) DONE (\d+(?:\.\d+)?)s$")
STEP_CACHED = re.compile(r"^#(\d+) CACHED$")


# ---------------------------------------------------------------- helpers
def notebook(edit: int) -> str:
    source = ["import six, toolz, tabulate\n", f"print('edit {edit}', six.__version__)\n", "1 + 1"]
    cell = {"cell_type": "code", "execution_count": None, "id": "c1", "metadata": {}, "outputs": [], "source": source}
    nb = {
        "cells": [cell],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(nb, indent=1) + "\n"


def write_repo(path: Path, edit: int, extra: tuple[str, ...] = ()) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "requirements.txt").write_text("\n".join([*REQUIREMENTS, *extra]) + "\n")
    (path / "index.ipynb").write_text(notebook(edit))
    (path / "README.md").write_text("binderlite build benchmark repository\n")


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def stage_images() -> set[str]:
    """The names of the shared stage images on the daemon."""
    out = docker("images", "--format", "{{.Repository}}:{{.Tag}}", STAGE_REPOSITORY).stdout
    return set(out.split())


def prune_build_cache() -> None:
    """Empty the daemon's BuildKit cache (images are kept), so the next build is truly cold."""
    docker("builder", "prune", "-af")


def image_facts(image: str) -> tuple[int | None, list[tuple[int, str]]]:
    """(size in bytes, [(layer bytes, instruction)]) of ``image``, taken right after its build.

    Taken at once because concurrent integration-test sessions remove every
    ``bltest-`` image when they end; None if the image is already gone.
    """
    inspected = docker("image", "inspect", "--format", "{{.Size}}", image, check=False)
    if inspected.returncode != 0:
        return None, []
    history = docker(
        "history", "--human=false", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}", image, check=False
    )
    layers = []
    for line in history.stdout.splitlines():
        size, _, created_by = line.partition("\t")
        if size.isdigit():
            layers.append((int(size), created_by or "(base image)"))
    return int(inspected.stdout.strip()), layers


@dataclass
class Timed:
    seconds: float
    image: str
    lines: list[tuple[float, str]] = field(default_factory=list)  # (seconds since start, log line)
    marks: dict[str, float] = field(default_factory=dict)  # named moments, seconds since start
    size: int | None = None
    layers: list[tuple[int, str]] = field(default_factory=list)
    found: bool = False  # binderlite: the image existed, nothing was built


def steps(lines: list[tuple[float, str]]) -> list[tuple[str, float | None, bool]]:
    """BuildKit's plain progress → [(step name, seconds or None, cached)] in order of appearance."""
    names: dict[str, str] = {}
    done: dict[str, float] = {}
    cached: set[str] = set()
    for _, line in lines:
        line = line.rstrip()
        if m := STEP_DONE.match(line):
            done[m.group(1)] = float(m.group(2))
        elif m := STEP_CACHED.match(line):
            cached.add(m.group(1))
        elif (m := STEP_START.match(line)) and m.group(1) not in names:
            names[m.group(1)] = m.group(2)
    return [(name, done.get(num), num in cached) for num, name in names.items()]


def reran_install(timed: Timed) -> bool:
    """True if a build that should have been served from the layer cache re-ran an install step.

    That happens when someone empties the build cache meanwhile (binderlite's own disk GC
    in a concurrently running test session calls ``docker builder prune``).
    """
    return any(
        not cached and " RUN " in f" {name}" and ("venv" in name or "uv pip install" in name)
        for name, _, cached in steps(timed.lines)
    )


def short(name: str, width: int = 78) -> str:
    name = re.sub(r"\s+", " ", name)
    name = re.sub(r"^RUN \|\d+ (?:\S+=\S* )*", "RUN ", name)  # docker history's build-arg prefix
    name = name.replace("/bin/sh -c ", "")
    return name if len(name) <= width else name[: width - 1] + "…"


# ---------------------------------------------------------------- floor
FLOOR_DOCKERFILE = """\
FROM {base}
COPY ca-certificates.crt /usr/local/share/ca-certificates.crt
ENV SSL_CERT_FILE=/usr/local/share/ca-certificates.crt \\
    PIP_CERT=/usr/local/share/ca-certificates.crt \\
    PIP_NO_CACHE_DIR=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    UV_PYTHON_DOWNLOADS=never \\
    PATH=/srv/venv/bin:$PATH
RUN python3 -m venv /srv/venv && \\
    /srv/venv/bin/pip install --quiet {uv} && \\
    /srv/venv/bin/uv pip install --python /srv/venv/bin/python '{lab}' {default_env} '{hub}'
COPY repo/requirements.txt /tmp/requirements.txt
RUN uv pip install --python /srv/venv/bin/python -r /tmp/requirements.txt
COPY repo/ /home/jovyan/
WORKDIR /home/jovyan
CMD ["jupyter", "lab", "--ip", "0.0.0.0"]
"""


class Floor:
    """The hand-written minimal Dockerfile, built with ``docker buildx build``."""

    def __init__(
        self,
        root: Path,
        base: str,
        lab_spec: str,
        hub_spec: str,
        ca_bundle: str,
        build_args: dict[str, str],
        default_env: str = "",
    ):
        self.root = root
        self.build_args = build_args
        root.mkdir(parents=True)
        shutil.copyfile(ca_bundle, root / "ca-certificates.crt")
        quoted = " ".join(f"'{spec}'" for spec in default_env.split())
        dockerfile = FLOOR_DOCKERFILE.format(base=base, uv="uv", lab=lab_spec, hub=hub_spec, default_env=quoted)
        (root / "Dockerfile").write_text(dockerfile)
        write_repo(root / "repo", edit=0)

    def edit_notebook(self, edit: int) -> None:
        (self.root / "repo" / "index.ipynb").write_text(notebook(edit))

    def edit_requirements(self, edit: int, extra: tuple[str, ...]) -> None:
        write_repo(self.root / "repo", edit, extra)

    def build(self, tag: str) -> Timed:
        image = f"{FLOOR_IMAGE}:{tag}"
        cmd = ["docker", "buildx", "build", "--progress", "plain", "--load", "--tag", image]
        for key, value in self.build_args.items():
            cmd += ["--build-arg", f"{key}={value}"]
        cmd.append(str(self.root))
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = [(time.monotonic() - start, line) for line in proc.stdout]
        proc.wait()
        seconds = time.monotonic() - start
        if proc.returncode != 0:
            tail = "".join(line for _, line in lines[-30:])
            raise RuntimeError(f"floor build {image} failed:\n{tail}")
        return Timed(seconds, image, lines, {}, *image_facts(image))


# ---------------------------------------------------------------- binderlite
class Binderlite:
    """binderlite's real pipeline (resolve the link, then build_events) on a served git repo."""

    def __init__(self, settings: Settings, server: GitServer):
        self.settings = settings
        self.server = server

    def publish(self, name: str, edit: int, extra: tuple[str, ...] = ()) -> str:
        write_repo(self.server.work_tree(name), edit, extra)
        return self.server.commit(name, f"edit {edit}")

    def build(self, name: str, cold: bool = False, **overrides: object) -> Timed:
        settings = dataclasses.replace(self.settings, build_cache=not cold, **overrides)  # cold: every step anew
        start = time.monotonic()
        resolved = resolve_link(self.server.link(name), settings)
        marks = {"resolved": time.monotonic() - start}
        lines: list[tuple[float, str]] = []
        final = None
        for ev in build_events(settings, resolved):
            if ev is None:
                continue
            now = time.monotonic() - start
            final = ev
            phase = ev.get("phase")
            if phase and phase not in marks:
                marks[phase] = now
            for line in ev.get("message", "").splitlines():
                lines.append((now, line))
        seconds = time.monotonic() - start
        if not final or final.get("phase") != "built":
            tail = "\n".join(line for _, line in lines[-30:])
            raise RuntimeError(f"binderlite build of {name} failed:\n{tail}")
        found = any("Found built image" in line for _, line in lines)
        return Timed(seconds, final["imageName"], lines, marks, *image_facts(final["imageName"]), found=found)


def stop_own_builds(settings: Settings) -> None:
    """Stop build workers (and their builders) this benchmark started that still run (Ctrl-C mid-build)."""
    try:
        pids = active_build_pids(settings.db_path)
    except Exception:  # noqa: BLE001 - best effort during cleanup
        return
    for pid in pids:
        if not pid_alive(pid):
            continue
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        for child in children:  # the builder runs in its own process group (buildx and all)
            try:
                os.killpg(int(child), signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


# ---------------------------------------------------------------- the run
@dataclass
class RunResult:
    bl_cold: Timed
    bl_same: Timed
    bl_notebook: Timed
    bl_new_requirements: Timed
    floor_cold: Timed
    floor_same: Timed
    floor_notebook: Timed
    floor_new_requirements: Timed


def run_once(index: int, binderlite: Binderlite, floor: Floor, log) -> RunResult:
    # (d): one more requirement, different in each run, so no run finds another's install cached.
    extra = (NEW_REQUIREMENTS[index % len(NEW_REQUIREMENTS)],)

    def measure_floor():
        log(f"run {index}: floor cold build (after docker builder prune -af)")
        prune_build_cache()
        cold = floor.build(f"run{index}-cold")
        log(f"  {cold.seconds:.1f} s")
        same = floor.build(f"run{index}-same")
        floor.edit_notebook(index * 10 + 1)
        notebook_only = floor.build(f"run{index}-notebook")
        log(f"  floor unchanged rebuild {same.seconds:.1f} s, notebook-only {notebook_only.seconds:.1f} s")
        floor.edit_requirements(index * 10 + 2, extra)
        new_requirements = floor.build(f"run{index}-requirements")
        log(f"  floor new requirements {new_requirements.seconds:.1f} s")
        return cold, same, notebook_only, new_requirements

    def measure_binderlite():
        name = f"bench-run{index}"
        binderlite.publish(name, edit=0)
        log(f"run {index}: binderlite cold build (build_cache off: every step anew, as after a prune)")
        cold = binderlite.build(name, cold=True)
        log(f"  {cold.seconds:.1f} s -> {cold.image}")
        same = binderlite.build(name)
        binderlite.publish(name, edit=index * 10 + 1)
        notebook_only = binderlite.build(name)
        log(f"  binderlite same commit {same.seconds:.1f} s, notebook-only {notebook_only.seconds:.1f} s")
        binderlite.publish(name, edit=index * 10 + 2, extra=extra)
        new_requirements = binderlite.build(name)
        log(f"  binderlite new requirements {new_requirements.seconds:.1f} s")
        return cold, same, notebook_only, new_requirements

    # Alternate who goes first, so neither side always meets a warmer network path.
    if index % 2:
        f = measure_floor()
        b = measure_binderlite()
    else:
        b = measure_binderlite()
        f = measure_floor()
    return RunResult(*b, *f)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b > 0 else "-"


def report(
    results: list[RunResult],
    settings: Settings,
    lab_spec: str,
    hub_spec: str,
    started: datetime.datetime,
    no_stages: Timed | None = None,
) -> str:
    out: list[str] = []
    p = out.append
    p(f"binderlite build benchmark — {started:%Y-%m-%d %H:%M} UTC, {len(results)} run(s), {os.cpu_count()} CPUs")
    p(f"repo: requirements.txt ({', '.join(REQUIREMENTS)}) + index.ipynb, served over git HTTP on 127.0.0.1")
    p(f"base image: {settings.base_image}; both sides install uv, '{lab_spec}', '{hub_spec}', the requirements")
    p("cold = after `docker builder prune -af` (empties the daemon's build cache; images are kept)")
    p("")
    header = f"{'measurement':<44}{'binderlite':>11}{'floor':>9}{'ratio':>8}   target"
    p(header)
    p("-" * (len(header) + 22))

    def row(label, bl, fl, target=""):
        fl_text = f"{fl:>9.1f}" if fl is not None else f"{'':>9}"
        rt = ratio(bl, fl) if fl is not None else ""
        p(f"{label:<44}{bl:>11.1f}{fl_text}{rt:>8}   {target}")

    for i, r in enumerate(results, 1):
        row(f"(a) cold build, run {i} [s]", r.bl_cold.seconds, r.floor_cold.seconds)
    cold_bl = statistics.median(r.bl_cold.seconds for r in results)
    cold_fl = statistics.median(r.floor_cold.seconds for r in results)
    met = "met" if cold_bl <= COLD_TARGET * cold_fl else "missed"
    row("(a) cold build, median [s]", cold_bl, cold_fl, f"≤ {COLD_TARGET}× floor ({met})")
    same_bl = statistics.median(r.bl_same.seconds for r in results)
    lost = [i for i, r in enumerate(results, 1) if reran_install(r.floor_same)]
    clean = [r for i, r in enumerate(results, 1) if i not in lost] or results
    same_fl = statistics.median(r.floor_same.seconds for r in clean)
    found = all(r.bl_same.found for r in results)
    row(
        "(b) rebuild, same commit [s]",
        same_bl,
        same_fl,
        "floor: unchanged, fully cached docker build"
        if found
        else "WARNING: image was gone (removed by someone else?), binderlite rebuilt it",
    )
    if lost:
        p(
            f"  NOTE: the floor's unchanged rebuild re-ran its installs in run(s) {lost} (the build cache was emptied"
            " meanwhile, e.g. by a concurrent `docker builder prune`); the floor (b) value excludes them"
        )
    for i, r in enumerate(results, 1):
        met = "met" if r.bl_notebook.seconds < NOTEBOOK_TARGET else "missed"
        row(
            f"(c) rebuild, notebook-only commit, run {i} [s]",
            r.bl_notebook.seconds,
            r.floor_notebook.seconds,
            f"< {NOTEBOOK_TARGET:.0f} s ({met})",
        )
        for side, timed in (("binderlite", r.bl_notebook), ("floor", r.floor_notebook)):
            if reran_install(timed):
                p(f"  NOTE: {side}'s notebook-only rebuild re-ran its installs (build cache emptied meanwhile?)")
    for i, r in enumerate(results, 1):
        row(
            f"(d) new requirement, warm machine, run {i} [s]",
            r.bl_new_requirements.seconds,
            r.floor_new_requirements.seconds,
            "shared layers cached, the repository's install runs",
        )
    if no_stages is not None:
        row("(e) cold, no shared stage images yet [s]", no_stages.seconds, cold_fl, "the stages are made within")
    bl_size = next((r.bl_cold.size for r in results if r.bl_cold.size), None)
    fl_size = next((r.floor_cold.size for r in results if r.floor_cold.size), None)
    if bl_size and fl_size:
        p(f"{'image size [MB]':<44}{bl_size / 1e6:>11.0f}{fl_size / 1e6:>9.0f}{ratio(bl_size, fl_size):>8}")
    else:
        p(f"{'image size [MB]':<44}  (an image was removed before it could be measured)")
    for label, timed in (("binderlite", results[0].bl_cold), ("floor", results[0].floor_cold)):
        big = [(size, created_by) for size, created_by in timed.layers if size >= 1_000_000]
        if big:
            p(f"  {label} layers ≥ 1 MB: " + "; ".join(f"{size / 1e6:.0f} MB {short(c, 32)}" for size, c in big))

    # Where the time of the first cold build goes.
    first = results[0]
    for label, timed in (("cold build", first.bl_cold), ("notebook-only rebuild", first.bl_notebook)):
        build_lines = [t for t, line in timed.lines if STEP_START.match(line)]
        if not build_lines:
            continue
        resolved = timed.marks.get("resolved", 0.0)
        first_bk, last_bk = build_lines[0], build_lines[-1]
        p("")
        p(f"binderlite {label}, run 1 — wall clock (event arrival; the pipeline polls its log every 0.5 s):")
        p(f"  resolve link (git ls-remote)              {resolved:6.1f} s")
        p(f"  queue + worker + clone + render           {first_bk - resolved:6.1f} s")
        p(f"  docker buildx build (first..last step)    {last_bk - first_bk:6.1f} s")
        p(f"  after the build until 'built'             {timed.seconds - last_bk:6.1f} s")
    for label, timed in (("binderlite", first.bl_cold), ("floor", first.floor_cold)):
        rows = [(n, s, c) for n, s, c in steps(timed.lines) if s is not None and s >= 0.05]
        total = sum(s for _, s, _ in rows)
        p("")
        p(f"{label} cold build, run 1 — BuildKit steps ≥ 0.05 s (sum {total:.1f} s of {timed.seconds:.1f} s wall):")
        for name, secs, _ in rows:
            p(f"  {secs:6.1f} s  {short(name)}")
    for label, timed in (("binderlite", first.bl_notebook), ("floor", first.floor_notebook)):
        rows = [(n, s, c) for n, s, c in steps(timed.lines)]
        ran = [(n, s) for n, s, c in rows if not c and s is not None and s >= 0.05]
        total = sum(s for _, s in ran)
        p("")
        cached = sum(1 for r in rows if r[2])
        p(
            f"{label} notebook-only rebuild, run 1 — {cached} steps cached; steps that ran ≥ 0.05 s "
            f"(sum {total:.1f} s of {timed.seconds:.1f} s wall):"
        )
        for name, secs in ran:
            p(f"  {secs:6.1f} s  {short(name)}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="how many times to repeat the measurements (default 1)")
    parser.add_argument("--keep-logs", metavar="DIR", help="write every build's log to DIR")
    args = parser.parse_args(argv)

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    started = datetime.datetime.now(datetime.UTC)
    tmp = Path(tempfile.mkdtemp(prefix="binderlite-bench-"))
    settings = Settings(state_dir=str(tmp / "state"), image_prefix=PREFIX, allow_local_repos=True, registry="")
    lab_spec = settings.jupyterlab_spec
    hub_spec = f"jupyterhub=={importlib.metadata.version('jupyterhub')}"
    if docker("image", "inspect", settings.base_image, check=False).returncode != 0:
        print(f"Base image {settings.base_image} is missing — run `binderlite base-image` first.", file=sys.stderr)
        return 1
    server = GitServer(tmp / "git")
    results: list[RunResult] = []
    stages_before: set[str] | None = None
    try:
        for index in range(1, args.runs + 1):
            floor = Floor(
                tmp / f"floor{index}",
                settings.base_image,
                lab_spec,
                hub_spec,
                settings.ca_bundle,
                proxy_build_args(settings),
                settings.default_environment,  # the same packages binderlite's images get
            )
            results.append(run_once(index, Binderlite(settings, server), floor, log))
        log("(e): binderlite cold build without shared stage images (they are made within it)")
        stages_before = stage_images()
        binderlite = Binderlite(settings, server)
        binderlite.publish("bench-no-stages", edit=0)
        no_stages = binderlite.build("bench-no-stages", cold=True, package_index_url=DEFAULT_INDEX)
        log(f"  {no_stages.seconds:.1f} s")
        if args.keep_logs:
            keep = Path(args.keep_logs)
            keep.mkdir(parents=True, exist_ok=True)
            for i, r in enumerate(results, 1):
                for field_name in RunResult.__dataclass_fields__:
                    timed = getattr(r, field_name)
                    (keep / f"run{i}-{field_name}.log").write_text(
                        "".join(f"{t:7.2f} {line.rstrip()}\n" for t, line in timed.lines)
                    )
        print(report(results, settings, lab_spec, hub_spec, started, no_stages))
    finally:
        stop_own_builds(settings)
        server.close()
        remove_containers_and_images(docker_sdk.from_env(), PREFIX, keep=())
        if stages_before is not None:
            for image in sorted(stage_images() - stages_before):
                docker("rmi", image, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
