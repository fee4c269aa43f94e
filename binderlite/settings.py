"""The one settings object: defaults ← config file ← ``BINDERLITE_*`` environment.

Every setting is a typed field with help text. The config file is TOML
(``/etc/binderlite/binderlite.toml``, or the path in ``BINDERLITE_CONFIG``);
each key may also be given as the environment variable ``BINDERLITE_<KEY>``.
Every path derives from ``state_dir`` so tests relocate the whole tree.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import json
import os
import re
import tomllib
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from binderlite.errors import ConfigError

DEFAULT_CONFIG_FILE = "/etc/binderlite/binderlite.toml"


Check = Callable[[Any], "str | None"]  # a problem with a value, said as the end of a sentence, or None


def _setting(default: Any, help: str, check: Check | None = None) -> Any:
    return field(default=default, metadata={"help": help, "check": check})


def at_least(low: float) -> Check:
    return lambda value: None if value >= low else f"must be at least {low}"


def between(low: float, high: float) -> Check:
    return lambda value: None if low <= value <= high else f"must be between {low} and {high}"


def one_of(*choices: str) -> Check:
    return lambda value: None if value in choices else "must be one of " + ", ".join(repr(c) for c in choices)


def a_size(value: str) -> str | None:
    try:
        parse_size(value, "")
    except ConfigError:
        return "must be a size such as 512M or 2G"
    return None


def an_http_url(value: str) -> str | None:
    parts = urllib.parse.urlsplit(value)
    if value and (parts.scheme not in ("http", "https") or not parts.hostname):
        return "must be an http(s) URL with a host, or empty"
    return None


def an_index_url(value: str) -> str | None:
    if urllib.parse.urlsplit(value).username:
        return (
            "must not carry credentials: build steps would record them in the image's history (Docker keeps "
            "only the proxy settings out of it); use an index that needs none from the build network, or a proxy"
        )
    return an_http_url(value)


def a_cran_mirror_url(value: str) -> str | None:
    if re.search(r"[\s\"'\\`$]", value):
        return "must be a URL without spaces, quotes, backslashes or $ (it is written into R's and the shell's code)"
    return an_index_url(value)


def networks(value: str) -> str | None:
    for text in filter(None, (part.strip() for part in value.split(","))):
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            return f"must be comma-separated networks such as 192.0.2.0/24 ({text!r} is not one)"
    return None


def image_names(value: str) -> str | None:
    for name in filter(None, (part.strip() for part in value.split(","))):
        if not re.fullmatch(r"[a-z0-9][a-z0-9._/:-]*(@sha256:[0-9a-f]{64})?", name):
            return f"must be comma-separated image names such as binderlite/base:trixie ({name!r} is not one)"
    return None


def debian_packages(value: str) -> str | None:
    for name in value.split():
        if not re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", name):
            return f"must be Debian package names separated by spaces ({name!r} is not one)"
    return None


def requirement_specs(value: str) -> str | None:
    for text in value.split():
        try:
            Requirement(text)
        except InvalidRequirement:
            return f"must be requirements separated by spaces, such as notebook>=7,<8 ({text!r} is not one)"
    return None


def an_ldap_url(value: str) -> str | None:
    parts = urllib.parse.urlsplit(value)
    try:
        parts.port  # noqa: B018 (a port that is not a number raises)
    except ValueError:
        return "must be ldap://host[:port] or ldaps://host[:port] with a numeric port"
    if value and (parts.scheme not in ("ldap", "ldaps") or not parts.hostname or parts.path.strip("/")):
        return "must be ldap://host[:port] or ldaps://host[:port], or empty"
    return None


def an_absolute_path(value: str) -> str | None:
    return None if os.path.isabs(value) else "must be an absolute path"


def a_folder_in_home(value: str) -> str | None:
    parts = value.split("/")
    if not value or value.startswith("/") or any(part in ("", ".", "..") for part in parts):
        return "must be a relative path inside the home such as 'persistent' (no '..', no leading '/')"
    if not re.fullmatch(r"[A-Za-z0-9._/-]+", value):
        return "must use only letters, digits, '.', '_', '-' and '/'"
    return None


def a_volume_prefix(value: str) -> str | None:
    return None if re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", value) else "must be a Docker volume name prefix"


def an_absolute_path_or_empty(value: str) -> str | None:
    return an_absolute_path(value) if value else None


def a_dns_label(value: str) -> str | None:
    if re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", value):
        return None
    return "must be a Kubernetes namespace name: lower-case letters, digits and '-', at most 63"


def a_registry_name(value: str) -> str | None:
    if not value or re.fullmatch(r"[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?(:[0-9]{1,5})?", value):
        return None
    return "must be a registry name such as registry.lab.internal:5000 (host[:port], no scheme, no path), or empty"


def host_and_port(value: str) -> str | None:
    host, sep, port = value.rpartition(":")
    if value and not (sep and host and port.isdigit() and 0 < int(port) < 65536):
        return "must be host:port (e.g. 127.0.0.1:5000), or empty"
    return None


@dataclass(frozen=True)
class Settings:
    """All of binderlite's settings; see README for the generated table."""

    state_dir: str = _setting(
        "/var/lib/binderlite",
        "Directory holding all state (database, build logs, registry data, hub state).",
        check=an_absolute_path,
    )
    image_prefix: str = _setting(
        "binderlite/",
        "Prefix of built image names, as BinderHub's image_prefix (e.g. 'r2d-').",
    )
    base_image: str = _setting(
        "binderlite/base:bookworm",
        "Image every build starts from. Made locally by `binderlite base-image` when it cannot be pulled.",
    )
    base_image_tarball: str = _setting("", "A `docker save` tarball to load as the base image (offline installs).")
    build_packs: str = _setting(
        "binderlite",
        "'binderlite' (offline-capable, package index only) or 'repo2docker' (stock build packs, need conda-forge).",
        check=one_of("binderlite", "repo2docker"),
    )
    allow_local_repos: bool = _setting(
        False,
        "Allow file://, local paths and git URLs on loopback/private/link-local addresses. "
        "Off by default: such URLs reach internal services.",
    )
    service_user: str = _setting(
        "binderlite",
        "System user the proxy and the registry run as (created if missing): neither needs root or the Docker "
        "socket. The hub, the web app, the scheduler and builds run as root: each needs the Docker socket "
        "(root-equivalent), and the web app and builds start sandboxed fetches as another user.",
    )
    sandbox_user: str = _setting(
        "binderlite-sandbox",
        "System user that fetches repositories and records (created if missing; `<name>-local` is the one "
        "allowed to reach local addresses when allow_local_repos is on). Its connections to internal "
        "addresses are refused by the kernel.",
    )
    blocked_networks: str = _setting(
        "",
        "More networks (comma-separated CIDRs) that fetches, builds and servers may not reach, beside the "
        "built-in loopback, link-local, private and reserved ranges: e.g. a LAN on public addresses.",
        check=networks,
    )
    max_repo_size: str = _setting(
        "2G",
        "Largest repository or record a build fetches (e.g. 500M, 2G); a fetch that grows past it is stopped.",
        check=a_size,
    )
    max_file_size: str = _setting(
        "1G",
        "Largest single file a fetch may write (the kernel stops it: RLIMIT_FSIZE).",
        check=a_size,
    )
    # ---- R builds ----------------------------------------------------------
    cran_mirror_url: str = _setting(
        "https://cloud.r-project.org",
        "CRAN mirror for the R packages Debian does not package (install.R's install.packages(), DESCRIPTION's "
        "dependencies) and for install.packages() in R servers; `{date}` in it is replaced by runtime.txt's "
        "snapshot date, or `latest` (as in https://packagemanager.posit.co/cran/{date}). Default: CRAN's own "
        "address, for machines that reach it; empty means Debian's r-cran-* packages only.",
        check=a_cran_mirror_url,
    )
    # ---- Python versions and compilers --------------------------------------
    python_base_images: str = _setting(
        "binderlite/base:bullseye,binderlite/base:trixie",
        "More base images (comma-separated), each a Debian release with its own Python, for repositories that "
        "ask for another Python (runtime.txt, environment.yml, Pipfile, .python-version): bullseye has 3.9 and "
        "2.7 (a Python 2 kernel beside JupyterLab), trixie 3.13, forky 3.14; base_image (bookworm) has 3.11. "
        "`binderlite base-image` makes each with debootstrap (the tag names the release) or loads it from "
        "base_image_tarball. Empty means base_image's Python only.",
        check=image_names,
    )
    toolchain_packages: str = _setting(
        "build-essential gfortran pkg-config git libffi-dev libssl-dev zlib1g-dev libjpeg-dev libpng-dev "
        "libxml2-dev libxslt1-dev libhdf5-dev libopenblas-dev",
        "Debian packages of the build stage that installs a repository's packages, beside each Python's "
        "headers: compilers (C, C++, Fortran) and the libraries sdists most often build against. They never "
        "reach the image; the shared libraries a built extension links are copied in. `binderlite base-image` "
        "makes binderlite/toolchain:<base image id> from each base image with apt while online. Empty means "
        "no compilers: an sdist that needs one fails the build.",
        check=debian_packages,
    )
    build_concurrency: int = _setting(
        2,
        "Builds that run at once; further builds wait in a queue.",
        check=at_least(1),
    )
    build_timeout: int = _setting(
        3600,
        "Seconds a build may run before it is stopped and marked failed.",
        check=at_least(1),
    )
    build_log_tail: int = _setting(
        20,
        "Log lines repeated in the failure message of a failed build.",
        check=at_least(0),
    )
    package_index_url: str = _setting(
        "",
        "Python package index used by builds (pip/uv); empty means PyPI.",
        check=an_index_url,
    )
    extra_index_url: str = _setting(
        "",
        "An extra package index for builds.",
        check=an_index_url,
    )
    trusted_host: str = _setting("", "Host whose TLS certificate builds do not verify (a plain-HTTP mirror).")
    ca_bundle: str = _setting(
        "/etc/ssl/certs/ca-certificates.crt",
        "CA bundle given to every build step and image, so TLS works behind an inspecting proxy.",
    )
    http_proxy: str = _setting(
        "",
        "HTTP proxy for builds and running servers (defaults to the HTTP_PROXY environment variable).",
        check=an_http_url,
    )
    https_proxy: str = _setting(
        "",
        "HTTPS proxy for builds and running servers (defaults to the HTTPS_PROXY environment variable).",
        check=an_http_url,
    )
    no_proxy: str = _setting("", "Hosts that bypass the proxy (defaults to the NO_PROXY environment variable).")
    jupyterlab_spec: str = _setting("jupyterlab>=4,<5", "Requirement installed into every image for JupyterLab.")
    default_environment: str = _setting(
        "notebook>=7,<8 ipywidgets>=8,<9 jupyter-resource-usage>=1,<2 jupyter-offlinenotebook>=0.3,<0.4 "
        "setuptools<81 wheel",
        "Requirements (separated by spaces) every image gets beside JupyterLab and jupyterhub: repo2docker's "
        "default environment (Notebook 7, ipywidgets, jupyter-resource-usage, jupyter-offlinenotebook, and "
        "setuptools with pkg_resources and wheel, which its conda environments always have), so "
        "postBuild and start scripts written for mybinder.org find what they expect. Empty means none.",
        check=requirement_specs,
    )
    jupyterhub_spec: str = _setting(
        "",
        "Requirement for jupyterhub in images; empty means the hub's own version "
        "(jupyterhub-singleuser must match the hub).",
    )
    registry: str = _setting(
        "127.0.0.1:5000",
        "Registry that built images are pushed to (binderlite runs one on this address); empty disables pushing.",
        check=host_and_port,
    )
    github_host: str = _setting("https://github.com", "GitHub web host for gh links.", check=an_http_url)
    gitlab_host: str = _setting(
        "https://gitlab.com",
        "GitLab host for gl links.",
        check=an_http_url,
    )
    banned_specs: str = _setting("", "Comma-separated regular expressions; matching specs may not launch.")
    docker_host: str = _setting("", "Docker daemon URL; empty means DOCKER_HOST or the local socket.")

    # ---- launch settings (JupyterHub, DockerSpawner, proxy) -------------
    hub_ip: str = _setting(
        "",
        "Address JupyterHub listens on. Empty (default) means the gateway of server_network: "
        "servers must reach the hub, and that address is on no public network.",
    )
    hub_port: int = _setting(
        8081,
        "Port of JupyterHub's own server (default 8081, JupyterHub's usual hub port).",
        check=between(1, 65535),
    )
    proxy_ip: str = _setting(
        "127.0.0.1",
        "Address configurable-http-proxy serves users on. Default 127.0.0.1: put a TLS "
        "reverse proxy in front to expose it.",
    )
    proxy_port: int = _setting(
        8000,
        "Port users' servers are reached on through the proxy (default 8000, as JupyterHub).",
        check=between(1, 65535),
    )
    proxy_api_port: int = _setting(
        8001,
        "Port of the proxy's REST API, always bound to 127.0.0.1 (default 8001, as JupyterHub).",
        check=between(1, 65535),
    )
    public_url: str = _setting(
        "",
        "Public base URL of the proxy that launch URLs start with. Empty (default) means "
        "http://<proxy_ip>:<proxy_port>/; set it when a reverse proxy serves binderlite.",
        check=an_http_url,
    )
    binder_launch_host: str = _setting(
        "http://127.0.0.1:8585/",
        "Public URL of binderlite's web app, given to servers as BINDER_LAUNCH_HOST "
        "(default: the web app's default address).",
        check=an_http_url,
    )
    hub_api_token: str = _setting(
        "",
        "Token binderlite uses for the JupyterHub API. Empty (default) means one is "
        "generated once and kept in <state_dir>/hub/api_token, so hub and app agree.",
    )
    proxy_auth_token: str = _setting(
        "",
        "Token shared by JupyterHub and configurable-http-proxy. Empty (default) means "
        "one is generated once and kept in <state_dir>/hub/proxy_token.",
    )
    spawner_backend: str = _setting(
        "docker",
        "What starts users' servers: 'docker' (this machine's Docker daemon, through DockerSpawner) or "
        "'kubernetes' (pods on a k3s or other Kubernetes cluster, through KubeSpawner: docs/k3s.md; needs "
        "binderlite[kubernetes]). Builds stay on this machine either way.",
        check=one_of("docker", "kubernetes"),
    )
    kube_namespace: str = _setting(
        "binderlite",
        "Kubernetes namespace users' pods run in (kubernetes backend).",
        check=a_dns_label,
    )
    kube_config: str = _setting(
        "",
        "kubeconfig file the hub and the scheduler use to reach the cluster (kubernetes backend); empty (default) "
        "means the in-cluster service account. The Ansible role writes /etc/binderlite/kubeconfig.",
        check=an_absolute_path_or_empty,
    )
    kube_image_registry: str = _setting(
        "",
        "The registry as the cluster's nodes name it (host:port, e.g. binderlite.lab.internal:5000; kubernetes "
        "backend): image names are handed to pods with `registry` replaced by it. Empty (default) means `registry`.",
        check=a_registry_name,
    )
    kube_hub_url: str = _setting(
        "",
        "URL pods reach the hub's API at (e.g. http://10.0.0.5:8081; kubernetes backend), when it is not where the "
        "hub listens. Empty (default) means http://<hub_ip>:<hub_port>; with this backend hub_ip must be this "
        "machine's address on the cluster's network.",
        check=an_http_url,
    )
    kube_ingress_networks: str = _setting(
        "",
        "Networks (comma-separated CIDRs) users' pods accept connections from, on their server port only: where "
        "this machine's proxy and hub reach them from, as the pods see it (kubernetes backend). Empty (default) "
        "means the hub's address alone; on a flannel cluster add this node's pod-network addresses (docs/k3s.md).",
        check=networks,
    )
    kube_memory_guarantee: str = _setting(
        "512M",
        "Memory the cluster reserves for each server when it places it on a node (the pod's request; kubernetes "
        "backend). memory_limit stays the most it may use (default 512M, as mybinder.org's 450M: most servers are "
        "idle).",
        check=a_size,
    )
    kube_cpu_guarantee: float = _setting(
        0.1,
        "CPUs the cluster reserves for each server when it places it (the pod's request; kubernetes backend). "
        "cpu_limit stays the most it may use (default 0.1).",
        check=between(0, 1024),
    )
    memory_limit: str = _setting(
        "2G",
        "Memory limit per server, no swap (default 2G: enough for typical notebooks, "
        "and a few dozen servers fit a 24 GiB machine).",
        check=a_size,
    )
    cpu_limit: float = _setting(
        1.0,
        "CPUs per server, a decimal number (default 1.0: one busy server cannot starve the others).",
        check=between(0.01, 1024),
    )
    pids_limit: int = _setting(
        1024,
        "Processes per server (default 1024: far more than JupyterLab needs, stops a fork bomb).",
        check=at_least(64),
    )
    total_quota: int = _setting(
        64,
        "Servers running at once on this machine; 0 means no limit (default 64: what one "
        "server with 24 GiB holds when most servers are idle).",
        check=at_least(0),
    )
    per_repo_quota: int = _setting(
        0,
        "Servers running at once from one repository; 0 (default) means no limit, since "
        "a workshop launches one repository for everyone.",
        check=at_least(0),
    )
    launch_rate_limit: int = _setting(
        30,
        "Launches one client address may start per launch_rate_period; 0 means no limit (default 30: "
        "generous for a person, stops a script; a classroom behind one NAT address may need more).",
        check=at_least(0),
    )
    launch_rate_period: int = _setting(60, "Seconds of the launch rate limit's window (default 60).", check=at_least(1))
    build_queue_limit: int = _setting(
        32,
        "Builds that may wait in the queue; one more is refused at once (default 32); 0 means no limit.",
        check=at_least(0),
    )
    launch_timeout: int = _setting(
        600,
        "Seconds a launch may take before it fails (default 600, as BinderHub).",
        check=at_least(1),
    )
    launch_retries: int = _setting(
        4,
        "Attempts to start a server when the hub errors, with backoff from 4 s doubling (default 4, as BinderHub).",
        check=at_least(1),
    )
    spawner_docker_threads: int = _setting(
        8,
        "Threads DockerSpawner makes Docker API calls on (default 8; DockerSpawner's own "
        "default of 1 makes one slow Docker call stall every launch).",
        check=at_least(1),
    )
    web_host: str = _setting(
        "127.0.0.1",
        "Address the web app (links, build API, pages) listens on (default 127.0.0.1: put a "
        "TLS reverse proxy in front to expose it).",
    )
    web_port: int = _setting(
        8585,
        "Port of the web app (default 8585).",
        check=between(1, 65535),
    )
    web_workers: int = _setting(
        2,
        "gunicorn worker processes of the web app (default 2, one per core here; each gevent "
        "worker holds hundreds of open event streams).",
        check=at_least(1),
    )
    stream_keepalive: int = _setting(
        20,
        "Seconds of silence after which a build stream sends a `:keepalive` comment "
        "(default 20: under BinderHub's 25 s, so proxies never cut an idle stream).",
        check=between(1, 25),
    )
    stream_linger: int = _setting(
        60,
        "Seconds a build stream stays open after `ready`/`failed` (default 60, as BinderHub: "
        "browsers would otherwise reconnect and start a second launch).",
        check=at_least(0),
    )

    auth_mode: str = _setting(
        "anonymous",
        "'anonymous': a temporary hub user per launch, deleted when its server is culled (Binder mode). "
        "'authenticated': users sign in through the hub (see `authenticator`), launch what the access rules "
        "allow them, one named server per repository, and keep their work (a department).",
        check=one_of("anonymous", "authenticated"),
    )
    credentials_file: str = _setting(
        "",
        "The secrets file (git credentials per host, the authenticator's secrets), mode 0600; empty: "
        "`credentials.toml` beside the config file. Never put a secret in this table.",
    )
    admin_token: str = _setting(
        "",
        "Anonymous mode: the token that opens /admin from another machine, typed once into its form (kept in a "
        "signed cookie, never in a URL). Empty (default): /admin answers 127.0.0.1 only. In authenticated mode "
        "the hub's admins (admin_users) see it instead. Give it as BINDERLITE_ADMIN_TOKEN, as hub_api_token.",
    )
    # ---- authenticated mode: servers per user and access rules (see README "For a department") ----
    servers_per_user: int = _setting(
        5,
        "Servers (one per repository) a signed-in user may run at once; 0 means no limit (default 5, as "
        "BinderHub's example named_server_limit_per_user). Launching a repository the user runs reopens it.",
        check=at_least(0),
    )
    access_default: str = _setting(
        "allow",
        "What signed-in users may launch when no access rule matches the link: 'allow' (default: a rule "
        "restricts only what it names) or 'deny' (only what a rule allows).",
        check=one_of("allow", "deny"),
    )
    access_rules: str = _setting(
        "[]",
        "Access rules, in the config file a TOML array of tables `[[access_rules]]` with `name`, `pattern` (a "
        "regular expression over `<provider>/<spec>`, as banned_specs), `groups` (hub groups that may launch "
        "it; empty: every signed-in user), `max_servers` (0: no limit), `memory_limit`, `cpu_limit` and "
        "`contact`; the first rule whose pattern matches decides. As an environment variable: the same as JSON.",
        check=lambda value: _access_rules_problem(value),
    )

    # ---- persistent homes (authenticated mode) ---------------------------
    persistent_homes: bool = _setting(
        True,
        "In authenticated mode, keep each user's work per repository in a Docker volume mounted at "
        "persistent_folder inside the home, while the repository's files come fresh from the image at every "
        "launch; the volume survives culling and restarts (`binderlite homes list`/`remove`). Anonymous "
        "launches never get one.",
    )
    persistent_folder: str = _setting(
        "persistent",
        "Folder inside the home (a relative path, e.g. 'persistent' for ~/persistent) where a signed-in user's "
        "volume is mounted.",
        check=a_folder_in_home,
    )
    home_quota: str = _setting(
        "10G",
        "Size limit of each persistent folder. Enforced by Docker's local volume driver where it supports "
        "quotas (/var/lib/docker on XFS with project quotas); elsewhere (e.g. overlay2 on ext4) measured at "
        "each launch: the launch page warns a user over it, `binderlite homes list` marks it. Empty means none.",
        check=lambda value: a_size(value) if value else None,
    )
    home_volume_prefix: str = _setting(
        "binderlite-home-",
        "Name prefix of the persistent folders' Docker volumes (<prefix><user>-<server>-<hash>).",
        check=a_volume_prefix,
    )

    # ---- sign-in (authenticated mode): binderlite.hub.auth ------------------
    authenticator: str = _setting(
        "pam",
        "How users sign in when auth_mode is 'authenticated': 'pam' (this machine's local accounts), 'ldap' (a "
        "directory: ldap_*), 'oidc' (an OpenID Connect provider), 'gitlab' or 'github' (the forge's OAuth: "
        "oauth_*; binderlite then checks the user's own access to a repository with the user's token).",
        check=one_of("pam", "ldap", "oidc", "gitlab", "github"),
    )
    admin_users: str = _setting("", "Comma-separated user names that are the hub's admins (they see every server).")
    pam_allowed_groups: str = _setting(
        "", "Comma-separated local groups whose members may sign in (pam); empty means every local account."
    )
    ldap_url: str = _setting(
        "",
        "The directory, as ldap://host[:port] (StartTLS before the password is sent, unless ldap_starttls is off) "
        "or ldaps://host[:port]. Checked at start: an unreachable directory stops the hub from starting.",
        check=an_ldap_url,
    )
    ldap_starttls: bool = _setting(
        True,
        "Upgrade ldap:// connections with StartTLS before binding (default on: passwords never cross the "
        "network in clear); off only for a directory on this machine.",
    )
    ldap_ca_file: str = _setting("", "CA bundle that signs the directory's certificate; empty means the system's.")
    ldap_bind_dn_template: str = _setting(
        "",
        "A user's DN, `{username}` standing for the name typed in, e.g. uid={username},ou=people,dc=dept,dc=example. "
        "Empty: look the DN up under ldap_user_search_base (binding as ldap_search_user_dn).",
    )
    ldap_user_search_base: str = _setting("", "Where users are looked up when ldap_bind_dn_template is empty.")
    ldap_user_attribute: str = _setting("uid", "The attribute holding the name users sign in with (default uid).")
    ldap_search_user_dn: str = _setting(
        "",
        "DN that looks users up (ldap_bind_dn_template empty) and the access rules' groups at start (else an "
        "anonymous bind); its password is `ldap_bind_password` in the secrets file's [auth] table.",
    )
    ldap_group_search_base: str = _setting(
        "",
        "Where the directory's groups are (e.g. ou=groups,dc=dept,dc=example): a user's groups (member, "
        "uniqueMember or memberUid) become hub groups named by their cn. Empty: no groups.",
    )
    ldap_allowed_groups: str = _setting(
        "", "Comma-separated group names (cn) whose members may sign in; empty means every user of the directory."
    )
    oauth_url: str = _setting(
        "",
        "The identity provider: the OpenID Connect issuer (oidc; its /.well-known/openid-configuration is read "
        "at start), or the GitLab/GitHub base URL (empty: https://gitlab.com, https://github.com).",
        check=an_http_url,
    )
    oauth_client_id: str = _setting(
        "",
        "The OAuth client (application) id registered with the provider; its secret is `oauth_client_secret` in "
        "the secrets file's [auth] table. The redirect URL to register is <public_url>hub/oauth_callback.",
    )
    oauth_scopes: str = _setting(
        "",
        "Scopes asked of the provider, separated by spaces; empty: 'openid profile email' plus the groups "
        "claim (oidc), 'openid read_user read_api' (gitlab: groups and the user's projects), 'read:user "
        "read:org repo' (github: teams and the user's private repositories).",
    )
    oauth_username_claim: str = _setting(
        "preferred_username", "The claim of the provider's user info that is the hub user name (oidc)."
    )
    oauth_groups_claim: str = _setting(
        "groups",
        "The claim listing the user's groups (oidc), which become hub groups. GitLab's groups (full paths) and "
        "GitHub's teams (org/team) become hub groups without it.",
    )
    oauth_allowed_groups: str = _setting(
        "", "Comma-separated hub groups (from the provider) whose members may sign in; empty means any user."
    )

    # ---- isolation and limits of builds and servers ----------------------
    server_network: str = _setting(
        "binderlite-servers",
        "Docker network users' servers run on (created by binderlite): no traffic between containers, "
        "none to this host but the hub, none to internal addresses.",
    )
    build_network: str = _setting(
        "binderlite-builds",
        "Docker network build steps run on (created by binderlite): the internet, the configured package "
        "index and proxies, and DNS; nothing else on this host or its network.",
    )
    build_memory_limit: str = _setting(
        "4G",
        "Memory (and swap) of each build step; a step past it is killed and the build fails (default 4G).",
        check=a_size,
    )
    build_cpu_limit: float = _setting(
        1.0,
        "CPUs each build step may use, a decimal number (default 1.0).",
        check=between(0.01, 1024),
    )
    build_pids_limit: int = _setting(
        2048,
        "Processes of the repository's user in each build step (default 2048: stops a fork bomb).",
        check=at_least(64),
    )
    build_disk_limit: str = _setting(
        "10G",
        "Disk a single build step may write (its layer); a step past it is stopped (default 10G).",
        check=a_size,
    )
    build_cache: bool = _setting(
        True,
        "Reuse the layers of earlier builds (Docker's layer cache). Off builds every step anew: for "
        "benchmarks, or to rebuild after a package index changed a release in place.",
    )
    max_image_size: str = _setting(
        "20G",
        "Largest image a build may produce; a larger one is removed and the build fails (default 20G).",
        check=a_size,
    )

    # ---- workshop settings (offline, classroom, warm pool) ---------------
    offline: str = _setting(
        "auto",
        "Whether binderlite runs without the internet: 'auto' (default: offline when a workshop is "
        "prepared or imported and the package index's host does not resolve), 'yes' or 'no'. Offline, "
        "links resolve through the workshop's manifest and builds use its package mirror.",
        check=one_of("auto", "yes", "no"),
    )
    workshop_index: str = _setting(
        "offline",
        "When builds install Python packages from the workshop's local package index: 'offline' "
        "(default), 'always' (whenever a workshop mirror exists) or 'never'.",
        check=one_of("offline", "always", "never"),
    )
    workshop_index_port: int = _setting(
        8587,
        "Port of the workshop's local package index (pypiserver), served on the builds' network "
        "gateway only (default 8587).",
        check=between(1, 65535),
    )
    classroom: bool = _setting(
        False,
        "Serve attendees on the local network (`binderlite up --classroom` sets it for one run): the "
        "web app and the proxy listen on classroom_address, and quotas follow the expected attendees.",
    )
    classroom_address: str = _setting(
        "",
        "Address attendees reach the laptop on in classroom mode. Empty (default): the address of the "
        "interface of the default route, else of the first interface that is not loopback.",
    )
    warm_pool_size: int = _setting(
        -1,
        "Servers kept started, ready to hand out to anonymous launches, for each image of warm_pool_images. "
        "-1 (default): in a workshop, the manifest's expected attendees, else none; 0 turns the pool off. "
        "Always bounded by memory (all pooled servers at memory_limit fit next to the services and one build) "
        "and by total_quota.",
        check=at_least(-1),
    )
    warm_pool_images: str = _setting(
        "",
        "Comma-separated images (or BinderHub-style links, e.g. gh/org/repo/main) kept warm. Empty "
        "(default): the prepared images of the workshop's manifest. Links are looked up in the manifest only.",
    )

    # ---- scheduler settings ----------------------------------------------
    cull_idle_timeout: int = _setting(
        600,
        "Seconds without activity after which a server is stopped (default 600, as mybinder.org).",
        check=at_least(1),
    )
    cull_max_age: int = _setting(
        21600,
        "Seconds after which a server is stopped even if active (default 6 hours; 0 disables).",
        check=at_least(0),
    )
    cull_every: int = _setting(
        60,
        "Seconds between idle-culling runs.",
        check=at_least(1),
    )
    reconcile_every: int = _setting(
        300,
        "Seconds between reconciliation runs (orphan containers, stale routes).",
        check=at_least(1),
    )
    gc_every: int = _setting(
        600,
        "Seconds between disk garbage-collection runs.",
        check=at_least(1),
    )
    disk_high_water: int = _setting(
        85,
        "Percent used of Docker's data disk above which binderlite images are removed.",
        check=between(1, 100),
    )
    disk_low_water: int = _setting(
        70,
        "Percent used that image garbage collection brings the disk down to.",
        check=between(0, 100),
    )
    log_retention_days: int = _setting(
        14,
        "Days build logs and build work directories are kept.",
        check=at_least(1),
    )
    # ---- the launch event log (binderlite.observe.eventlog) ------------------
    event_log_max_bytes: int = _setting(
        10 * 1024 * 1024,
        "Size in bytes at which the launch event log <state_dir>/logs/launches.jsonl moves to launches.jsonl.1 "
        "and starts again (default 10 MiB: about 30,000 launches).",
        check=at_least(1024),
    )
    event_log_backups: int = _setting(
        5,
        "Rotated launch event logs kept (launches.jsonl.1 … .N; default 5). 0 keeps none: a full log starts again.",
        check=at_least(0),
    )

    # ---- metrics settings ------------------------------------------------
    metrics_token: str = _setting(
        "",
        "Bearer token that lets a Prometheus elsewhere read /metrics (`Authorization: Bearer <token>`). "
        "Empty (default): only direct requests from 127.0.0.1 may, never one through a reverse proxy.",
    )
    metrics_repo_label: str = _setting(
        "full",
        "What the `repo` label of the build and launch metrics holds: 'full' (the repository URL, as "
        "BinderHub), 'hashed' (the first 12 hex digits of its SHA-256) or 'omit' (empty). Private "
        "repositories are never 'full': hashed at least.",
        check=one_of("full", "hashed", "omit"),
    )

    def __post_init__(self) -> None:
        _validate(self)

    # ---- derived values --------------------------------------------------
    @property
    def max_repo_size_bytes(self) -> int:
        return parse_size(self.max_repo_size, "max_repo_size")

    @property
    def max_file_size_bytes(self) -> int:
        return parse_size(self.max_file_size, "max_file_size")

    @property
    def home_quota_bytes(self) -> int:
        """Bytes of ``home_quota``; 0 when there is none."""
        return parse_size(self.home_quota, "home_quota") if self.home_quota else 0

    @property
    def db_path(self) -> Path:
        return Path(self.state_dir) / "binderlite.sqlite"

    @property
    def build_logs_dir(self) -> Path:
        return Path(self.state_dir) / "builds"

    @property
    def build_work_dir(self) -> Path:
        return Path(self.state_dir) / "work"

    @property
    def registry_dir(self) -> Path:
        return Path(self.state_dir) / "registry"

    @property
    def hub_dir(self) -> Path:
        return Path(self.state_dir) / "hub"

    @property
    def logs_dir(self) -> Path:
        return Path(self.state_dir) / "logs"

    @property
    def run_dir(self) -> Path:
        return Path(self.state_dir) / "run"

    @property
    def workshop_dir(self) -> Path:
        """The workshop's manifest, package mirror and bare repository copies."""
        return Path(self.state_dir) / "workshop"

    def ensure_dirs(self) -> None:
        """Create the state tree, private to root.

        The state dir itself may be entered but not listed by others (0711),
        so the service user reaches its own registry folder; everything in it
        is 0700, and the hub's files (its database holds tokens' hashes and
        users' server options) are 0600.
        """
        root = Path(self.state_dir)
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o711)
        for path in (self.build_logs_dir, self.build_work_dir, self.hub_dir, self.logs_dir, self.run_dir):
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o700)
        for path in self.hub_dir.iterdir():
            if path.is_file():
                path.chmod(0o600)

    @functools.cached_property
    def banned_patterns(self) -> tuple[re.Pattern, ...]:
        """``banned_specs`` compiled (case-insensitive); ConfigError names a pattern that does not compile."""
        patterns = []
        for text in filter(None, (part.strip() for part in self.banned_specs.split(","))):
            try:
                patterns.append(re.compile(text, re.IGNORECASE))
            except re.error as exc:
                raise ConfigError(
                    f"Setting banned_specs: {text!r} is not a valid regular expression ({exc}); fix the pattern."
                ) from None
        return tuple(patterns)

    @functools.cached_property
    def access_rule_list(self) -> tuple[AccessRule, ...]:
        """``access_rules`` parsed (checked at load: this never raises for loaded settings)."""
        return parse_access_rules(self.access_rules)

    def to_environment(self) -> dict[str, str]:
        """``BINDERLITE_*`` variables that make a child process load exactly these settings.

        The one way settings reach child processes: services, build workers,
        the hub's config and systemd units all read them with ``load_settings``.
        """
        env = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool):
                value = "true" if value else "false"
            env[f"BINDERLITE_{f.name.upper()}"] = str(value)
        return env

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with some settings replaced (used by the CLI and tests)."""
        return dataclasses.replace(self, **overrides)


@dataclass(frozen=True)
class AccessRule:
    """One access rule: which specs it covers, who may launch them, and their limits."""

    name: str
    pattern: re.Pattern
    groups: tuple[str, ...] = ()
    max_servers: int = 0
    memory_limit: str = ""
    cpu_limit: float = 0.0
    contact: str = ""


_RULE_KEYS = {"name", "pattern", "groups", "max_servers", "memory_limit", "cpu_limit", "contact"}


def parse_access_rules(text: str) -> tuple[AccessRule, ...]:
    """The rules in ``text`` (JSON: a list of tables); ConfigError names the rule and what is wrong."""
    try:
        data = json.loads(text or "[]")
    except ValueError as exc:
        raise ConfigError(f"Setting access_rules is not valid JSON ({exc}).") from None
    if not isinstance(data, list):
        raise ConfigError("Setting access_rules must be a list of tables ([[access_rules]] in the config file).")
    rules: list[AccessRule] = []
    for index, raw in enumerate(data, 1):
        label = f"access rule {index}" + (f" ({raw.get('name')!r})" if isinstance(raw, dict) else "")

        def fail(problem: str, label: str = label) -> ConfigError:
            return ConfigError(f"Setting access_rules: {label} {problem}; fix it in the config file.")

        if not isinstance(raw, dict):
            raise fail("is not a table")
        unknown = sorted(set(raw) - _RULE_KEYS)
        if unknown:
            raise fail(f"has unknown keys {', '.join(unknown)} (known: {', '.join(sorted(_RULE_KEYS))})")
        name, pattern, groups = raw.get("name"), raw.get("pattern"), raw.get("groups", [])
        if not isinstance(name, str) or not name.strip():
            raise fail("needs a name")
        if name in {rule.name for rule in rules}:
            raise fail("has the name of an earlier rule")
        if not isinstance(pattern, str) or not pattern:
            raise fail("needs a pattern (a regular expression over <provider>/<spec>)")
        try:
            compiled = re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise fail(f"has a pattern that is not a valid regular expression ({exc})") from None
        if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
            raise fail("has groups that are not a list of group names")
        max_servers, cpu = raw.get("max_servers", 0), raw.get("cpu_limit", 0.0)
        if isinstance(max_servers, bool) or not isinstance(max_servers, int) or max_servers < 0:
            raise fail("has max_servers that is not a whole number of at least 0")
        if isinstance(cpu, bool) or not isinstance(cpu, int | float) or not 0 <= cpu <= 1024:
            raise fail("has cpu_limit that is not a number between 0 and 1024")
        memory = raw.get("memory_limit", "")
        if not isinstance(memory, str) or (memory and a_size(memory)):
            raise fail("has memory_limit that is not a size such as 512M or 2G")
        contact = raw.get("contact", "")
        if not isinstance(contact, str):
            raise fail("has a contact that is not text")
        rules.append(AccessRule(name, compiled, tuple(groups), max_servers, memory, float(cpu), contact))
    return tuple(rules)


def _access_rules_problem(text: str) -> None:
    parse_access_rules(text)  # raises a ConfigError that names the rule
    return None


SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def human_size(size: float) -> str:
    """A size as people read it: ``512 B``, ``214.5 KiB``, ``1.9 GiB`` (binary units)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def parse_size(text: str, name: str) -> int:
    """Bytes in a size such as ``512M``, ``2G`` or ``1048576`` (binary units, as Docker's)."""
    raw = str(text).strip().upper().removesuffix("IB").removesuffix("B")
    number, unit = (raw[:-1], raw[-1]) if raw and raw[-1] in SIZE_UNITS else (raw, "")
    try:
        value = float(number) * SIZE_UNITS[unit]
    except ValueError:
        raise ConfigError(f"Setting {name} must be a size such as 512M or 2G, not {text!r}.") from None
    if value <= 0:
        raise ConfigError(f"Setting {name} must be larger than 0, not {text!r}.")
    return int(value)


def _coerce(name: str, kind: type, raw: Any) -> Any:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"Setting {name} must be true or false, not {raw!r}.")
    if kind is int:
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"Setting {name} must be a whole number, not {raw!r}.") from None
    if kind is float:
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"Setting {name} must be a number such as 1.5, not {raw!r}.") from None
    return str(raw)


_TYPES = {"str": str, "int": int, "bool": bool, "float": float}


def setting_fields() -> list[dataclasses.Field]:
    """The settings' fields, in declaration order (for docs and the CLI)."""
    return list(dataclasses.fields(Settings))


def config_path(config_file: str | None = None, environ: dict[str, str] | None = None) -> str:
    """The config file settings are loaded from: ``config_file``, else ``BINDERLITE_CONFIG``, else the default."""
    env = os.environ if environ is None else environ
    return config_file or env.get("BINDERLITE_CONFIG") or DEFAULT_CONFIG_FILE


def load_settings(config_file: str | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Build settings from defaults, then the config file, then the environment."""
    env = os.environ if environ is None else environ
    path = config_path(config_file, env)
    values: dict[str, Any] = {}
    known = {f.name: _TYPES[f.type] for f in setting_fields()}
    if os.path.exists(path):
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"Config file {path} could not be read: {exc}") from None
        for key, raw in data.items():
            if key not in known:
                raise ConfigError(f"Unknown setting {key!r} in {path}; see README for the settings table.")
            values[key] = json.dumps(raw) if key == "access_rules" and isinstance(raw, list) else raw
            values[key] = _coerce(key, known[key], values[key])
    elif config_file or env.get("BINDERLITE_CONFIG"):
        raise ConfigError(f"Config file {path} does not exist.")
    for name, kind in known.items():
        env_name = f"BINDERLITE_{name.upper()}"
        if env_name in env:
            values[name] = _coerce(env_name, kind, env[env_name])
    return Settings(**values)


def _validate(settings: Settings) -> None:
    """Every value checked once, at load; a ConfigError names the setting, the value and the way to fix it."""
    for f in setting_fields():
        check = f.metadata.get("check")
        value = getattr(settings, f.name)
        problem = check(value) if check else None
        if problem:
            raise ConfigError(
                f"Setting {f.name} is {value!r}, but it {problem}. Set {f.name} in the config file "
                f"(BINDERLITE_CONFIG, default {DEFAULT_CONFIG_FILE}) or BINDERLITE_{f.name.upper()}."
            )
    if not settings.disk_low_water < settings.disk_high_water:
        raise ConfigError(
            f"Setting disk_low_water ({settings.disk_low_water}) must be below disk_high_water "
            f"({settings.disk_high_water}): image collection stops at the low mark once above the high one."
        )
    if settings.server_network == settings.build_network:
        raise ConfigError(
            f"Settings server_network and build_network are both {settings.server_network!r}: servers and build "
            "steps need networks of their own (their rules differ)."
        )
    settings.banned_patterns  # noqa: B018 (a pattern that does not compile raises ConfigError here)
    if settings.spawner_backend == "kubernetes":
        _validate_kubernetes(settings)


def _validate_kubernetes(settings: Settings) -> None:
    """What the kubernetes backend needs beyond each value's own check."""
    if not settings.registry:
        raise ConfigError(
            "Setting spawner_backend is 'kubernetes' but registry is empty: the cluster's nodes pull every image "
            "from binderlite's registry, so builds must push there. Set registry (default 127.0.0.1:5000)."
        )
    if not settings.hub_ip:
        raise ConfigError(
            "Setting spawner_backend is 'kubernetes' but hub_ip is empty: the hub must listen where pods reach it, "
            "not on the servers' Docker network. Set hub_ip to this machine's address on the cluster's network "
            "(and kube_hub_url if pods reach the hub by another name)."
        )
    if settings.auth_mode == "authenticated" and settings.persistent_homes:
        raise ConfigError(
            "Setting spawner_backend is 'kubernetes' with auth_mode 'authenticated' and persistent_homes on, but "
            "persistent folders are Docker volumes on this machine, which pods on other nodes cannot mount. Set "
            "persistent_homes = false (users' work then lives as long as their server)."
        )
    if parse_size(settings.kube_memory_guarantee, "kube_memory_guarantee") > parse_size(
        settings.memory_limit, "memory_limit"
    ):
        raise ConfigError(
            f"Setting kube_memory_guarantee ({settings.kube_memory_guarantee}) is above memory_limit "
            f"({settings.memory_limit}): a pod may not request more than its limit. Lower it."
        )
    if settings.kube_cpu_guarantee > settings.cpu_limit:
        raise ConfigError(
            f"Setting kube_cpu_guarantee ({settings.kube_cpu_guarantee}) is above cpu_limit ({settings.cpu_limit}): "
            "a pod may not request more than its limit. Lower it."
        )


def proxy_environment(settings: Settings, bypass: tuple[str, ...] = ()) -> dict[str, str]:
    """HTTP(S)_PROXY/NO_PROXY (both cases) from the settings, else this process's environment.

    ``bypass`` hosts are added to NO_PROXY (e.g. the hub, which containers reach directly).
    """
    values = {
        "HTTP_PROXY": settings.http_proxy or os.environ.get("HTTP_PROXY") or os.environ.get("http_proxy", ""),
        "HTTPS_PROXY": settings.https_proxy or os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy", ""),
        "NO_PROXY": settings.no_proxy or os.environ.get("NO_PROXY") or os.environ.get("no_proxy", ""),
    }
    if bypass and (values["HTTP_PROXY"] or values["HTTPS_PROXY"]):
        values["NO_PROXY"] = ",".join(filter(None, [values["NO_PROXY"], *bypass]))
    env = {}
    for key, value in values.items():
        if value:
            env[key] = value
            env[key.lower()] = value
    return env


def settings_markdown_table() -> str:
    """The README's settings table, generated from the Settings fields."""
    rows = ["| setting | environment variable | default | meaning |", "|---|---|---|---|"]
    for f in setting_fields():
        default = f.default if f.default != "" else "(empty)"
        rows.append(f"| `{f.name}` | `BINDERLITE_{f.name.upper()}` | `{default}` | {f.metadata['help']} |")
    return "\n".join(rows) + "\n"
