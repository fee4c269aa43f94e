#!/usr/bin/env bash
# Install binderlite and a prepared workshop on a Debian 12 machine that has nothing yet, as root, with NO
# network, from one workshop bundle (made by `binderlite workshop export`). The one command:
#
#     tar -xf workshop.tar binderlite-workshop/install.sh && bash binderlite-workshop/install.sh workshop.tar
#
# It checks the checksums of the parts it installs, installs the Debian packages the machine lacks (or has
# older), configurable-http-proxy, a venv at /opt/binderlite/venv with binderlite from the bundle's wheels
# (pip --no-index), links /usr/local/bin/binderlite, makes sure dockerd runs, and then runs
# `binderlite workshop import` of the same bundle, which checks every part again before loading anything.
# Idempotent: running it again installs nothing twice. Afterwards: `binderlite up`.
set -euo pipefail

BUNDLE="${1:-}"
PREFIX="${BINDERLITE_INSTALL_PREFIX:-/opt/binderlite}"
VENV="$PREFIX/venv"
FOLDER=binderlite-workshop
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

log() { printf '==> %s\n' "$*"; }
die() { printf 'Error: %s\n' "$*" >&2; exit "${2:-1}"; }

[ -n "$BUNDLE" ] && [ -f "$BUNDLE" ] || die "usage: bash $FOLDER/install.sh WORKSHOP_BUNDLE.tar" 2
[ "$(id -u)" = 0 ] || die "run as root (it installs Debian packages and starts dockerd)" 2
BUNDLE="$(readlink -f "$BUNDLE")"
grep -q 'VERSION_ID="12"' /etc/os-release 2>/dev/null || log "Warning: this is not Debian 12; the bundle's packages are for Debian 12"

WORK="$(mktemp -d /var/tmp/binderlite-install-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
T0=$(date +%s)

# 1. The parts this script installs, checked against the bundle's checksum file. (Every other part is
#    checked by `binderlite workshop import`, streamed from the bundle, before anything is loaded.)
log "Checking the parts to install against $FOLDER/SHA256SUMS"
tar -C "$WORK" -xf "$BUNDLE" "$FOLDER/SHA256SUMS" "$FOLDER/debs.tar" "$FOLDER/wheels.tar" "$FOLDER/proxy.tar.gz" \
    || die "the bundle lacks the install parts (exported with --no-install?); copy the whole bundle" 2
(cd "$WORK/$FOLDER" && grep -E '  (debs\.tar|wheels\.tar|proxy\.tar\.gz)$' SHA256SUMS | sha256sum --check --strict --quiet) \
    || die "a part of the bundle does not match its checksum (named above): the bundle is damaged; copy it again" 2

# 2. Debian packages: apt sees the bundle's packages as its only repository (a flat one, with an index made at
#    export), so it installs the wanted ones and takes only the dependencies this machine lacks or has older.
ensure_debs() {
    local debs="$WORK/debs" apt_dir="$WORK/apt" missing=() pkg
    mkdir -p "$debs" "$apt_dir/lists/partial" "$apt_dir/parts" "$apt_dir/cache"
    tar -C "$debs" -xf "$WORK/$FOLDER/debs.tar"
    while read -r pkg; do
        dpkg-query --showformat='${db:Status-Abbrev}' --show "$pkg" 2>/dev/null | grep -q '^ii' || missing+=("$pkg")
    done <"$debs/wanted.txt"
    if [ ${#missing[@]} -eq 0 ]; then return; fi
    echo "deb [trusted=yes] file:$debs ./" >"$apt_dir/sources.list"
    local apt=(apt-get --quiet -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/parts"
        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o "Dir::Etc::Preferences=/dev/null"
        -o "Dir::Etc::PreferencesParts=$apt_dir/parts" -o APT::Sandbox::User=root)
    log "Installing Debian packages from the bundle (no network): ${missing[*]}"
    "${apt[@]}" update >/dev/null
    "${apt[@]}" install --yes --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
}

disable_packaged_registry() {
    # Debian's docker-registry starts its own service on *:5000; `binderlite up` runs one on 127.0.0.1.
    [ -d /run/systemd/system ] || return 0
    if systemctl is-enabled --quiet docker-registry.service 2>/dev/null \
        || systemctl is-active --quiet docker-registry.service 2>/dev/null; then
        log "Disabling Debian's docker-registry service (binderlite runs its own on 127.0.0.1)"
        systemctl disable --now docker-registry.service
    fi
}

link_buildx() {
    # The docker-buildx package (from trixie) puts the plugin where Debian's client looks; a client in
    # /usr/local/bin looks in /usr/local/lib too.
    mkdir -p /usr/local/lib/docker/cli-plugins
    ln -sf /usr/libexec/docker/cli-plugins/docker-buildx /usr/local/lib/docker/cli-plugins/docker-buildx
}

ensure_proxy() {
    if command -v configurable-http-proxy >/dev/null; then return; fi
    log "Installing configurable-http-proxy into /usr/local (from the bundle)"
    tar -C /usr/local -xzf "$WORK/$FOLDER/proxy.tar.gz" --no-same-owner
}

ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "Creating virtual environment $VENV"
        mkdir -p "$PREFIX"
        /usr/bin/python3 -m venv "$VENV"
    fi
    log "Installing binderlite into $VENV from the bundle's wheels (pip --no-index)"
    mkdir -p "$WORK/wheels"
    tar -C "$WORK/wheels" -xf "$WORK/$FOLDER/wheels.tar"
    "$VENV/bin/pip" install --quiet --no-index --disable-pip-version-check --find-links "$WORK/wheels" binderlite
    ln -sf "$VENV/bin/binderlite" /usr/local/bin/binderlite
}

ensure_docker_running() {
    if docker info >/dev/null 2>&1; then return; fi
    log "Starting the Docker daemon"
    if [ -d /run/systemd/system ]; then
        systemctl enable --now docker.service
    else
        local pidfile
        for pidfile in /var/run/docker.pid /run/docker/containerd/containerd.pid; do
            if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then rm -f "$pidfile"; fi
        done
        nohup dockerd >/var/log/binderlite-dockerd.log 2>&1 &
    fi
    local _
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && return 0
        sleep 1
    done
    die "the Docker daemon did not start within 60 s; see journalctl -u docker or /var/log/binderlite-dockerd.log"
}

ensure_debs
disable_packaged_registry
link_buildx
ensure_proxy
ensure_venv
ensure_docker_running
log "Installed in $(($(date +%s) - T0)) s; importing the workshop"
rm -rf "$WORK/debs" "$WORK/wheels"
binderlite workshop import "$BUNDLE"
log "binderlite and the workshop are installed: run 'binderlite up'"
