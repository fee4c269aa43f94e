#!/usr/bin/env bash
# Install everything binderlite needs on a Debian 12 machine, as root.
# Idempotent: every step checks before it acts, so re-running is cheap.
#   bash scripts/install-debian.sh            # system packages + venv
#   BINDERLITE_WITH_TEST_TOOLS=1 bash ...      # also the browser for tests
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${BINDERLITE_INSTALL_PREFIX:-/opt/binderlite}"
VENV="$PREFIX/venv"
export DEBIAN_FRONTEND=noninteractive

log() { printf '==> %s\n' "$*"; }

ensure_apt_packages() {
    # The one list, shared with the Ansible role: scripts/debian-packages.txt.
    local wanted=() pkg
    while read -r pkg; do
        case "$pkg" in
        '' | '#'*) continue ;;
        # An npm from elsewhere (e.g. NodeSource) is as good as Debian's.
        nodejs | npm) command -v npm >/dev/null && continue ;;
        esac
        wanted+=("$pkg")
    done < <(sed 's/#.*//; s/[[:space:]]//g' "$REPO_DIR/scripts/debian-packages.txt")
    if [ "${BINDERLITE_WITH_TEST_TOOLS:-0}" = 1 ]; then
        wanted+=(chromium chromium-driver libnss3-tools)  # libnss3-tools: certutil, a CA for Chromium
        wanted+=(slapd ldap-utils)  # the sign-in tests' directory: each test runs its own slapd, never the service
        wanted+=(lighttpd openssh-server)  # the private git server of the tests (each test runs its own instance)
        wanted+=(zbar-tools)  # zbarimg: the classroom test reads the landing page's QR code from a screenshot
    fi
    local missing=()
    for pkg in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "Installing Debian packages: ${missing[*]}"
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

disable_packaged_registry() {
    # Debian's docker-registry package enables and starts its own service on
    # *:5000 where systemd runs; `binderlite up` runs the registry itself on
    # 127.0.0.1:5000, so the packaged one would hold the port (and serve an
    # open registry on every interface).
    [ -d /run/systemd/system ] || return 0
    if systemctl is-enabled --quiet docker-registry.service 2>/dev/null \
        || systemctl is-active --quiet docker-registry.service 2>/dev/null; then
        log "Disabling Debian's docker-registry service (binderlite runs its own on 127.0.0.1)"
        systemctl disable --now docker-registry.service
    fi
    # The test tools' slapd starts a directory on port 389; the tests run their own.
    if systemctl is-enabled --quiet slapd.service 2>/dev/null; then
        log "Disabling Debian's slapd service (the tests start their own directory)"
        systemctl disable --now slapd.service
    fi
}

ensure_buildx() {
    # Debian 12 has no buildx package; trixie's docker-buildx runs on bookworm.
    if docker buildx version >/dev/null 2>&1; then return; fi
    log "Installing docker-buildx from Debian trixie (pinned at priority 100)"
    cat > /etc/apt/sources.list.d/binderlite-trixie.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    cat > /etc/apt/preferences.d/binderlite-trixie <<'PIN'
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
    apt-get update -q
    apt-get install -y -q --no-install-recommends -t trixie docker-buildx
    # A docker client outside /usr/bin (e.g. /usr/local/bin) looks for plugins
    # in its own places too; link the plugin where every client finds it.
    mkdir -p /usr/local/lib/docker/cli-plugins
    ln -sf /usr/libexec/docker/cli-plugins/docker-buildx /usr/local/lib/docker/cli-plugins/docker-buildx
}

ensure_proxy() {
    if command -v configurable-http-proxy >/dev/null; then return; fi
    log "Installing configurable-http-proxy from npm"
    npm install -g --no-audit --no-fund configurable-http-proxy@4.6.3 >/dev/null
}

ensure_venv() {
    # Debian's own Python: the fetch sandbox runs it as an unprivileged user, so it
    # must not live under a private home (e.g. a pyenv Python in /root).
    if [ -x "$VENV/bin/python" ] && [ "$(readlink -f "$VENV/bin/python")" != "$(readlink -f /usr/bin/python3)" ]; then
        log "Recreating $VENV with Debian's Python (it was made with $(readlink -f "$VENV/bin/python"))"
        rm -rf "$VENV"
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        log "Creating virtual environment $VENV"
        mkdir -p "$PREFIX"
        /usr/bin/python3 -m venv "$VENV"
    fi
    log "Installing binderlite into $VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -c "$REPO_DIR/constraints.txt" -e "$REPO_DIR[test]"
    ln -sf "$VENV/bin/binderlite" /usr/local/bin/binderlite
}

ensure_docker_running() {
    "$REPO_DIR/scripts/start-dockerd.sh"
}

ensure_apt_packages
disable_packaged_registry
ensure_buildx
ensure_proxy
ensure_venv
ensure_docker_running
log "Making sure the base image exists"
"$VENV/bin/binderlite" base-image
log "binderlite is installed: run 'binderlite up'"
