"""systemd units made from the service table: ``binderlite systemd-units``.

One unit per entry of ``table.all_services`` (the list ``binderlite up``
runs), ``binderlite-prepare.service`` (``binderlite prepare`` at every boot)
and ``binderlite.target`` grouping them. A unit names only the config file
(``BINDERLITE_CONFIG``): its process loads the settings itself, and secrets
reach it from the 0600 environment file ``prepare`` writes, never from the
unit. binderlite's own commands run from the venv given (``bin/python``), so
units rendered from another version's venv differ exactly where that version
runs; the proxy and the registry come from PATH and stay put on an upgrade.
Every directive carries a comment saying why it is there.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from binderlite.services.prepare import env_file
from binderlite.services.table import Service, all_services, program
from binderlite.settings import Settings

TARGET = "binderlite.target"
PREPARE = "binderlite-prepare.service"
HEADER = (
    "# Made by `binderlite systemd-units` from binderlite's service table (binderlite/services/table.py),\n"
    "# the list `binderlite up` runs: run it again rather than editing this file.\n"
)
# Where the reference install (the committed systemd/ folder) finds the programs binderlite does not ship.
REFERENCE_PROGRAMS = {
    "configurable-http-proxy": "/usr/local/bin/configurable-http-proxy",  # npm install -g
    "docker-registry": "/usr/bin/docker-registry",  # Debian's package
}
REFERENCE_CONFIG = "/etc/binderlite/binderlite.toml"
ENVIRONMENT_NOTES = {
    "PROMETHEUS_MULTIPROC_DIR": "The shared metrics folder its processes count into (binderlite prepare empties "
    "it at boot); /metrics adds them up.",
}
REFERENCE_VENV = "/opt/binderlite/current"

Directive = tuple[str, str, str]  # key, value, why


def unit_name(service: Service) -> str:
    return f"binderlite-{service.name}.service"


@dataclass(frozen=True)
class Install:
    """Where the units point: the settings file and the interpreter of binderlite's own commands."""

    config_file: str
    python: str
    find: Callable[[str], str] = program

    @classmethod
    def of(cls, config_file: str, venv: str | None = None, find: Callable[[str], str] = program) -> Install:
        """From this process (``sys.executable``), or from ``venv`` as it will be on the machine."""
        python = f"{venv.rstrip('/')}/bin/python" if venv else sys.executable
        return cls(str(Path(config_file).absolute()), python, find)

    @property
    def bin_dir(self) -> str:
        return str(Path(self.python).parent)


def _section(name: str, directives: list[Directive]) -> str:
    lines = [f"[{name}]"]
    for key, value, why in directives:
        lines.extend(_comment(why))
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def _comment(text: str) -> list[str]:
    return [f"# {line}" for para in text.splitlines() for line in textwrap.wrap(para, 100, break_on_hyphens=False)]


def _unit(title: str, sections: list[tuple[str, list[Directive]]]) -> str:
    head = "\n".join(_comment(title)) + "\n" + HEADER
    return "\n".join([head, *(_section(name, directives) for name, directives in sections)])


def _uses_values(service: Service) -> bool:
    return any("${" in arg for arg in service.argv)


def _exec(argv: list[str]) -> str:
    """A command line as systemd reads it: ``%`` escaped, words with spaces or quotes quoted; ``${NAME}`` kept."""
    words = []
    for arg in argv:
        arg = arg.replace("%", "%%")
        if not arg or any(c in arg for c in " \t\"'\\;"):
            arg = '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
        words.append(arg)
    return " ".join(words)


NO_NAMESPACES: Directive = ("RestrictNamespaces", "yes", "It cannot make namespaces (no containers of its own).")
SANDBOX_HARDENING: list[Directive] = [
    ("PrivateTmp", "yes", "A /tmp and /var/tmp of its own, emptied when it stops."),
    ("NoNewPrivileges", "yes", "Neither it nor its children gain privileges through setuid or file capabilities."),
    ("ProtectHome", "yes", "/home, /root and /run/user are out of sight."),
    ("ProtectKernelModules", "yes", "It cannot load kernel modules."),
    ("ProtectKernelLogs", "yes", "It cannot read or write the kernel's log."),
    ("ProtectClock", "yes", "It cannot set the clock."),
    ("ProtectHostname", "yes", "It cannot change the host name."),
    ("RestrictRealtime", "yes", "No realtime scheduling (it could starve the machine)."),
    ("RestrictSUIDSGID", "yes", "It cannot make setuid or setgid files."),
    ("LockPersonality", "yes", "It cannot change its execution domain."),
    ("SystemCallArchitectures", "native", "Only the machine's native system calls."),
]
UNPRIVILEGED_HARDENING: list[Directive] = [
    ("PrivateDevices", "yes", "No access to physical devices."),
    ("ProtectKernelTunables", "yes", "/proc/sys and /sys are read-only."),
    ("ProtectControlGroups", "yes", "The control groups are read-only."),
    ("ProtectProc", "invisible", "Other users' processes are out of sight in /proc."),
    ("CapabilityBoundingSet", "", "No capabilities at all: it binds unprivileged ports only."),
    NO_NAMESPACES,
    ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX", "Only IP and local sockets."),
]
ROOT_HARDENING: list[Directive] = [
    ("PrivateDevices", "yes", "No access to physical devices."),
    ("ProtectKernelTunables", "yes", "/proc/sys and /sys are read-only (Docker sets the networks' sysctls itself)."),
    ("ProtectControlGroups", "yes", "The control groups are read-only (Docker manages containers' groups)."),
    (
        "RestrictAddressFamilies",
        "AF_INET AF_INET6 AF_UNIX AF_NETLINK",
        "IP, local sockets (the Docker socket) and netlink (iptables).",
    ),
]


def _service_unit(service: Service, before: list[Service], settings: Settings, install: Install) -> str:
    after = [PREPARE, *(unit_name(s) for s in before)]
    unit: list[Directive] = [
        ("Description", service.summary, "What it is."),
        ("PartOf", TARGET, f"Stopped and restarted with {TARGET}."),
        (
            "Wants",
            PREPARE,
            "binderlite prepare made what it needs (networks, kernel rules, secrets, files) at boot.\n"
            "Wants, not Requires: restarting prepare (e.g. on an upgrade) does not restart this service.",
        ),
        (
            "After",
            " ".join(after),
            "After prepare and the services before it in the table (the order `binderlite up` starts them in).",
        ),
    ]
    if service.user is None:
        unit += [
            ("Wants", "docker.service", "It works through the Docker daemon."),
            ("After", "docker.service", "So it starts once the Docker daemon runs."),
        ]
    body: list[Directive] = []
    if service.notify:
        body += [
            ("Type", "notify", "Ready when it says so: gunicorn's arbiter sends READY=1 once it listens."),
            ("NotifyAccess", "main", "Only the arbiter (the main process) may report; its workers are children."),
        ]
    else:
        body += [("Type", "exec", "Started once its program runs (`binderlite up` waits for it to answer instead).")]
    body += [("ExecStart", _exec(service.argv), "Its one command, the same `binderlite up` runs.")]
    if service.others_wait:
        body += [
            (
                "ExecStartPost",
                f"{install.bin_dir}/binderlite wait-ready {service.name}",
                "Started once it answers, as `binderlite up` waits for it: the services after it need it.",
            ),
            ("TimeoutStartSec", str(int(service.ready_timeout) + 30), "Time to start and answer."),
        ]
    if service.loads_settings:
        body += [
            (
                "Environment",
                f"BINDERLITE_CONFIG={install.config_file}",
                "Where the settings are: it loads them itself (never a secret here).",
            )
        ]
    for name, value in sorted(service.environment.items()):
        body += [("Environment", f"{name}={value}", ENVIRONMENT_NOTES.get(name, "Set for it by binderlite."))]
    if _uses_values(service):
        body += [
            (
                "EnvironmentFile",
                str(env_file(settings, service)),
                f"Run-time values made by binderlite prepare (mode 0600): {service.values}.",
            )
        ]
    if service.user:
        body += [
            ("User", service.user, "The service user: it needs neither root nor the Docker socket."),
            ("Group", service.user, "The service user's own group."),
        ]
    else:
        body += [("User", "root", f"Root, because {service.why_root}.")]
    body += [
        ("WorkingDirectory", settings.state_dir, "The state dir, as under `binderlite up`."),
        ("UMask", "0077", "What it writes (databases, tokens, blobs) is its own."),
        ("Restart", "on-failure", "Started again when it crashes or is killed."),
        ("RestartSec", "2", "Two seconds between a crash and the restart."),
        ("StandardOutput", "journal", f"Its log is in the journal: journalctl -u {unit_name(service)}."),
        ("StandardError", "journal", "Errors too."),
    ]
    if service.stop_status:
        body += [
            (
                "SuccessExitStatus",
                str(service.stop_status),
                f"It exits {service.stop_status} when told to stop: a stop, not a failure.",
            )
        ]
    if service.keeps_children:
        body += [
            (
                "KillMode",
                "process",
                "Stopping it signals gunicorn's arbiter only, which stops its workers; builds it started\n"
                "run on in their own sessions, as under `binderlite up` (an upgrade does not kill them).",
            ),
            ("TimeoutStopSec", "45", "gunicorn gives open build streams 30 s (graceful_timeout) to finish."),
        ]
    body += [("ProtectSystem", "strict", "The whole file system is read-only, except what follows.")]
    writable = [p for p in [*service.owns, *service.writes] if not p.is_relative_to("/run")]
    if writable:
        body += [("ReadWritePaths", " ".join(str(p) for p in writable), "What it writes: the state it keeps.")]
    for run_dir in [p for p in service.writes if p.is_relative_to("/run")]:
        body += [
            (
                "RuntimeDirectory",
                str(run_dir.relative_to("/run")),
                f"{run_dir}, made by systemd and writable (the fetch sandbox mounts work dirs there).",
            ),
            ("RuntimeDirectoryMode", "0755", "The sandbox user passes through it to its work dir."),
            ("RuntimeDirectoryPreserve", "yes", "Kept across a restart: builds started before it still use it."),
        ]
    body += SANDBOX_HARDENING
    body += UNPRIVILEGED_HARDENING if service.user else ROOT_HARDENING
    if not service.user and not service.sandboxes:
        body += [NO_NAMESPACES]
    if service.name == "registry":
        body += [("MemoryDenyWriteExecute", "yes", "No writable and executable memory (a Go program needs none).")]
    install_section: list[Directive] = [("WantedBy", TARGET, f"`systemctl enable` ties it to {TARGET}.")]
    title = f"{unit_name(service)}: {service.summary}."
    if service.user is None:
        title += f"\nIt runs as root: {service.why_root}."
    return _unit(title, [("Unit", unit), ("Service", body), ("Install", install_section)])


def _prepare_unit(install: Install) -> str:
    unit: list[Directive] = [
        (
            "Description",
            "Prepare binderlite: state dir, Docker networks and their kernel rules, secrets, users",
            "What it is.",
        ),
        ("PartOf", TARGET, f"Stopped and restarted with {TARGET}."),
        ("Wants", "docker.service network-online.target", "It makes Docker networks, and checks the network."),
        ("After", "docker.service network-online.target", "So it runs once the Docker daemon runs."),
    ]
    body: list[Directive] = [
        ("Type", "oneshot", "It runs to the end, then the services start."),
        ("RemainAfterExit", "yes", "It counts as active afterwards, so it runs once per boot."),
        (
            "ExecStart",
            f"{install.bin_dir}/binderlite prepare",
            "Idempotent: what exists is kept, what is missing made.",
        ),
        ("Environment", f"BINDERLITE_CONFIG={install.config_file}", "Where the settings are."),
        (
            "User",
            "root",
            "Root without a sandbox: it creates system users (/etc/passwd), Docker networks (the Docker\n"
            "socket is root-equivalent), kernel rules (iptables) and the state dir.",
        ),
        ("UMask", "0077", "What it writes (tokens, secrets) is root's alone."),
        ("PrivateTmp", "yes", "A /tmp of its own."),
        ("StandardOutput", "journal", f"Its log is in the journal: journalctl -u {PREPARE}."),
        ("StandardError", "journal", "Errors too."),
    ]
    return _unit(
        f"{PREPARE}: `binderlite prepare` at every boot (Docker networks' kernel rules do not survive one).",
        [
            ("Unit", unit),
            ("Service", body),
            ("Install", [("WantedBy", TARGET, f"`systemctl enable` ties it to {TARGET}.")]),
        ],
    )


def _target(services: list[Service]) -> str:
    names = [PREPARE, *(unit_name(s) for s in services)]
    unit: list[Directive] = [
        ("Description", "binderlite: BinderHub without Kubernetes (every service)", "What it is."),
        ("Wants", " ".join(names), "Starting the target starts every service (each is PartOf it, so stops with it)."),
        ("After", "network-online.target docker.service", "The machine's network and Docker first."),
    ]
    return _unit(
        f"{TARGET}: every binderlite service; `systemctl start {TARGET}` starts them in the table's order.",
        [("Unit", unit), ("Install", [("WantedBy", "multi-user.target", "Started at boot once enabled.")])],
    )


def render_units(settings: Settings, install: Install) -> dict[str, str]:
    """Every unit file's name and text, for ``settings`` installed as ``install`` says."""
    services = all_services(settings, install.python, install.find)
    units = {PREPARE: _prepare_unit(install)}
    for i, service in enumerate(services):
        units[unit_name(service)] = _service_unit(service, services[:i], settings, install)
    units[TARGET] = _target(services)
    return units


def reference_units() -> dict[str, str]:
    """The units of the reference install: the committed ``systemd/`` folder."""
    settings = Settings()
    return render_units(
        settings, Install(REFERENCE_CONFIG, f"{REFERENCE_VENV}/bin/python", REFERENCE_PROGRAMS.__getitem__)
    )


def write_units(out: Path, units: dict[str, str], check: bool = False) -> list[Path]:
    """Write the units whose text differs into ``out`` (none with ``check``); the paths that differ(ed)."""
    differ = []
    if not check:
        out.mkdir(parents=True, exist_ok=True)
    for name, text in units.items():
        path = out / name
        try:
            same = path.read_text() == text
        except FileNotFoundError:
            same = False
        if same:
            continue
        differ.append(path)
        if not check:
            tmp = path.with_name(f".{name}.tmp")
            tmp.write_text(text)
            tmp.chmod(0o644)
            tmp.replace(path)
    return differ
