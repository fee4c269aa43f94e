"""gunicorn settings for binderlite's web app, read from binderlite's own settings.

Build streams stay open for minutes, so workers are gevent workers: each one
holds hundreds of streams, one greenlet per request. ``timeout`` is only the
worker heartbeat under gevent (a stream may run far longer); ``graceful_timeout``
lets open streams end on SIGTERM before the worker is stopped — the builds
themselves run in detached processes and are not affected. Each worker
counts into the shared metrics folder; ``child_exit`` removes a finished
worker's in-progress gauges.
"""

from binderlite.observe.multiproc import process_exited
from binderlite.settings import load_settings

_settings = load_settings()

bind = f"{_settings.web_host}:{_settings.web_port}"
workers = _settings.web_workers
worker_class = "gevent"
worker_connections = 1000  # open streams per worker
timeout = 120  # heartbeat: a worker silent this long is restarted
graceful_timeout = 30  # seconds open streams get to finish on SIGTERM/reload
keepalive = 5
accesslog = "-"
logger_class = "binderlite.web.accesslog.RedactingLogger"  # no credential pasted into a link
errorlog = "-"
loglevel = "info"
control_socket_disable = True  # no control socket: unused, and two instances would share one path
forwarded_allow_ips = "127.0.0.1"  # trust X-Forwarded-* only from a local reverse proxy


def child_exit(server, worker) -> None:
    """A worker ended: its in-progress gauges go with it (prometheus-client's multiprocess mode)."""
    process_exited(worker.pid)
