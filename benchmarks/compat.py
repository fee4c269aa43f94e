"""Compatibility corpus: real public Binder repositories built with binderlite's real pipeline.

Reads ``benchmarks/compat_corpus.toml`` (repositories, pinned commits, what "works"
means), takes each repository from its snapshot under the mirror folder (the search
tool's ``fetch``; nothing of it is committed), serves that commit over git HTTP on
127.0.0.1, builds it with ``resolve_link`` + ``build_events`` and runs its check in a
container of the image (uid 1000, no network). Prints one table: built, works, time,
image size and, for failures, binderlite's reason line.

    python -m benchmarks.compat                      # the whole corpus (about an hour)
    python -m benchmarks.compat --only conda --only nix
    python -m benchmarks.compat --convention Pipfile --runs 2
    python -m benchmarks.compat --results /tmp/c.jsonl --only r   # add rows to a results file
    python -m benchmarks.compat --table /tmp/c.jsonl --markdown  # the table of a results file

It takes the machine's build lock (``--lock``) for one repository at a time, so other
builds interleave; do not run it under ``flock`` of the same file.
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
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
import tomllib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import binderlite
from benchmarks.build import docker, image_facts, stop_own_builds
from binderlite.builds.engine import output_lines, telling_line
from binderlite.builds.pipeline import build_events
from binderlite.links import resolve_link
from binderlite.settings import Settings
from tests.helpers.gitserver import GIT, GitServer

PREFIX = "bltest-compat-"
CORPUS = Path(__file__).with_name("compat_corpus.toml")
MIRROR = Path(os.environ.get("BINDERLITE_COMPAT_MIRROR", "/work/.mirror"))
LOCK = "/tmp/binderlite-integration.lock"
RUN_STEP = re.compile(r"Step \d+/\d+ : RUN ")
ERRORISH = re.compile(
    r"(?i)(error|unable to locate|no matching|not found|could not|cannot|denied|no such|exit code|non-zero code)"
)
TAIL_MARK = "--- last lines of the build log ---"


@dataclass(frozen=True)
class Entry:
    """One repository of the corpus and what is expected of it here."""

    name: str
    commit: str
    conventions: tuple[str, ...]
    expect: str
    works_means: str
    check: str = ""
    reason: tuple[str, ...] = ()
    fail_within: float = 60.0
    before_build: bool = False
    note: str = ""

    @property
    def slug(self) -> str:
        return self.name.replace("/", "--").lower()


def load_corpus(path: Path = CORPUS) -> list[Entry]:
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    entries = []
    for raw in data["repo"]:
        raw = dict(raw, conventions=tuple(raw["conventions"]), reason=tuple(raw.get("reason", ())))
        entry = Entry(**raw)
        if entry.expect not in ("works", "fails") or (entry.expect == "works") != bool(entry.check):
            raise ValueError(f"{entry.name}: expect 'works' needs a check, 'fails' needs none")
        entries.append(entry)
    return entries


def select(entries: list[Entry], names: Iterable[str], conventions: Iterable[str]) -> list[Entry]:
    """Entries whose name contains one of ``names`` or that use one of ``conventions`` (all if none given)."""
    names, conventions = [n.lower() for n in names], set(conventions)
    if not names and not conventions:
        return entries
    return [e for e in entries if any(n in e.name.lower() for n in names) or conventions.intersection(e.conventions)]


def snapshot(mirror: Path, name: str) -> Path | None:
    """The git directory of ``name``'s snapshot under ``mirror`` (``owner+repo/repo[/.git]``), if fetched."""
    root = mirror / name.replace("/", "+") / "repo"
    for gitdir in (root / ".git", root):
        if (gitdir / "objects").is_dir():
            return gitdir
    return None


def publish(server: GitServer, gitdir: Path, entry: Entry) -> tuple[str, str]:
    """Serve the pinned commit as branch ``main`` at ``server.url(entry.slug)``; return (commit served, note).

    Snapshots lack files of 4 MiB and more. When the pinned commit is not whole, what is served
    is one new commit of its tree without the missing files, and the note says how many.
    """
    bare = server.served / f"{entry.slug}.git"
    if bare.exists():
        shutil.rmtree(bare)
    subprocess.run([*GIT, "init", "-q", "--bare", str(bare)], check=True)

    def git(*args: str, **kw) -> str:
        return subprocess.run(
            ["git", "--git-dir", str(bare), *args], check=True, capture_output=True, text=True, **kw
        ).stdout

    served, note = entry.commit, ""
    try:
        git("fetch", "-q", "--no-tags", str(gitdir), f"{entry.commit}:refs/heads/main")
    except subprocess.CalledProcessError:
        (bare / "objects" / "info" / "alternates").write_text(f"{gitdir.resolve() / 'objects'}\n")
        entries = [line.split(None, 3) for line in git("ls-tree", "-r", "--full-tree", entry.commit).splitlines()]
        blobs = [(sha, path) for _, kind, sha, path in entries if kind == "blob"]
        checked = git("cat-file", "--batch-check", input="".join(f"{sha}\n" for sha, _ in blobs))
        gone = {line.split()[0] for line in checked.splitlines() if line.endswith(" missing")}
        missing = [path for sha, path in blobs if sha in gone]
        (bare / "compat-worktree").mkdir()  # update-index wants a work tree; it stays empty
        index = {
            **os.environ,
            "GIT_INDEX_FILE": str(bare / "compat-index"),
            "GIT_WORK_TREE": str(bare / "compat-worktree"),
        }
        git("read-tree", entry.commit, env=index)
        git("update-index", "--force-remove", "-z", "--stdin", input="\0".join(missing) + "\0", env=index)
        tree = git("write-tree", env=index).strip()
        message = f"{entry.name} {entry.commit} without {len(missing)} files missing from the snapshot"
        served = git(*GIT[1:], "commit-tree", tree, "-m", message).strip()
        git("update-ref", "refs/heads/main", served)
        git("repack", "-a", "-d", "-q")
        (bare / "objects" / "info" / "alternates").unlink()
        note = f"served {served[:12]}: the tree of {entry.commit[:12]} without {len(missing)} large files"
        note += " the snapshot lacks (" + ", ".join(missing[:3]) + (", …" if len(missing) > 3 else "") + ")"
    git("update-server-info")
    return served, note


@dataclass
class Build:
    """What one pipeline run gave: the final event, the log, and when things happened."""

    final: dict
    lines: list[str]
    seconds: float
    started: float  # when the build left the queue (first event that is not 'waiting')
    ran_steps: bool  # a RUN step of the Dockerfile started
    executed: int  # RUN steps that ran (not taken from the layer cache)

    @property
    def built(self) -> bool:
        return self.final.get("phase") == "built"

    @property
    def message(self) -> str:
        return self.final.get("message", "")


def build(settings: Settings, link: str) -> Build:
    start = time.monotonic()
    started = None
    lines: list[str] = []
    final: dict = {"phase": "failed", "message": "no event"}
    ran_steps, executed, in_run = False, 0, False
    try:
        resolved = resolve_link(link, settings)
        events = build_events(settings, resolved)
        for ev in events:
            if ev is None:
                continue
            final = ev
            if started is None and ev.get("phase") != "waiting":
                started = time.monotonic() - start
            for line in ev.get("message", "").splitlines():
                lines.append(line)
                if line.startswith("Step "):
                    in_run = bool(RUN_STEP.search(line))
                    ran_steps = ran_steps or in_run
                elif in_run and line.startswith(" ---> Running in"):
                    executed += 1
                    in_run = False
    except Exception as exc:  # noqa: BLE001 - a link that does not resolve is a result too
        final = {"phase": "failed", "message": f"{exc.__class__.__name__}: {exc}"}
    seconds = time.monotonic() - start
    return Build(final, lines, seconds, started if started is not None else seconds, ran_steps, executed)


def run_check(image: str, command: str, timeout: float = 600) -> tuple[bool, str]:
    """Run ``command`` (bash -lc) as uid 1000 with no network in a fresh container of ``image``."""
    name = f"{PREFIX}check-{os.getpid()}-{time.monotonic_ns()}"
    cmd = ["docker", "run", "--rm", "--name", name, "--network", "none", "--user", "1000", "--memory", "4g"]
    try:
        proc = subprocess.run([*cmd, image, "bash", "-lc", command], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        docker("rm", "-f", name, check=False)
        return False, f"the check did not finish in {timeout:.0f} s"
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


def reason_line(message: str) -> str:
    """binderlite's reason: the failure message before the log tail, on one line."""
    head = message.split(TAIL_MARK, 1)[0].strip()
    head = head.removeprefix("Build failed:").strip()
    return " ".join(head.split())


def error_hint(lines: list[str]) -> str:
    """The first error-looking line (and the next) of the last build step's output: what a reader looks for."""
    end = next((i for i, line in enumerate(lines) if line.startswith("Build failed")), len(lines))
    last_step = max((i for i, line in enumerate(lines[:end]) if line.startswith("Step ")), default=-1)
    step_output = output_lines("\n".join(lines[last_step + 1 : end]))  # the builder's own lines left out
    tail = [line for line in step_output if not line.startswith("The command '")]
    for i, line in enumerate(tail):
        if ERRORISH.search(line):
            return " / ".join(tail[i : i + 2])[:300]
    return tail[-1][:300] if tail else ""


@dataclass
class Outcome:
    """One repository's result in one run; what the table shows."""

    name: str
    commit: str
    conventions: list[str]
    expect: str
    built: bool | None = None  # None: skipped
    works: str = "-"  # yes / no / as expected / skipped
    seconds: float = 0.0
    size: int | None = None
    steps_run: int = 0  # RUN steps executed rather than taken from the layer cache
    reason: str = ""
    hint: str = ""
    problem: str = ""  # why "works" is not what was expected
    note: str = ""  # how the snapshot was served, when not as the pinned commit itself
    when: str = field(default_factory=lambda: datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))


def evaluate(entry: Entry, result: Build, check: tuple[bool, str] | None, size: int | None) -> Outcome:
    out = Outcome(entry.name, entry.commit, list(entry.conventions), entry.expect, result.built)
    out.seconds, out.size, out.steps_run = round(result.seconds, 1), size, result.executed
    if not result.built:
        out.reason, out.hint = reason_line(result.message), error_hint(result.lines)
    if entry.expect == "works":
        if result.built and check is not None:
            ok, output = check
            out.works = "yes" if ok else "no"
            if not ok:
                out.problem = "check failed: " + (telling_line(output_lines(output)) or "(no output)")[:300]
        else:
            out.works, out.problem = "no", "did not build"
        return out
    problems = []
    if result.built:
        problems.append("built, but should fail here")
    else:
        missing = [rx for rx in entry.reason if not re.search(rx, out.reason)]
        if missing:
            problems.append(f"reason does not match {missing}")
        took = result.seconds - result.started
        if took > entry.fail_within:
            problems.append(f"failed after {took:.0f} s (limit {entry.fail_within:.0f} s)")
        if entry.before_build and result.ran_steps:
            problems.append("RUN steps ran before the failure")
    out.works = "no" if problems else "as expected"
    out.problem = "; ".join(problems)
    return out


def run_entry(
    settings: Settings, server: GitServer, mirror: Path, entry: Entry, keep: bool, logs: Path | None, log
) -> Outcome:
    gitdir = snapshot(mirror, entry.name)
    if (
        gitdir is None
        or subprocess.run(
            ["git", "--git-dir", str(gitdir), "cat-file", "-e", f"{entry.commit}^{{commit}}"], capture_output=True
        ).returncode
    ):
        out = Outcome(entry.name, entry.commit, list(entry.conventions), entry.expect, works="skipped")
        out.problem = f"no snapshot with {entry.commit[:12]} under {mirror} (fetch github:{entry.name})"
        log(f"{entry.name}: skipped: {out.problem}")
        return out
    served, note = publish(server, gitdir, entry)
    if note:
        log(f"{entry.name}: {note}")
    result = build(settings, server.link(entry.slug, served))
    if logs:
        logs.mkdir(parents=True, exist_ok=True)
        (logs / f"{entry.slug}.log").write_text("\n".join([*result.lines, ""]))
    image = result.final.get("imageName") if result.built else None
    size, check = None, None
    if image:
        size = image_facts(image)[0]
        check = run_check(image, entry.check) if entry.check else None
        if not keep:
            docker("rmi", "-f", image, check=False)
    out = evaluate(entry, result, check, size)
    out.note = note
    log(f"{entry.name}: built={out.built} works={out.works} {out.seconds:.0f} s {out.reason or out.problem}")
    return out


# ---------------------------------------------------------------- the table
def _size(size: int | None) -> str:
    return f"{size / 1e6:,.0f} MB" if size else "-"


def _cut(text: str, width: int) -> str:
    text = text.replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def table(outcomes: list[list[Outcome]], markdown: bool) -> str:
    """One row per repository (median time over its runs); totals; then the failure details."""
    rows, details = [], []
    for runs in outcomes:
        last = runs[-1]
        seconds = statistics.median(o.seconds for o in runs) if last.built is not None else None
        cached = " (cached)" if last.built and not last.steps_run else ""
        built = {None: "skipped", True: "yes", False: "no"}[last.built]
        if len({(o.built, o.works) for o in runs}) > 1:
            built += " (varies)"
        reason = last.reason or ("" if last.works in ("yes", "as expected") else last.problem)
        rows.append(
            [
                last.name,
                ", ".join(last.conventions),
                last.expect,
                built,
                last.works,
                f"{seconds:.0f} s{cached}" if seconds is not None else "-",
                _size(last.size),
                _cut(reason, 110),
            ]
        )
        if last.note:
            details.append(f"- {last.name}: {last.note}")
        if last.reason or last.problem:
            details.append(
                f"- {last.name}: reason: {last.reason or '-'}"
                + (f"\n  log: {last.hint}" if last.hint else "")
                + (f"\n  against expectation: {last.problem}" if last.problem else "")
            )
    header = ["repository", "conventions", "expected", "built", "works", "time", "size", "reason (failures)"]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(f"`{c}`" if i == 0 else c for i, c in enumerate(r)) + " |" for r in rows]
    else:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    flat = [runs[-1] for runs in outcomes]
    ran = [o for o in flat if o.built is not None]
    as_expected = [o for o in ran if o.works in ("yes", "as expected")]
    total = sum(statistics.median(o.seconds for o in runs) for runs in outcomes if runs[-1].built is not None)
    lines += [
        "",
        f"{len(flat)} repositories, {len(ran)} run ({len(flat) - len(ran)} skipped): "
        f"{sum(o.built for o in ran)} built; "
        f"{sum(o.works == 'yes' for o in ran)} of {sum(o.expect == 'works' for o in ran)} expected to work work; "
        f"{sum(o.works == 'as expected' for o in ran)} of {sum(o.expect == 'fails' for o in ran)} "
        f"expected to fail fail as expected; {len(as_expected)}/{len(ran)} as expected; "
        f"total build time {total / 60:.1f} min",
    ]
    if details:
        lines += ["", "Failures and surprises:", *details]
    return "\n".join(lines)


def binderlite_commit() -> str:
    """The last commit that changed the binderlite package this process imported."""
    package = Path(binderlite.__file__).resolve().parent
    out = subprocess.run(["git", "log", "-1", "--format=%h", "--", "."], cwd=package, capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def read_results(paths: list[str]) -> list[list[Outcome]]:
    """Outcomes from results files, grouped per repository in corpus order (later files win)."""
    by_name: dict[str, list[Outcome]] = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            if line.strip():
                data = json.loads(line)
                by_name.setdefault(data["name"], []).append(Outcome(**data))
    order = {e.name: i for i, e in enumerate(load_corpus())}
    return [by_name[n] for n in sorted(by_name, key=lambda n: order.get(n, len(order)))]


class BuildLock:
    """The machine's build lock, kept across repositories for up to ``hold`` seconds, then let go.

    Taking it once per repository makes every repository wait behind every other user of
    the lock; keeping it for a few repositories (never past ``hold`` when one starts) does not.
    """

    def __init__(self, path: str, hold: float, log):
        self.path, self.hold, self.log = path, hold, log
        self.fh = None
        self.since = 0.0

    def __enter__(self) -> BuildLock:
        if self.fh and time.monotonic() - self.since > self.hold:
            self.release()
        if not self.fh:
            self.fh = open(self.path, "a")  # noqa: SIM115 - held across `with` blocks on purpose
            self.log(f"waiting for {self.path}")
            fcntl.flock(self.fh, fcntl.LOCK_EX)
            self.since = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            self.release()

    def release(self) -> None:
        if self.fh:
            self.fh.close()  # closing the file lets the flock go
            self.fh = None


def remove_compat_images() -> None:
    containers = docker("ps", "-aq", "--filter", f"name={PREFIX}", check=False).stdout.split()
    if containers:
        docker("rm", "-f", *containers, check=False)
    refs = docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout.split()
    ours = [ref for ref in refs if ref.rsplit("/", 1)[-1].startswith(PREFIX)]
    if ours:
        docker("rmi", "-f", *ours, check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compat", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="repositories whose name contains NAME"
    )
    parser.add_argument("--convention", action="append", default=[], help="repositories using this convention")
    parser.add_argument("--runs", type=int, default=1, help="builds per repository (image removed between runs)")
    parser.add_argument("--mirror", default=str(MIRROR), help=f"where the snapshots are (default {MIRROR})")
    parser.add_argument("--lock", default=LOCK, help=f"the machine's build lock, held per repository (default {LOCK})")
    parser.add_argument(
        "--hold", type=float, default=480, help="start no repository after holding the lock this long (default 480 s)"
    )
    parser.add_argument("--results", help="append every outcome to this JSON-lines file")
    parser.add_argument("--resume", action="store_true", help="skip repositories already in the --results file")
    parser.add_argument("--table", nargs="+", metavar="FILE", help="only print the table of results files")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown (for the README)")
    parser.add_argument("--keep-images", action="store_true", help="keep the built images")
    parser.add_argument(
        "--keep-logs", metavar="DIR", help="write each build's log to DIR/<name>.log (with --table: read them)"
    )
    parser.add_argument("--list", action="store_true", help="list the corpus and which snapshots are here")
    args = parser.parse_args(argv)
    stamp = f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, binderlite {binderlite_commit()}"

    if args.table:
        outcomes = read_results(args.table)
        for runs in outcomes if args.keep_logs else []:  # the hints again, from the logs kept then
            saved = Path(args.keep_logs) / f"{runs[-1].name.replace('/', '--').lower()}.log"
            if saved.exists() and not runs[-1].built:
                runs[-1].hint = error_hint(saved.read_text().splitlines())
        print(f"binderlite compatibility corpus — {stamp}\n")
        print(table(outcomes, args.markdown))
        return 0
    entries = select(load_corpus(), args.only, args.convention)
    if args.resume and args.results and Path(args.results).exists():
        done = {runs[-1].name for runs in read_results([args.results]) if runs[-1].built is not None}
        entries = [e for e in entries if e.name not in done]
    if args.list:
        for e in entries:
            there = "snapshot here" if snapshot(Path(args.mirror), e.name) else "NO SNAPSHOT"
            print(f"{e.name:42} {e.commit[:12]}  {e.expect:5}  {there:13} {', '.join(e.conventions)}")
        return 0
    if not entries:
        print("No repository of the corpus matches.", file=sys.stderr)
        return 2

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="binderlite-compat-"))
    settings = Settings(
        state_dir=str(tmp / "state"), image_prefix=PREFIX, allow_local_repos=True, registry="", build_timeout=900
    )
    if docker("image", "inspect", settings.base_image, check=False).returncode != 0:
        print(f"Base image {settings.base_image} is missing — run `binderlite base-image` first.", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on `timeout` or kill, as on Ctrl-C
    server = GitServer(tmp / "git")
    logs = Path(args.keep_logs) if args.keep_logs else None
    lock = BuildLock(args.lock, args.hold, log)
    outcomes: list[list[Outcome]] = []
    try:
        for entry in entries:
            runs = []
            for _ in range(args.runs):
                with lock:
                    try:
                        runs.append(run_entry(settings, server, Path(args.mirror), entry, args.keep_images, logs, log))
                    except (subprocess.SubprocessError, OSError) as exc:  # the harness, not binderlite
                        runs.append(Outcome(entry.name, entry.commit, list(entry.conventions), entry.expect))
                        runs[-1].works, runs[-1].problem = "skipped", f"harness error: {exc}"
                        log(f"{entry.name}: {runs[-1].problem}")
                if args.results:
                    with open(args.results, "a") as fh:
                        fh.write(json.dumps(asdict(runs[-1])) + "\n")
                if runs[-1].built is None:
                    break
            outcomes.append(runs)
        lock.release()
        print(f"binderlite compatibility corpus — {stamp}, {args.runs} run(s), {os.cpu_count()} CPUs\n")
        print(table(outcomes, args.markdown))
    finally:
        lock.release()
        stop_own_builds(settings)
        server.close()
        if not args.keep_images:
            remove_compat_images()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
