"""``GET /build/<provider>/<spec>``: BinderHub's build-and-launch event stream.

The request's work (resolve the link, follow the build pipeline, launch) runs
in a producer thread — a greenlet under gunicorn's gevent workers — that puts
events on a queue; the response generator drains it and sends a
``:keepalive`` comment whenever nothing came for ``STREAM_KEEPALIVE`` seconds,
however long a single step blocks. A client that goes away only stops the
producer's reading: the build itself runs in a detached worker and goes on.
Every error, expected or not, ends the stream with a ``failed`` event; how a
launch ended (``ready`` or ``failed``, refusals included) goes to the launch
event log.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from flask import Blueprint, Response, current_app, jsonify, request

from binderlite import launch as launcher
from binderlite.access.rules import check_launch
from binderlite.builds import pipeline
from binderlite.errors import BannedSpecError, BinderliteError, RefNotFoundError
from binderlite.events import Event, Phase
from binderlite.hub.identity import SignedInUser
from binderlite.launch import quotas
from binderlite.links.model import ResolvedRepo
from binderlite.observe import eventlog
from binderlite.observe.metrics import LaunchWatch
from binderlite.settings import Settings
from binderlite.web.helpers import get_settings, raw_spec
from binderlite.web.pages import refused
from binderlite.web.signin import current_user
from binderlite.workshop.resolve import resolve

log = logging.getLogger(__name__)
bp = Blueprint("build_api", __name__)
_DONE = object()
STREAM_BUFFER = 256  # events waiting for a slow client


@dataclass
class Outcome:
    """What one request came to: the resolved link (once known) and the event that ended the stream."""

    resolved: ResolvedRepo | None = None
    last: Event | None = None

    @property
    def status(self) -> str:
        return "success" if self.last is not None and self.last.phase is Phase.READY else "failure"


def sse(ev: dict) -> str:
    return f"data: {json.dumps(ev)}\n\n"


def failed(message: str, status: int = 500) -> Event:
    return Event.failed(message, status)


def resolve_failure(provider: str, spec: str, exc: BinderliteError) -> Event:
    """A ``failed`` event in BinderHub's wording for a link that cannot be resolved.

    Other errors (malformed spec, unknown provider, a URL refused as unsafe) carry
    their own message, which names the problem and what is supported.
    """
    if isinstance(exc, BannedSpecError):
        return failed(exc.message, exc.status)
    if isinstance(exc, RefNotFoundError):
        return failed(
            f"Could not resolve ref for {provider}:{spec}. Double check your URL and that the ref exists. "
            f"{exc.message}",
            exc.status,
        )
    return failed(exc.message, exc.status)


def events_for(
    settings: Settings,
    provider: str,
    spec: str,
    build_only: bool,
    stop: threading.Event,
    client: str = "",
    user: SignedInUser | None = None,
    on_resolved: Callable[[ResolvedRepo], None] | None = None,
) -> Iterator[Event]:
    """The whole request as events: resolve, check access, build (or find) the image, launch; never raises.

    ``user``: the signed-in user (authenticated mode), whose access is checked
    once the link is resolved, before anything is built or started.
    ``on_resolved``: told the resolved link (the launch metrics' labels, the event log's ref).
    """
    wait = None if build_only else quotas.rate_limited(settings, client)
    if wait:
        yield failed(f"Too many launches from your address; try again in {wait:.0f} s.", 429)
        return
    try:
        resolved = resolve(provider, spec, settings)  # offline: the workshop's prepared version
    except BinderliteError as exc:
        yield resolve_failure(provider, spec, exc)
        return
    if on_resolved is not None:
        on_resolved(resolved)
    if resolved.private and settings.auth_mode == "anonymous":  # private repositories: signed-in users only
        yield failed(
            f"{resolved.repo_url} is a private repository. This server launches public repositories only "
            "(anonymous mode); private ones need a server where users sign in (auth_mode = 'authenticated').",
            403,
        )
        return
    rule = None
    if user is not None:
        try:
            decision = check_launch(settings, user, f"{provider}/{spec}", resolved.repo_url)
        except BinderliteError as exc:
            yield failed(exc.message, exc.status)
            return
        if not decision.allowed:
            yield failed(decision.message, 403)
            return
        rule = decision.rule
    image = None
    stream = pipeline.build_events(settings, resolved)
    try:
        for ev in stream:
            if stop.is_set():
                return
            if ev is None:
                continue
            if ev.phase is Phase.BUILT:
                image = ev.get("imageName")
                if build_only:
                    ev = Event.built(image, ev.message.replace(", launching...", "."))
            yield ev
            if ev.ends_build:
                break
    finally:
        stream.close()  # stops following the log only; the build worker is detached
    if image is None or stop.is_set():
        return
    if build_only:
        yield Event.ready("Done! Image built", imageName=image)
        return
    signed_in = {"user": user, "rule": rule} if user is not None else {}
    launch = launcher.launch(settings, resolved, image, **signed_in)
    try:
        for ev in launch:
            yield ev
            if stop.is_set() or ev.ends_stream:
                return
    finally:
        launch.close()


def produce(
    settings: Settings,
    provider: str,
    spec: str,
    build_only: bool,
    out: queue.Queue,
    stop: threading.Event,
    client: str = "",
    user: SignedInUser | None = None,
    origin: str = "",
    request_origin: str = "",
):
    """Thread body: put every event on ``out``, then ``_DONE``; an exception becomes ``failed``.

    ``out`` is bounded: a client that reads slowly slows the producer down (it
    only follows a log on disk), and one that is gone (``stop``) ends it.
    A launch (not ``build_only``) that ends in ``ready`` or ``failed`` is
    logged with ``origin`` (the host asked) and ``request_origin``.
    """
    watch = LaunchWatch(settings, provider, build_only)  # the launch metrics: outcome, time, retries
    outcome = Outcome()  # the launch event log: the resolved link, the event that ended the stream

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=1.0)
                return True
            except queue.Full:
                continue
        return False

    def resolved(link: ResolvedRepo) -> None:
        outcome.resolved = link
        watch.resolved(link.repo_url, link.private)

    def send(ev: Event) -> bool:
        watch.see(ev)
        if ev.ends_stream:
            outcome.last = ev
        return put(ev)

    try:
        for ev in events_for(settings, provider, spec, build_only, stop, client, user, resolved):
            if not send(ev) or ev.ends_stream:
                break
        else:
            if not stop.is_set():
                send(failed("The build ended without a result; see the server log."))
    except Exception as exc:  # the stream must end in an event, whatever happened
        log.exception("Build stream for %s/%s failed", provider, spec)
        send(failed(f"Unexpected error ({exc.__class__.__name__}); see the server log."))
    finally:
        watch.close()
        if outcome.last is not None and not build_only:
            eventlog.record_launch(
                settings,
                provider=provider,
                spec=spec,
                ref=outcome.resolved.resolved_ref if outcome.resolved else "",
                status=outcome.status,
                origin=origin,
                request_origin=request_origin,
                reason=outcome.last.message if outcome.status == "failure" else "",
                private=bool(outcome.resolved and outcome.resolved.private),
            )
        put(_DONE)


def stream(events: queue.Queue, stop: threading.Event, keepalive: float, linger: float) -> Iterator[str]:
    """SSE text: events as they come, keepalives when idle, then the delayed close."""
    try:
        while True:
            try:
                item = events.get(timeout=keepalive)
            except queue.Empty:
                yield ":keepalive\n\n"
                continue
            if item is _DONE:
                break
            yield sse(item)
        # Keep the stream open a while so that browsers do not reconnect (a second launch).
        end = time.monotonic() + linger
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(keepalive, left))
            if end - time.monotonic() > 0:
                yield ":keepalive\n\n"
    finally:
        stop.set()


def origin_of(req) -> str:  # noqa: ANN001 - a Flask request
    """BinderHub's ``request_origin``: the Origin header, else Sec-Fetch-Site (browser or script?), else ""."""
    origin = req.headers.get("Origin")
    return origin if origin is not None else req.headers.get("Sec-Fetch-Site", "")


@bp.get("/build/<provider>/<path:_spec>")
def build(provider: str, _spec: str):
    if request.method == "HEAD":  # Flask answers HEAD with this view: it must not start a build nobody reads
        return jsonify(message="The build stream is opened with GET."), 405, {"Allow": "GET"}
    if "text/event-stream" not in request.headers.get("Accept", ""):
        return jsonify(message="Requests to /build/ must accept text/event-stream (this is an event stream)."), 400
    provider, spec = raw_spec(request.environ, "build")
    build_only = request.args.get("build_only", "").lower() == "true"
    settings = get_settings()
    user = current_user() if settings.auth_mode == "authenticated" else None
    if user is not None:  # the rules first, before the link is even resolved (the forge's word comes after)
        decision = check_launch(settings, user, f"{provider}/{spec}", None)
        if not decision.allowed:
            return refused(decision)
    events: queue.Queue = queue.Queue(maxsize=STREAM_BUFFER)
    stop = threading.Event()
    client = request.remote_addr or "unknown"
    worker = threading.Thread(
        target=produce,
        args=(settings, provider, spec, build_only, events, stop, client, user, request.host, origin_of(request)),
        daemon=True,
        name="build-stream",
    )
    worker.start()
    body = stream(events, stop, current_app.config["STREAM_KEEPALIVE"], current_app.config["STREAM_LINGER"])
    return Response(
        body,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"},  # it carries the token
    )
