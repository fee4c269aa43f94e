"""The ``binderlite`` command line: thin commands over the library modules.

Every failure binderlite knows is a ``BinderliteError``: the one handler in
``BinderliteGroup`` prints ``Error: <message>`` and exits with the error's
``exit_code`` (1 failed, 2 bad input, 3 configuration, 4 unavailable; see
``binderlite.errors``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import click

from binderlite.builds.baseimage import (
    available_base_images,
    base_image_names,
    ensure_base_image,
    ensure_r_base_image,
)
from binderlite.builds.buildpacks import prepare_shared_stages
from binderlite.builds.buildpacks.r import R_RELEASES
from binderlite.builds.pipeline import build_events
from binderlite.errors import BadInputError, BinderliteError, BuildFailedError, LaunchFailedError, error_for_status
from binderlite.events import Event, Phase
from binderlite.hub.homes import list_homes, remove_homes
from binderlite.hub.homes import render as render_homes
from binderlite.hub.kubemanifests import render_launch
from binderlite.launch import launch as launch_server
from binderlite.links import ResolvedRepo
from binderlite.scheduler.cull import cull as run_cull
from binderlite.scheduler.runner import run
from binderlite.services import supervisor
from binderlite.services.backup import backup as backup_state
from binderlite.services.backup import restore as restore_state
from binderlite.services.backup import running_services
from binderlite.services.prepare import prepare as prepare_services
from binderlite.services.status import collect as collect_status
from binderlite.services.status import render as render_status
from binderlite.services.table import all_services
from binderlite.services.units import Install, render_units, write_units
from binderlite.services.up import run_all
from binderlite.settings import Settings, config_path, load_settings, settings_markdown_table
from binderlite.workshop import listing
from binderlite.workshop import prepare as workshop_prepare
from binderlite.workshop.bundle import Report
from binderlite.workshop.export import export_bundle
from binderlite.workshop.importer import import_bundle
from binderlite.workshop.linksfile import read_links_file
from binderlite.workshop.manifest import load_manifest
from binderlite.workshop.resolve import resolve_link


class BinderliteGroup(click.Group):
    """A click group that turns BinderliteError into ``Error: …`` and the error's exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BinderliteError as exc:
            click.echo(f"Error: {exc.message.strip()}", err=True)
            ctx.exit(exc.exit_code)


def _settings(ctx: click.Context) -> Settings:
    return ctx.obj["settings"]


def _say(message: str) -> None:
    click.echo(message, nl=False, err=True)


@click.group(cls=BinderliteGroup)
@click.option("--config", envvar="BINDERLITE_CONFIG", default=None, help="TOML config file.")
@click.pass_context
def main(ctx: click.Context, config: str | None) -> None:
    """binderlite: BinderHub without Kubernetes."""
    ctx.obj = {"settings": load_settings(config), "config": config, "config_path": config_path(config)}


def build_image(settings: Settings, link: str, ref: str) -> tuple[ResolvedRepo, str]:
    """Resolve LINK (offline: through the workshop's manifest) and get its image; (resolved repo, image name)."""
    resolved = resolve_link(link, settings, ref)
    return resolved, build_resolved(settings, resolved)


def build_resolved(settings: Settings, resolved: ResolvedRepo) -> str:
    """Get the image of a resolved link, streaming the build log to stderr; the image name."""
    final: Event | None = None
    warnings: list[str] = []
    for ev in build_events(settings, resolved):
        if ev is None:
            continue
        if ev.ends_build:
            final = ev
        if ev.is_warning:
            warnings.append(ev.message.strip())
        if ev.phase is not Phase.FAILED:  # a failure is said once, as the Error: line
            _say(ev.message)
    if warnings:
        _say("".join(f"Warning: {w.removeprefix('binderlite: ')}\n" for w in warnings))
    if final is None or final.phase is Phase.FAILED:
        lines = (final.message if final else "the build ended without a result").strip().splitlines()
        error = error_for_status(final.get("status_code") if final else None, BuildFailedError)
        raise error(lines[0] if lines else "the build failed")
    return final["imageName"]


ALLOW_LOCAL_HELP = (
    "Allow a local directory, a file:// URL or a git host on this machine or its network, for this command "
    "only (the web app follows the allow_local_repos setting alone)."
)


def _with_local(settings: Settings, allow_local: bool) -> Settings:
    return settings.with_overrides(allow_local_repos=True) if allow_local else settings


@main.command()
@click.argument("link")
@click.option("--ref", default="HEAD", show_default=True, help="Ref to build when LINK is a git URL.")
@click.option("--allow-local", is_flag=True, help=ALLOW_LOCAL_HELP)
@click.pass_context
def build(ctx: click.Context, link: str, ref: str, allow_local: bool) -> None:
    """Build the image for LINK (gh/org/repo/ref, git/<escaped url>/<ref>, a git URL or a directory).

    The build log streams to stderr; the image name is the last line of stdout.
    """
    _, image = build_image(_with_local(_settings(ctx), allow_local), link, ref)
    click.echo(image)


@main.command("base-image")
@click.option("--with-r", is_flag=True, help="Also make the R base images (one per Debian release with R).")
@click.pass_context
def base_image(ctx: click.Context, with_r: bool) -> None:
    """Make sure the base images exist (load a tarball, pull a configured one, or debootstrap them).

    Then the stages every build on them shares (JupyterLab's venv, the toolchain
    with it) are made too, so a machine's first build runs only its own steps.
    """
    settings = _settings(ctx)

    def say(message: str) -> None:
        click.echo(message, err=True)

    how = ensure_base_image(settings, log=say)
    click.echo(f"{settings.base_image} ({how})")
    for name in base_image_names(settings)[1:]:
        click.echo(name)
    bases = available_base_images(settings)
    if with_r:
        for release in R_RELEASES:
            bases.append(ensure_r_base_image(settings, release.suite, log=say))
            click.echo(bases[-1].name)
    if settings.build_packs == "binderlite":
        for name in prepare_shared_stages(settings, bases, say=lambda text: say(text.rstrip("\n"))):
            click.echo(name)


@main.command()
@click.argument("link")
@click.option("--ref", default="HEAD", show_default=True, help="Ref to launch when LINK is a git URL.")
@click.option("--allow-local", is_flag=True, help=ALLOW_LOCAL_HELP)
@click.pass_context
def launch(ctx: click.Context, link: str, ref: str, allow_local: bool) -> None:
    """Build (if needed) and launch LINK on the running binderlite; print the URL with its token."""
    settings = _with_local(_settings(ctx), allow_local)
    if settings.auth_mode == "authenticated":  # temporary users are the anonymous mode's; the culler keeps users here
        raise BadInputError(
            "auth_mode is 'authenticated': servers belong to signed-in users, so open the link in a browser "
            f"({settings.binder_launch_host}v2/…) and sign in; `binderlite launch` is for the anonymous mode."
        )
    resolved, image = build_image(settings, link, ref)
    final = Event.log("")
    for ev in launch_server(settings, resolved, image):
        if ev.phase is not Phase.FAILED:
            _say(ev.message)
        final = ev
    if final.phase is not Phase.READY:
        error = error_for_status(final.get("status_code"), LaunchFailedError)
        raise error(final.message.strip() or "the launch failed")
    click.echo(f"{final['url']}?{urlencode({'token': final['token']})}")


@main.command()
@click.option(
    "--classroom",
    is_flag=True,
    help="Serve attendees on the local network for this run (the setting `classroom`): prints the URL and its "
    "QR code, sizes quotas from the workshop's expected attendees.",
)
@click.pass_context
def up(ctx: click.Context, classroom: bool) -> None:
    """Check prerequisites, then run registry, proxy, hub, web app and scheduler until Ctrl-C.

    A service that dies is restarted (1 s, doubling to 30 s); after 5 deaths within 2 minutes up stops everything.
    """
    settings = _settings(ctx)
    if classroom:
        settings = dataclasses.replace(settings, classroom=True)
    run_all(settings, echo=lambda msg: click.echo(msg, err=True))


@main.command()
@click.pass_context
def prepare(ctx: click.Context) -> None:
    """Make what the services need (state dir, Docker networks and rules, secrets, users); idempotent, as root.

    `binderlite up` does this first; on a server binderlite-prepare.service runs it at every boot.
    """
    prepare_services(_settings(ctx), echo=click.echo)


def _unseen_environment() -> list[str]:
    """Variables of this shell that change the settings here but that the units' processes will not have."""
    names = [n for n in os.environ if n.startswith("BINDERLITE_") and n != "BINDERLITE_CONFIG"]
    return sorted(names + [n for n in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY") if os.environ.get(n)])


@main.command("systemd-units")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder to write the units into.")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 listing the units that differ from OUT's.")
@click.option(
    "--venv",
    default=None,
    help="The venv the units run binderlite from (default: the one running this command), "
    "e.g. /opt/binderlite/current for the committed reference units.",
)
@click.pass_context
def systemd_units(ctx: click.Context, out: str, check: bool, venv: str | None) -> None:
    """Write systemd units for every service of `binderlite up` (and binderlite.target) into OUT.

    Prints `wrote <path>` for each unit it changed, nothing for the others.
    """
    for name in _unseen_environment():
        click.echo(
            f"Warning: {name} is set here, but the units' processes will not see it: put it in the config file.",
            err=True,
        )
    install = Install.of(ctx.obj["config_path"], venv)
    differ = write_units(Path(out), render_units(_settings(ctx), install), check=check)
    for path in differ:
        click.echo(f"differs {path}" if check else f"wrote {path}")
    if check and differ:
        ctx.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON, for scripts.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show each service, the public URL, running servers, builds, disk use and the certificate's expiry.

    Exits 4 when something is down (a service, the hub, an expired certificate, a disk above high water).
    """
    report = collect_status(_settings(ctx))
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else render_status(report), nl=as_json)
    if not report.ok:
        ctx.exit(4)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_context
def backup(ctx: click.Context, file: str) -> None:
    """Back up what cannot be rebuilt (settings, hub and build databases, secrets) into FILE (a tar.gz, 0600).

    Safe while binderlite serves: databases are copied with SQLite's online backup.
    """
    names = backup_state(_settings(ctx), ctx.obj["config_path"], Path(file))
    click.echo(f"wrote {file}: {', '.join(names)}")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Restore even though binderlite's services are running.")
@click.pass_context
def restore(ctx: click.Context, file: str, force: bool) -> None:
    """Restore a backup made by `binderlite backup` (refused while binderlite runs, unless --force)."""
    given, config = ctx.obj["config"], ctx.obj["config_path"]
    restored = restore_state(lambda: load_settings(given), config, Path(file), running_services, force=force)
    for path in restored:
        click.echo(f"restored {path}")
    click.echo("Next: binderlite prepare, then start binderlite (systemctl start binderlite.target, or binderlite up).")


@main.group()
def homes() -> None:
    """Signed-in users' persistent folders (one Docker volume per user and server): list, remove."""


@homes.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the folders as JSON, for scripts.")
@click.pass_context
def homes_list(ctx: click.Context, as_json: bool) -> None:
    """List every persistent folder: user, server, size against home_quota (OVER QUOTA marked), volume."""
    found = list_homes(_settings(ctx.find_root()))
    if as_json:
        rows = [dict(dataclasses.asdict(h), over_quota=h.over_quota) for h in found]
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(render_homes(found), nl=False)


@homes.command("remove")
@click.argument("user")
@click.argument("server", required=False)
@click.pass_context
def homes_remove(ctx: click.Context, user: str, server: str | None) -> None:
    """Remove USER's persistent folders, or only the one of SERVER (its name as `homes list` shows it).

    The files are gone for good (back up first: `binderlite backup`); a folder whose server runs is refused.
    """
    for name in remove_homes(_settings(ctx.find_root()), user, "" if server == "(default)" else server):
        click.echo(f"removed {name}")


@main.command("wait-ready")
@click.argument("name")
@click.pass_context
def wait_ready(ctx: click.Context, name: str) -> None:
    """Wait until the service NAME answers (the hub's unit starts the services after it only then)."""
    services = {s.name: s for s in all_services(_settings(ctx), find=lambda program: program)}
    if name not in services:
        raise BadInputError(f"No service {name!r}; binderlite's services are {', '.join(services)}.")
    supervisor.wait_ready(services[name])


@main.command()
@click.pass_context
def scheduler(ctx: click.Context) -> None:
    """Run the scheduler (idle culling, reconciliation, disk GC); one per install."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    run(_settings(ctx))


@main.command()
@click.option("--dry-run", is_flag=True, help="Only print what would be culled now (changes nothing).")
@click.pass_context
def cull(ctx: click.Context, dry_run: bool) -> None:
    """Cull idle and too-old servers now."""
    decisions = run_cull(_settings(ctx), dry_run=dry_run)
    verb = "would cull" if dry_run else "culled"
    click.echo(f"{verb} {len(decisions)} servers")
    for d in decisions:
        click.echo(f"  {d.describe()}")


@main.group()
def workshop() -> None:
    """Offline workshops: prepare the links while online, list them, carry them in one bundle (export, import)."""


@workshop.command("prepare")
@click.argument("links_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--attendees",
    type=click.IntRange(min=1),
    default=None,
    help="Expected attendees (default: the largest number in the links file's second column; "
    "else the earlier manifest's).",
)
@click.option(
    "--extra-packages",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A requirements-style file of more packages for the mirror (for repositories written later).",
)
@click.option("--allow-local", is_flag=True, help=ALLOW_LOCAL_HELP)
@click.pass_context
def workshop_prepare_cmd(
    ctx: click.Context, links_file: Path, attendees: int | None, extra_packages: Path | None, allow_local: bool
) -> None:
    """Resolve, build and copy every link of LINKS_FILE (one Binder link per line, optionally its attendees).

    Every line is checked first: a bad line stops everything before anything is
    prepared. The manifest (link → commit → image) is merged with an earlier one.
    """
    settings = _with_local(_settings(ctx.find_root()), allow_local)
    lines = read_links_file(links_file, settings)
    extra = workshop_prepare.read_extra_packages(extra_packages) if extra_packages else []

    def echo(message: str) -> None:
        click.echo(message, err=True)

    entries = workshop_prepare.prepare_links(settings, lines, lambda r: build_resolved(settings, r), echo)
    manifest = workshop_prepare.record(settings, entries, lines, attendees, extra, echo)
    workshop_prepare.collect_packages(settings, manifest, echo)
    click.echo(listing.render(settings, manifest, listing.present_images(settings, manifest)), nl=False)


@workshop.command("list")
@click.pass_context
def workshop_list(ctx: click.Context) -> None:
    """List the prepared links: link, commit, image, and whether the image is on the Docker daemon."""
    settings = _settings(ctx.find_root())
    manifest = load_manifest(settings)
    present = listing.present_images(settings, manifest) if manifest else {}
    click.echo(listing.render(settings, manifest, present), nl=False)


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


def _show_report(report: Report, file: Path) -> None:
    click.echo(f"{file}: {len(report.sizes)} parts")
    click.echo("\n".join(report.lines()))


@workshop.command("export")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--no-install",
    is_flag=True,
    help="Leave out install.sh and what it installs (Debian packages, wheels, the proxy): for machines that "
    "already run binderlite; the bundle is then much smaller and export needs no network.",
)
@click.pass_context
def workshop_export(ctx: click.Context, file: str, no_install: bool) -> None:
    """Write the prepared workshop and everything a laptop needs into one bundle FILE (a tar)."""
    report = export_bundle(_settings(ctx), Path(file), with_install=not no_install, echo=_echo_err)
    _show_report(report, Path(file))
    if not no_install:
        name = Path(file).name
        click.echo(
            "On a Debian 12 laptop, as root, with no network:\n"
            f"  tar -xf {name} binderlite-workshop/install.sh && bash binderlite-workshop/install.sh {name}"
        )


@workshop.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_context
def workshop_import(ctx: click.Context, file: str) -> None:
    """Check every checksum of the bundle FILE, then load its images and put its workshop in place."""
    report = import_bundle(_settings(ctx), Path(file), echo=_echo_err)
    _show_report(report, Path(file))
    click.echo(f"Imported {len(report.images)} images; the workshop is ready: binderlite up")


@main.command("kube-manifests")
@click.option("--user", required=True, help="The hub user the server is for.")
@click.option("--server", default="", help="The server's name (empty: the user's default server).")
@click.option(
    "--image", required=True, help="The image as binderlite's builds name it: <registry>/<image_prefix>…:tag."
)
@click.option("--no-registry-check", is_flag=True, help="Do not ask binderlite's registry whether it built the image.")
@click.pass_context
def kube_manifests(ctx: click.Context, user: str, server: str, image: str, no_registry_check: bool) -> None:
    """Print the pod and NetworkPolicy a launch would create on the kubernetes backend (nothing is sent).

    JSON documents separated by ---, as `kubectl apply --dry-run=server -f -` reads them.
    """
    settings = _settings(ctx)
    if settings.spawner_backend != "kubernetes":  # preview before switching (the checks still apply)
        settings = settings.with_overrides(spawner_backend="kubernetes")
    documents = render_launch(settings, user, server, image, check_registry=not no_registry_check)
    click.echo("\n---\n".join(json.dumps(document, indent=2) for document in documents))


@main.command("settings")
def settings_table() -> None:
    """Print the settings table (Markdown), as in the README."""
    click.echo(settings_markdown_table(), nl=False)


if __name__ == "__main__":
    sys.exit(main())
