#!/usr/bin/env bash
# Prove binderlite's systemd units work, in a systemd Debian 12 machine (a container, as
# scripts/check-fresh-machine.sh boots one), as root:
#   install (scripts/install-debian.sh), `binderlite systemd-units --out /etc/systemd/system`,
#   `systemd-analyze verify` of every unit, `systemctl start binderlite.target` (every unit active),
#   a build + launch through the web app's /build/ stream (the hardened units do the work),
#   `binderlite status`, `kill -9` of each service's main process (systemd restarts it; the server
#   still answers; another launch works), `binderlite backup` while serving + `restore` after
#   wiping the hub's state (the same server is known again), the scheduler's jobs under its
#   hardening (no job failed), and a restart of the machine (every unit comes back).
#
#   bash scripts/check-systemd-units.sh     # the working tree (tracked + untracked, not ignored)
#   BLTEST_UNITS_KEEP=1 ...                 # keep the machine afterwards, for a look inside
#
# Run it under the integration lock (the tests remove bltest- containers they do not know):
#   flock /tmp/binderlite-integration.lock bash scripts/check-systemd-units.sh
# The machine, its image and volume are named bltest-units-*; all removed at the end. When this
# host has binderlite/base:bookworm (and its toolchain image), they are copied in instead of made
# with debootstrap inside. Prints timings and PASS/FAIL; exit code 0 only on PASS.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE=bltest-units-debian:12
MACHINE=bltest-units-m
VOLUME=bltest-units-docker
KEEP="${BLTEST_UNITS_KEEP:-0}"
SRC=/opt/binderlite-src # not under /root: the units' ProtectHome=yes hides /root and /home
REPO_PORT=18999
WORK=""
T0=$(date +%s)
declare -a TIMINGS=()
RESULT=FAIL
UNITS=(registry proxy hub web scheduler)

log() { printf '[units %4ss] %s\n' "$(($(date +%s) - T0))" "$*"; }
timed() {
    local label=$1 start rc=0
    shift
    start=$(date +%s)
    "$@" || rc=$?
    TIMINGS+=("$(printf '%-30s %5ss' "$label" "$(($(date +%s) - start))")")
    return $rc
}
in_m() { docker exec "$MACHINE" "$@"; }
in_m_sh() { docker exec "$MACHINE" bash -c "$1"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

remove_all() {
    docker rm -f -v "$MACHINE" >/dev/null 2>&1 || true
    docker rmi -f "$IMAGE" >/dev/null 2>&1 || true
    docker volume rm -f "$VOLUME" >/dev/null 2>&1 || true
}

finish() {
    local rc=$?
    trap - EXIT INT TERM
    if [ "$RESULT" != PASS ] && docker inspect "$MACHINE" >/dev/null 2>&1; then
        in_m_sh 'systemctl list-units "binderlite*" --all --no-pager; journalctl -u "binderlite*" -n 60 --no-pager' || true
    fi
    if [ "$KEEP" = 1 ]; then
        log "keeping $MACHINE ($IMAGE, $VOLUME)"
    else
        log "cleaning up $MACHINE, $IMAGE and $VOLUME"
        in_m_sh 'systemctl stop "binderlite-*" docker docker.socket containerd' >/dev/null 2>&1 || true
        remove_all
    fi
    [ -n "$WORK" ] && rm -rf "$WORK"
    echo
    echo "==== timings ===="
    printf '%s\n' "${TIMINGS[@]}"
    printf '%-30s %5ss\n' total "$(($(date +%s) - T0))"
    echo "==== $RESULT ===="
    if [ "$RESULT" = PASS ]; then exit 0; fi
    [ "$rc" -eq 0 ] && rc=1
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap, docker)" >&2; exit 2; }
command -v debootstrap >/dev/null || { echo "needs debootstrap on this host" >&2; exit 2; }
docker info >/dev/null 2>&1 || { echo "needs a running Docker daemon on this host" >&2; exit 2; }
docker rm -f -v "$MACHINE" >/dev/null 2>&1 || true
docker volume rm -f "$VOLUME" >/dev/null 2>&1 || true
WORK=$(mktemp -d /tmp/bltest-units-XXXXXX)

# 1. A systemd Debian 12 machine.
make_image() {
    docker image inspect "$IMAGE" >/dev/null 2>&1 && return 0
    debootstrap --include=systemd,systemd-sysv,python3,dbus,ca-certificates \
        bookworm "$WORK/rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 \
        || { tail -n 20 "$WORK/debootstrap.log"; return 1; }
    rm -rf "$WORK/rootfs/var/cache/apt/archives"/*.deb
    tar -C "$WORK/rootfs" -c . | docker import - "$IMAGE" >/dev/null
    rm -rf "$WORK/rootfs"
}
boot() {
    docker run -d --name "$MACHINE" --hostname bltest-units \
        --cap-add SYS_ADMIN --cap-add NET_ADMIN --security-opt seccomp=unconfined --cgroupns=host \
        --tmpfs /run --tmpfs /run/lock -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
        -v "$VOLUME:/var/lib/docker" "$IMAGE" /sbin/init >/dev/null
    wait_running
}
wait_running() {
    local state=""
    for _ in $(seq 1 90); do
        state=$(in_m systemctl is-system-running 2>/dev/null || true)
        case "$state" in running | degraded) return 0 ;; esac
        sleep 1
    done
    echo "systemd did not come up (state: $state)" >&2
    return 1
}
log "debootstrap (or reuse) $IMAGE"
timed "machine image" make_image
log "booting $MACHINE"
timed "boot" boot

# 2. Install, as a lab administrator would from a checkout (outside /root).
docker cp /etc/ssl/certs/ca-certificates.crt "$MACHINE:/usr/local/share/ca-certificates/outer-host-bundle.crt"
in_m_sh 'update-ca-certificates >/dev/null 2>&1; mkdir -p /etc/docker && echo "{\"storage-driver\": \"overlay2\"}" > /etc/docker/daemon.json'
in_m mkdir -p "$SRC" /etc/binderlite
(cd "$REPO_DIR" && git ls-files -z -c -o --exclude-standard | tar --null -T - -c --ignore-failed-read 2>/dev/null) \
    | docker exec -i "$MACHINE" tar -x -C "$SRC"
CONFIG='allow_local_repos = true
python_base_images = ""
cull_every = 15
reconcile_every = 20
gc_every = 20'
BASE_ID=$(docker image inspect -f '{{.Id}}' binderlite/base:bookworm 2>/dev/null | cut -d: -f2 | cut -c1-12 || true)
if [ -n "$BASE_ID" ]; then
    log "copying this host's binderlite/base:bookworm (and binderlite/toolchain:$BASE_ID if present) in"
    images=(binderlite/base:bookworm)
    docker image inspect "binderlite/toolchain:$BASE_ID" >/dev/null 2>&1 && images+=("binderlite/toolchain:$BASE_ID")
    docker save "${images[@]}" | docker exec -i "$MACHINE" bash -c 'cat > /root/base-images.tar'
    CONFIG="$CONFIG
base_image_tarball = \"/root/base-images.tar\""
fi
echo "$CONFIG" | docker exec -i "$MACHINE" bash -c 'cat > /etc/binderlite/binderlite.toml'
log "bash scripts/install-debian.sh (log: /root/install.log in the machine)"
timed "install-debian.sh" in_m_sh "cd $SRC && bash scripts/install-debian.sh >/root/install.log 2>&1" \
    || { in_m tail -n 40 /root/install.log; exit 1; }

# 3. The units.
log "binderlite systemd-units --out /etc/systemd/system"
in_m binderlite systemd-units --out /etc/systemd/system
in_m_sh 'systemctl daemon-reload'
log "systemd-analyze verify"
VERIFY=$(in_m_sh 'systemd-analyze verify /etc/systemd/system/binderlite*.service /etc/systemd/system/binderlite.target 2>&1') \
    || fail "systemd-analyze verify: $VERIFY"
[ -z "$VERIFY" ] || fail "systemd-analyze verify complains (it exits 0 on directives it ignores): $VERIFY"
[ -z "$(in_m binderlite systemd-units --out /etc/systemd/system)" ] || fail "a second systemd-units wrote again"
in_m_sh 'systemctl enable binderlite.target binderlite-prepare.service '"$(printf 'binderlite-%s.service ' "${UNITS[@]}")"' 2>/dev/null'
all_active() {
    local deadline=$(($(date +%s) + ${1:-180})) u bad
    while [ "$(date +%s)" -lt "$deadline" ]; do
        bad=""
        for u in prepare "${UNITS[@]}"; do
            in_m systemctl is-active --quiet "binderlite-$u.service" || bad="$bad $u"
        done
        [ -z "$bad" ] && return 0
        sleep 2
    done
    echo "not active:$bad" >&2
    return 1
}
log "systemctl start binderlite.target"
timed "start -> every unit active" bash -c "docker exec $MACHINE systemctl start binderlite.target" || fail "start"
timed "(wait for active)" all_active 180 || fail "units not active"
for u in "${UNITS[@]}"; do log "  binderlite-$u: $(in_m systemctl show -p ActiveState,SubState,User,MainPID "binderlite-$u.service" | tr '\n' ' ')"; done

# 4. A build and launch through the web app's event stream.
in_m_sh "set -e
rm -rf /srv/fixture /srv/served && mkdir -p /srv/fixture /srv/served
cd /srv/fixture && git init -q -b main && echo 'six==1.16.0' > requirements.txt && git add requirements.txt
git -c user.name=check -c user.email=check@localhost commit -q -m fixture
git clone -q --bare /srv/fixture /srv/served/fixture.git && git -C /srv/served/fixture.git update-server-info"
docker exec -d "$MACHINE" python3 -m http.server "$REPO_PORT" --bind 127.0.0.1 --directory /srv/served
BUILD_URL="http://127.0.0.1:8585/build/git/http%3A%2F%2F127.0.0.1%3A${REPO_PORT}%2Ffixture.git/main"
launch() { # launch <label>: the ready event's server URL and token into $WORK/ready
    in_m timeout 900 curl -sN -H 'Accept: text/event-stream' "$BUILD_URL" >"$WORK/stream" || true
    grep '"phase": "ready"' "$WORK/stream" | head -n 1 | sed 's/^data: //' >"$WORK/ready"
    [ -s "$WORK/ready" ] || { tail -c 2000 "$WORK/stream"; return 1; }
}
server_answers() {
    local url token
    url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$WORK/ready")
    token=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' "$WORK/ready")
    [ "$(in_m curl -s -o /dev/null -w '%{http_code}' "${url}api/status?token=$token")" = 200 ]
}
log "launch through $BUILD_URL"
timed "build + launch (web unit)" launch || fail "launch through the web app"
server_answers || fail "the launched server does not answer"
cp "$WORK/ready" "$WORK/first"
log "binderlite status"
in_m binderlite status || fail "binderlite status reported a problem"

# 5. kill -9 of each main process: systemd restarts it.
log "kill -9 each service's main process"
for u in "${UNITS[@]}"; do
    pid=$(in_m systemctl show -p MainPID --value "binderlite-$u.service")
    in_m kill -9 "$pid"
done
timed "kill -9 -> every unit active" all_active 120 || fail "not every unit came back after kill -9"
for u in "${UNITS[@]}"; do
    n=$(in_m systemctl show -p NRestarts --value "binderlite-$u.service")
    [ "$n" -ge 1 ] || fail "binderlite-$u was not restarted (NRestarts=$n)"
    log "  binderlite-$u restarted ($n), pid $(in_m systemctl show -p MainPID --value "binderlite-$u.service")"
done
sleep 10 # the restarted hub puts its routes back into the restarted proxy
cp "$WORK/first" "$WORK/ready"
server_answers || fail "the server does not answer after the restarts"
timed "launch after kill -9" launch || fail "launch after kill -9"

# 6. Backup while serving, restore after wiping the hub's state.
log "binderlite backup while serving, then restore"
in_m binderlite backup /root/backup.tar.gz
in_m_sh "systemctl stop 'binderlite-*' && rm -rf /var/lib/binderlite/hub /var/lib/binderlite/binderlite.sqlite"
in_m binderlite restore /root/backup.tar.gz
in_m systemctl start binderlite.target
all_active 180 || fail "units not active after the restore"
sleep 10
cp "$WORK/first" "$WORK/ready"
server_answers || fail "the first server is not served after the restore"
in_m binderlite status

# 7. The scheduler's jobs under its hardening (from now on, with every service up: each job runs twice).
SINCE=$(in_m date '+%Y-%m-%d %H:%M:%S')
sleep 45
in_m_sh "journalctl -u binderlite-scheduler.service --since '$SINCE' --no-pager" >"$WORK/scheduler.log"
grep -E ' failed: ' "$WORK/scheduler.log" && fail "a scheduler job failed under its unit"
for job in 'culled [0-9]+ servers' 'reconciled: ' 'disk gc: '; do
    grep -Eq "$job" "$WORK/scheduler.log" || fail "the scheduler's '$job' job did not run"
done
log "scheduler: cull, reconcile and disk gc ran without a failure"

# 8. A restart of the machine: prepare runs again, every unit comes back.
log "restarting the machine"
restart_machine() { docker restart "$MACHINE" >/dev/null && wait_running && all_active 240; }
timed "machine restart -> all active" restart_machine || fail "units after a restart"
in_m binderlite status || true
RESULT=PASS
