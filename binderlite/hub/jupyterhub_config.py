"""JupyterHub configuration for binderlite: reads binderlite's settings and applies them.

Run as ``jupyterhub -f <this file>``; the settings come from ``BINDERLITE_CONFIG``
and ``BINDERLITE_*`` like everywhere else. Anonymous Binder mode: nobody logs
in; binderlite creates a temporary user per launch through the REST API with
its service token, and the launch token opens only that user's server.
"""

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

# ---- anonymous Binder mode: users exist only through binderlite's API calls
c.JupyterHub.authenticator_class = "null"
c.Authenticator.allow_all = True
c.JupyterHub.allow_named_servers = True
# "start server" answers after 2 s (not 10): the launch page shows the spawn progress
# sooner, and a spawn refused at once (e.g. a foreign image) still answers with its reason
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 2}
# binderlite's token, and no other token of its service (a rotated one stops working now)
_service_token = hub_api_token(settings)
purge_stale_service_tokens(_db_path, _service_token)
c.JupyterHub.services = [{"name": SERVICE_NAME, "api_token": _service_token}]
# Only what the launcher and the scheduler call: create, list and delete users (admin:users);
# start and stop servers (servers); mint and delete tokens that open one server (tokens).
# Not access:servers: binderlite never needs to open a user's server with its own token.
c.JupyterHub.load_roles = [
    {
        "name": "binderlite",
        "description": "binderlite's launcher and scheduler: temporary users and their servers",
        "scopes": ["admin:users", "servers", "tokens"],
        "services": [SERVICE_NAME],
    }
]

# ---- spawner: the one place it is chosen (binderlite.hub.backends)
configure_spawner(c, settings, _hub_ip)

# ---- authenticated mode: users sign in; the web app is the hub's OAuth client (BinderHub's auth_enabled)
if settings.auth_mode == "authenticated":
    c.JupyterHub.services[0].update(
        oauth_client_id=oauth_client_id(),
        oauth_redirect_uri=oauth_redirect_uri(settings),
        oauth_no_confirm=True,
    )
    c.JupyterHub.redirect_to_server = False
    # The users' groups and servers (read:users), their forge tokens (admin:auth_state), hub groups for
    # deployments whose authenticator gives none, e.g. PAM (admin:groups); no temporary users to delete.
    c.JupyterHub.load_roles[0]["scopes"] += ["admin:auth_state", "admin:groups"]
    # A user reads themself, opens their own servers and signs in to the web app; only binderlite starts
    # servers (with user_options it chose: image, access rule, limits), so no servers scope here.
    c.JupyterHub.load_roles.append(
        {
            "name": "user",
            "scopes": [
                "read:users!user",
                "read:servers!user",
                "access:servers!user",
                "users:activity!user",  # what their servers' tokens report (a server's scopes are its owner's)
                f"access:services!service={SERVICE_NAME}",
            ],
        }
    )
    # >>> sign-in placeholder: local accounts through PAM, until hub/auth.py's configure_authenticator
    # (settings `authenticator`, `admin_users`, groups from the authenticator) replaces this block.
    c.JupyterHub.authenticator_class = "pam"
    c.Authenticator.allow_all = True
    # <<< sign-in placeholder
