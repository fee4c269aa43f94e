"""JupyterHub configuration for binderlite: reads binderlite's settings and applies them.

Run as ``jupyterhub -f <this file>``; the settings come from ``BINDERLITE_CONFIG``
and ``BINDERLITE_*`` like everywhere else. Anonymous Binder mode: nobody logs
in; binderlite creates a temporary user per launch through the REST API with
its service token, and the launch token opens only that user's server.
Authenticated mode: users sign in (``binderlite.hub.auth``), and binderlite
still starts their servers.
"""

import sys

from binderlite.errors import BinderliteError
from binderlite.hub.addresses import (
    hub_api_token,
    hub_ip,
    hub_url,
    oauth_client_id,
    oauth_redirect_uri,
    proxy_api_url,
    proxy_auth_token,
)
from binderlite.hub.addresses import public_url as proxy_public_url
from binderlite.hub.auth import configure_authenticator
from binderlite.hub.backends import configure_spawner
from binderlite.hub.tokens import SERVICE_NAME, purge_stale_service_tokens
from binderlite.sandbox.dockernet import ensure_networks
from binderlite.settings import load_settings

c = get_config()  # type: ignore[name-defined]  # noqa: F821 (injected by JupyterHub)

settings = load_settings()
settings.hub_dir.mkdir(parents=True, exist_ok=True)
# The servers' network and the kernel's rules on it, before the hub listens on its gateway
# (however the hub was started: `binderlite up`, systemd, a test); a hub that cannot confine
# its servers does not start.
ensure_networks(settings, force=True)
_hub_ip = hub_ip(settings)

# ---- hub state, all under the state prefix
_db_path = settings.hub_dir / "jupyterhub.sqlite"
c.JupyterHub.db_url = f"sqlite:///{_db_path}"
c.JupyterHub.cookie_secret_file = str(settings.hub_dir / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(settings.hub_dir / "jupyterhub.pid")

# ---- network: the hub on the servers' network gateway (servers call it), never public
c.JupyterHub.hub_bind_url = hub_url(settings, _hub_ip)
c.JupyterHub.hub_connect_url = hub_url(settings, _hub_ip)
c.JupyterHub.bind_url = proxy_public_url(settings)

# ---- the proxy is its own process, so a hub restart keeps users connected
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = proxy_api_url(settings)
c.ConfigurableHTTPProxy.auth_token = proxy_auth_token(settings)
c.JupyterHub.cleanup_servers = False
# The hub puts missing routes back when it starts and at each activity update: every 30 s (not 300), so a
# proxy that died and was restarted alone (systemd restarts units one by one) routes users again within 30 s.
c.JupyterHub.last_activity_interval = 30

c.JupyterHub.allow_named_servers = True
# "start server" answers after 2 s (not 10): the launch page shows the spawn progress
# sooner, and a spawn refused at once (e.g. a foreign image) still answers with its reason
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 2}
# binderlite's token, and no other token of its service (a rotated one stops working now)
_service_token = hub_api_token(settings)
purge_stale_service_tokens(_db_path, _service_token)
c.JupyterHub.services = [{"name": SERVICE_NAME, "api_token": _service_token}]

# ---- who signs in (nobody in anonymous mode) and the roles: binderlite's service creates users and
# starts and stops servers; a signed-in user only opens their own (binderlite.hub.auth). A setting,
# secret or directory that is wrong stops the hub here with one message, before it listens.
try:
    configure_authenticator(c, settings)
except BinderliteError as _exc:
    print(f"Error: {_exc.message}", file=sys.stderr)
    sys.exit(_exc.exit_code)

# ---- spawner: the one place it is chosen (binderlite.hub.backends)
try:
    configure_spawner(c, settings, _hub_ip)
except BinderliteError as _exc:
    print(f"Error: {_exc.message}", file=sys.stderr)
    sys.exit(_exc.exit_code)

# ---- authenticated mode: users sign in; the web app is the hub's OAuth client (BinderHub's auth_enabled)
if settings.auth_mode == "authenticated":
    c.JupyterHub.services[0].update(
        oauth_client_id=oauth_client_id(),
        oauth_redirect_uri=oauth_redirect_uri(settings),
        oauth_no_confirm=True,
    )
    # The users' groups and servers, and their forge tokens (admin:users includes admin:auth_state) come
    # from binderlite's role and the narrowed user role of binderlite.hub.auth.
