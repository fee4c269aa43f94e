"""The ``binderlite`` command line: thin commands over the library modules."""

from __future__ import annotations

import logging
import signal
import sys
from urllib.parse import urlencode

import click

from binderlite.builds.baseimage import ensure_base_image
from binderlite.builds.pipeline import build_events
from binderlite.errors import BinderliteError
from binderlite.launch import launch as launch_server
from binderlite.links import resolve_link
from binderlite.scheduler.cull import cull as run_cull
from binderlite.scheduler.runner import run
from binderlite.services.up import run_all
from binderlite.settings import Settings, load_settings, settings_markdown_table


def _settings(ctx: click.Context) -> Settings:
    return ctx.obj["settings"]


def fail(message: str) -> None:
    """A user error: ``Error: …`` on stderr and exit code 1."""
    raise click.ClickException(message)


@click.group()
@click.option("--config", envvar="BINDERLITE_CONFIG", default=None, help="TOML config file.")
@click.pass_context
def main(ctx: click.Context, config: str | None) -> None:
    """binderlite: BinderHub without Kubernetes."""
    try:
        ctx.obj = {"settings": load_settings(config)}
    except BinderliteError as exc:
        fail(exc.message)


def build_image(settings: Settings, link: str, ref: str):
    """Resolve LINK and get its image, streaming the log to stderr; (resolved repo, image name)."""
    try:
        resolved = resolve_link(link, settings, ref)
    except BinderliteError as exc:
        fail(exc.message)
    final = None
    for ev in build_events(settings, resolved):
        if ev is None:
            continue
        if ev.get("phase") in ("built", "failed"):
            final = ev
        if ev.get("phase") != "failed":  # a failure is said once, as the Error: line below
            click.echo(ev.get("message", ""), nl=False, err=True)
    if final is None or final["phase"] == "failed":
        message = (final or {}).get("message", "build ended without a result").strip().splitlines()
        fail(message[0] if message else "build failed")
    return resolved, final["imageName"]


@main.command()
@click.argument("link")
@click.option("--ref", default="HEAD", show_default=True, help="Ref to build when LINK is a git URL.")
@click.pass_context
def build(ctx: click.Context, link: str, ref: str) -> None:
    """Build the image for LINK (gh/org/repo/ref, git/<escaped url>/<ref>, a git URL or a directory).

    The build log streams to stderr; the image name is the last line of stdout.
    """
    _, image = build_image(_settings(ctx), link, ref)
    click.echo(image)


@main.command("base-image")
@click.pass_context
def base_image(ctx: click.Context) -> None:
    """Make sure the base image exists (pull, load a tarball, or debootstrap it)."""
    settings = _settings(ctx)
    try:
        how = ensure_base_image(settings, log=lambda msg: click.echo(msg, err=True))
    except BinderliteError as exc:
        fail(exc.message)
    click.echo(f"{settings.base_image} ({how})")


@main.command()
@click.argument("link")
@click.option("--ref", default="HEAD", show_default=True, help="Ref to launch when LINK is a git URL.")
@click.pass_context
def launch(ctx: click.Context, link: str, ref: str) -> None:
    """Build (if needed) and launch LINK on the running binderlite; print the URL with its token."""
    settings = _settings(ctx)
    resolved, image = build_image(settings, link, ref)
    final: dict = {}
    for ev in launch_server(settings, resolved, image):
        click.echo(ev.get("message", ""), nl=False, err=True)
        final = ev
    if final.get("phase") != "ready":
        fail((final.get("message") or "launch failed").strip())
    click.echo(f"{final['url']}?{urlencode({'token': final['token']})}")


@main.command()
@click.pass_context
def up(ctx: click.Context) -> None:
    """Check prerequisites, then run registry, proxy, hub, web app and scheduler until Ctrl-C."""
    try:
        run_all(_settings(ctx), echo=lambda msg: click.echo(msg, err=True))
    except BinderliteError as exc:
        fail(exc.message)


@main.command()
@click.pass_context
def scheduler(ctx: click.Context) -> None:
    """Run the scheduler (idle culling, reconciliation, disk GC); one per install."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        run(_settings(ctx))
    except BinderliteError as exc:
        logging.getLogger("binderlite.scheduler").error("%s", exc)
        fail(str(exc))


@main.command()
@click.option("--dry-run", is_flag=True, help="Only print what would be culled now.")
@click.pass_context
def cull(ctx: click.Context, dry_run: bool) -> None:
    """Cull idle and too-old servers now."""
    try:
        decisions = run_cull(_settings(ctx), dry_run=dry_run)
    except Exception as exc:  # the hub down, a bad token: a message, not a traceback
        fail(f"could not reach JupyterHub to cull: {exc}")
    verb = "would cull" if dry_run else "culled"
    click.echo(f"{verb} {len(decisions)} servers")
    for d in decisions:
        click.echo(f"  {d.describe()}")


@main.command("settings")
def settings_table() -> None:
    """Print the settings table (Markdown), as in the README."""
    click.echo(settings_markdown_table(), nl=False)


if __name__ == "__main__":
    sys.exit(main())
