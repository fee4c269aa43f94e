#!/usr/bin/env bash
# Prove the README's first command on a FRESH Debian 12 machine, as root:
#     bash scripts/install-debian.sh && binderlite up
# then http://127.0.0.1:8585/health and /versions answer and one real launch
# (a local git repo with requirements.txt) gives a server that answers.
#
# The fresh machine is a debootstrapped Debian 12 running systemd in a
# container (DESIGN.md, "A whole machine in a container"). Only for this
# nested test: the machine gets NET_ADMIN (its dockerd sets up iptables and a
# bridge), its /var/lib/docker is a volume (ext4, so its Docker can use
# overlay2 as a real machine does; BLTEST_FRESH_STORAGE=vfs tries vfs) and it
# is given this host's CA bundle (a real machine behind the inspecting proxy
# already has it in its trust store). Everything else it does itself: apt,
# npm, PyPI, debootstrap of the base image, the build, the launch.
#
#   bash scripts/check-fresh-machine.sh             # the committed tree (git archive HEAD)
#   bash scripts/check-fresh-machine.sh --worktree  # the working tree (tracked + untracked, not ignored)
#   BLTEST_FRESH_KEEP=1 ...                         # keep the machine afterwards, for a look inside
#
# The container, image and volume are named bltest-fresh-*; all are removed at
# the end (and leftovers of an earlier run at the start). Prints timings and
# PASS/FAIL; exit code 0 only on PASS.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO_DIR/scripts/lib/machine.sh"  # in_m, in_m_sh, machine_* (shared with check-lab-server.sh)
IMAGE=bltest-fresh-debian:12
MACHINE=bltest-fresh-m
VOLUME=bltest-fresh-docker  # the machine's /var/lib/docker
SOURCE=head
[ "${1:-}" = --worktree ] && SOURCE=worktree
KEEP="${BLTEST_FRESH_KEEP:-0}"
STORAGE="${BLTEST_FRESH_STORAGE:-overlay2}"
UP_TIMEOUT="${BLTEST_FRESH_UP_TIMEOUT:-1500}"         # install done -> /health answers
LAUNCH_TIMEOUT="${BLTEST_FRESH_LAUNCH_TIMEOUT:-1200}" # one build + launch
REPO_PORT=18999

WORK=""
T0=$(date +%s)
declare -a TIMINGS=()
RESULT=FAIL
STARTED=0

log() { printf '[fresh %4ss] %s\n' "$(($(date +%s) - T0))" "$*"; }
timed() { # timed <label> <command...>: run, record seconds
    local label=$1 start rc=0
    shift
    start=$(date +%s)
    "$@" || rc=$?
    TIMINGS+=("$(printf '%-28s %5ss' "$label" "$(($(date +%s) - start))")")
    return $rc
}
remove_all() {
    machine_remove "$MACHINE" "$IMAGE" "$VOLUME"
}

show_logs() {
    docker inspect "$MACHINE" >/dev/null 2>&1 || return 0
    echo "---- /root/up.log (tail) ----"
    in_m_sh 'tail -n 40 /root/up.log 2>/dev/null' || true
    echo "---- binderlite service logs (tail) ----"
    in_m_sh 'for f in /var/lib/binderlite/logs/*; do [ -f "$f" ] && { echo "== $f"; tail -n 15 "$f"; }; done 2>/dev/null' || true
}

finish() {
    local rc=$?
    trap - EXIT INT TERM
    if [ "$RESULT" != PASS ]; then
        if [ "$STARTED" = 1 ] && ! docker inspect "$MACHINE" >/dev/null 2>&1; then
            echo "!! $MACHINE was removed from outside this script (e.g. a cleanup of every bltest- container): not a verdict on the install"
        fi
        show_logs
    fi
    if [ "$KEEP" = 1 ]; then
        log "keeping $MACHINE ($IMAGE, $VOLUME); remove with: docker rm -f $MACHINE; docker rmi $IMAGE; docker volume rm $VOLUME"
    else
        log "cleaning up $MACHINE, $IMAGE and $VOLUME"
        if docker inspect "$MACHINE" >/dev/null 2>&1; then
            # Stop binderlite and the nested daemon first, so vfs layers unmount cleanly.
            in_m_sh 'kill -TERM "$(cat /root/up.pid)" && sleep 10; systemctl stop docker docker.socket containerd' \
                >/dev/null 2>&1 || true
        fi
        remove_all
    fi
    [ -n "$WORK" ] && rm -rf "$WORK"
    echo
    echo "==== timings ===="
    printf '%s\n' "${TIMINGS[@]}"
    printf '%-28s %5ss\n' total "$(($(date +%s) - T0))"
    echo "==== $RESULT ($SOURCE tree) ===="
    if [ "$RESULT" = PASS ]; then exit 0; fi
    [ "$rc" -eq 0 ] && rc=1
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap, docker)" >&2; exit 2; }
command -v debootstrap >/dev/null || { echo "needs debootstrap on this host" >&2; exit 2; }
docker info >/dev/null 2>&1 || { echo "needs a running Docker daemon on this host" >&2; exit 2; }

remove_all
WORK=$(mktemp -d /tmp/bltest-fresh-XXXXXX)

# 1. A fresh Debian 12 with systemd, as a Docker image.
log "debootstrap bookworm (systemd) -> $IMAGE"
timed "debootstrap + import" machine_image "$IMAGE" "$WORK"

# 2. Boot it, with /var/lib/docker on the volume $VOLUME.
log "booting $MACHINE (systemd)"
STARTED=1
timed "boot" machine_boot "$MACHINE" "$IMAGE" "$VOLUME"

# 3. Only-for-this-test setup: the outer host's CA bundle (TLS-inspecting proxy)
#    goes into the machine's trust store; the nested Docker's storage driver.
machine_trust_host_ca "$MACHINE" "$STORAGE"

# 4. The repository, as a user's clone would have it.
in_m mkdir -p /root/binderlite
if [ "$SOURCE" = head ]; then
    log "copying git HEAD $(git -C "$REPO_DIR" rev-parse --short HEAD) into /root/binderlite"
    git -C "$REPO_DIR" archive HEAD | docker exec -i "$MACHINE" tar -x -C /root/binderlite
else
    log "copying the working tree of $REPO_DIR (HEAD $(git -C "$REPO_DIR" rev-parse --short HEAD) + changes)"
    (cd "$REPO_DIR" && git ls-files -z -c -o --exclude-standard | tar --null -T - -c --ignore-failed-read 2>/dev/null) \
        | docker exec -i "$MACHINE" tar -x -C /root/binderlite
fi

# 5. The README's first command, part one.
log "bash scripts/install-debian.sh (log: /root/install.log in the machine)"
if ! timed "install-debian.sh" in_m_sh 'cd /root/binderlite && bash scripts/install-debian.sh >/root/install.log 2>&1'; then
    in_m_sh 'tail -n 40 /root/install.log'
    exit 1
fi
in_m_sh 'grep "^==>" /root/install.log' || true
log "docker client: $(in_m_sh 'command -v docker; docker version -f "{{.Client.Version}} / engine {{.Server.Version}}"; docker info -f "storage {{.Driver}}"' | tr '\n' ' ')"
log "node $(in_m node --version), proxy $(in_m_sh 'configurable-http-proxy --version')"

# 6. Part two: binderlite up, with local repositories allowed for the launch below.
in_m_sh 'mkdir -p /etc/binderlite && echo "allow_local_repos = true" > /etc/binderlite/binderlite.toml'
log "binderlite up (log: /root/up.log in the machine)"
docker exec -d "$MACHINE" bash -c 'echo $$ >/root/up.pid; cd /root/binderlite && exec binderlite up >/root/up.log 2>&1'
wait_health() {
    local deadline=$(($(date +%s) + UP_TIMEOUT))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        if in_m curl -fsS -o /dev/null http://127.0.0.1:8585/health 2>/dev/null; then return 0; fi
        if ! in_m_sh 'kill -0 "$(cat /root/up.pid)"'; then echo "binderlite up exited" >&2; return 1; fi
        sleep 3
    done
    echo "/health did not answer within ${UP_TIMEOUT}s" >&2
    return 1
}
timed "up -> /health 200" wait_health
log "/health: $(in_m curl -fsS http://127.0.0.1:8585/health)"
log "/versions: $(in_m curl -fsS http://127.0.0.1:8585/versions)"

# 7. One real launch from a git repository served on 127.0.0.1 inside the machine.
in_m_sh "set -e
rm -rf /root/fixture /root/served && mkdir -p /root/fixture /root/served
cd /root/fixture
git init -q -b main
echo 'six==1.16.0' > requirements.txt
git add requirements.txt
git -c user.name=check -c user.email=check@localhost commit -q -m fixture
git clone -q --bare /root/fixture /root/served/fixture.git
git -C /root/served/fixture.git update-server-info"
docker exec -d "$MACHINE" python3 -m http.server "$REPO_PORT" --bind 127.0.0.1 --directory /root/served
launch() {
    local out
    out=$(in_m timeout "$LAUNCH_TIMEOUT" binderlite launch "http://127.0.0.1:$REPO_PORT/fixture.git" --ref main \
        2>"$WORK/launch.err") || { tail -n 30 "$WORK/launch.err"; return 1; }
    echo "$out" | tail -n 1 >"$WORK/launch.url"
}
log "binderlite launch http://127.0.0.1:$REPO_PORT/fixture.git --ref main"
timed "launch (build + start)" launch
URL=$(cat "$WORK/launch.url")
log "launch URL: ${URL%%token=*}token=…"
case "$URL" in http://*\?token=*) ;; *) echo "launch printed no URL with a token: $URL" >&2; exit 1 ;; esac
STATUS_URL="${URL%%\?*}api/status?${URL#*\?}"
CODE=$(in_m curl -sS -o /dev/null -w '%{http_code}' "$STATUS_URL")
log "GET <server>/api/status?token=… -> $CODE"
[ "$CODE" = 200 ] || exit 1
log "server says: $(in_m curl -fsS "$STATUS_URL")"
RESULT=PASS
