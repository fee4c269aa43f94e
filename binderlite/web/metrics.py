"""``GET /metrics``: every binderlite process's counts in Prometheus's text format.

Who may read it: a request made directly from 127.0.0.1 (the machine
itself), or anyone sending ``Authorization: Bearer <metrics_token>``. A
request that came through a reverse proxy (it carries ``X-Forwarded-For``,
``Forwarded`` or ``X-Real-IP``, as Caddy's does) is not "from the machine"
even though its peer is 127.0.0.1: behind the lab server's Caddy it needs the
token, so /metrics never becomes public by being proxied. Everyone else gets
a one-line 403. The token is compared in constant time and never logged.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from binderlite.observe import metrics as _metrics  # noqa: F401 (defines every metric, so each is shown)
from binderlite.observe import multiproc
from binderlite.settings import Settings
from binderlite.web.helpers import from_this_machine, get_settings

bp = Blueprint("metrics", __name__)
REFUSED = (
    "/metrics is readable from 127.0.0.1 directly, or with 'Authorization: Bearer <metrics_token>' "
    "(setting metrics_token).\n"
)


def may_read(settings: Settings, peer: str | None, headers) -> bool:
    """The access rule of /metrics (see the module's docstring)."""
    if settings.metrics_token:
        expected = f"Bearer {settings.metrics_token}".encode()
        if hmac.compare_digest(headers.get("Authorization", "").encode(), expected):
            return True
    return from_this_machine(peer, headers)


@bp.get("/metrics")
def metrics():
    if not may_read(get_settings(), request.remote_addr, request.headers):
        return Response(REFUSED, status=403, mimetype="text/plain")
    return Response(generate_latest(multiproc.registry()), mimetype=CONTENT_TYPE_LATEST)
