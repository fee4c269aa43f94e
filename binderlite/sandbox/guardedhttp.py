"""HTTP for binderlite's own requests to hosts a link names: internal addresses refused as the connection is made.

DOI and dataset records are resolved in binderlite's process (a few small
JSON requests on the launch path, where a sandboxed process would cost a
second each). Their hosts are attacker-chosen, so the check cannot be a
string check before the request: a redirect, a second DNS answer or a
rebinding name would get around it. ``guarded_session`` checks instead where
the socket is opened: it resolves the host itself, refuses if any answer is
internal (the sandbox's list, ``netrules.is_blocked``), and connects to the
very address it checked. Through a configured HTTP(S) proxy the connection
goes to the proxy, which the administrator chose; the proxy reaches the host.
"""

from __future__ import annotations

import socket

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NameResolutionError, NewConnectionError
from urllib3.util import connection

from binderlite.sandbox.netrules import is_blocked


class _CheckedConnect:
    """Resolve, refuse internal answers, connect to an address that was checked (urllib3's one socket hook)."""

    blocked_extra = ""

    def _new_conn(self) -> socket.socket:
        try:
            infos = socket.getaddrinfo(self._dns_host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        internal = [a for a in addresses if is_blocked(a, self.blocked_extra)]
        if internal:
            raise NewConnectionError(self, f"{self.host} resolves to an internal address; refused")
        error: OSError | None = None
        for address in addresses:
            try:
                return connection.create_connection(
                    (address, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except OSError as exc:
                error = exc
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}")


class CheckedHTTPConnection(_CheckedConnect, HTTPConnection):
    pass


class CheckedHTTPSConnection(_CheckedConnect, HTTPSConnection):
    pass


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = CheckedHTTPConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = CheckedHTTPSConnection


class CheckedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _CheckedHTTPPool, "https": _CheckedHTTPSPool}


def guarded_session() -> requests.Session:
    """A requests session whose direct connections never reach an internal address."""
    session = requests.Session()
    adapter = CheckedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
