#!/usr/bin/env bash
# The offline laptop (issue 11): a workshop prepared on this host, carried as one bundle to a FRESH Debian 12
# machine that is then cut off from every network, installed there with the bundle's install.sh alone, and
# every prepared link launched to a kernel that answers 2 for 1+1.
#
#   1. On this host: a small workshop (a local git repository with a pinned requirements.txt, served on
#      127.0.0.1), `binderlite workshop prepare` (prepare_workshop), then `binderlite workshop export`.
#   2. A fresh machine (scripts/lib/machine.sh: debootstrapped Debian 12 running systemd in a container).
#   3. The bundle is copied in; EVERY network of the machine is disconnected (docker network disconnect) and
#      DNS must fail inside, fast.
#   4. There, with nothing else: tar -xf the bundle's install.sh && bash it; binderlite up --classroom (the
#      room's address 127.0.0.2, a warm pool of 10); each prepared link through the build API (/build/<link>,
#      resolved through the manifest: no git host answers there; scripts/lib/offline_launch.py with the
#      machine's venv) to a kernel.
#   5. The rest of the issue's offline test, on the same `up`: a NEW repository served from inside the machine
#      builds from the local package index and launches; one needing a package the mirror lacks fails within
#      seconds naming it; the classroom burst (30 launches at once, the pool's 10 ready first) all ready on the
#      first try. Then timings and the size.
#
#   flock /tmp/binderlite-integration.lock bash scripts/check-offline-laptop.sh   # hold the integration lock
#   BLTEST_OFFLINE_KEEP=1 ...   keep the machine afterwards, for a look inside
#
# Runs binderlite from this tree (PYTHONPATH) with the Python of BINDERLITE_PYTHON (default: the venv of
# scripts/install-debian.sh). Everything it makes is named bltest-offline-* (the machine, its image and
# volume, the prepared images on this host) and removed at the end, leftovers of an earlier run at the start.
# Exit code 0 only on PASS.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO_DIR/scripts/lib/machine.sh" # in_m, in_m_sh, machine_* (shared with the other machine checks)
IMAGE=bltest-offline-debian:12
MACHINE=bltest-offline-m
VOLUME=bltest-offline-docker # the machine's /var/lib/docker
PREFIX=bltest-offline-       # image_prefix on both sides: the prepared images' names match
REPO_PORT=18997              # the workshop's git repositories, on 127.0.0.1 (this host, then inside the machine)
PY="${BINDERLITE_PYTHON:-/opt/binderlite/venv/bin/python}"
KEEP="${BLTEST_OFFLINE_KEEP:-0}"
UP_TIMEOUT="${BLTEST_OFFLINE_UP_TIMEOUT:-600}"
DNS_FAIL_WITHIN_MS=5000
M_STATE=/var/lib/binderlite # the machine's state_dir (the default)
ROOM=127.0.0.2              # classroom_address in the machine: a loopback address, never a private one
WEB="http://$ROOM:8585"     # where `up --classroom` serves the web app
ATTENDEES=30                # the links file's count for the workshop link: the burst's size
POOL=10                     # warm_pool_size in the machine
MISSING_WITHIN=60           # seconds a build needing a package the mirror lacks may take to fail

WORK=""
HTTP_PID=""
T0=$(date +%s)
declare -a TIMINGS=()
declare -a LINKS=()
RESULT=FAIL
STARTED=0
BUNDLE_SIZE=""

log() { printf '[offline %4ss] %s\n' "$(($(date +%s) - T0))" "$*"; }
timed() { # timed <label> <command...>: run, record seconds
    local label=$1 start rc=0
    shift
    start=$(date +%s)
    "$@" || rc=$?
    TIMINGS+=("$(printf '%-28s %5ss' "$label" "$(($(date +%s) - start))")")
    return $rc
}
host_binderlite() { # binderlite from this tree, on this host's Docker, with the workshop's state dir
    env PYTHONPATH="$REPO_DIR" BINDERLITE_STATE_DIR="$WORK/state" BINDERLITE_REGISTRY= \
        BINDERLITE_IMAGE_PREFIX="$PREFIX" BINDERLITE_PYTHON_BASE_IMAGES= "$@"
}
remove_prepared_images() {
    local name
    for name in $(docker images --format '{{.Repository}}:{{.Tag}}' | grep "^$PREFIX" || true); do
        docker rmi -f "$name" >/dev/null 2>&1 || true
    done
}

finish() {
    local rc=$?
    trap - EXIT INT TERM
    if [ "$RESULT" != PASS ] && docker inspect "$MACHINE" >/dev/null 2>&1; then
        echo "---- /root/install.log (tail) ----"
        in_m_sh 'tail -n 30 /root/install.log 2>/dev/null' || true
        echo "---- /root/up.log (tail) ----"
        in_m_sh 'tail -n 30 /root/up.log 2>/dev/null' || true
        in_m_sh "for f in $M_STATE/logs/*; do [ -f \"\$f\" ] && { echo \"== \$f\"; tail -n 15 \"\$f\"; }; done" || true
    fi
    [ -n "$HTTP_PID" ] && kill "$HTTP_PID" 2>/dev/null || true
    if [ "$KEEP" = 1 ]; then
        log "keeping $MACHINE ($IMAGE, $VOLUME); remove with: docker rm -f $MACHINE; docker rmi $IMAGE; docker volume rm $VOLUME"
    else
        log "cleaning up $MACHINE, $IMAGE, $VOLUME and the ${PREFIX}* images"
        if docker inspect "$MACHINE" >/dev/null 2>&1; then
            in_m_sh 'kill -TERM "$(cat /root/up.pid)" && sleep 10' >/dev/null 2>&1 || true
            machine_stop_docker "$MACHINE"
        fi
        machine_remove "$MACHINE" "$IMAGE" "$VOLUME"
        remove_prepared_images
    fi
    [ -n "$WORK" ] && rm -rf "$WORK"
    echo
    echo "==== timings ===="
    printf '%s\n' "${TIMINGS[@]}"
    printf '%-28s %5ss\n' total "$(($(date +%s) - T0))"
    [ -n "$BUNDLE_SIZE" ] && echo "bundle size: $BUNDLE_SIZE"
    echo "==== offline laptop: $RESULT ===="
    if [ "$RESULT" = PASS ]; then exit 0; fi
    [ "$rc" -eq 0 ] && rc=1
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap, docker)" >&2; exit 2; }
command -v debootstrap >/dev/null || { echo "needs debootstrap on this host" >&2; exit 2; }
docker info >/dev/null 2>&1 || { echo "needs a running Docker daemon on this host" >&2; exit 2; }
[ -x "$PY" ] || { echo "needs binderlite's Python at $PY (BINDERLITE_PYTHON)" >&2; exit 2; }

machine_remove "$MACHINE" "$IMAGE" "$VOLUME"
remove_prepared_images
WORK=$(mktemp -d /tmp/bltest-offline-XXXXXX)
chmod 755 "$WORK" # the sandbox and service users enter the state dir inside it
mkdir -p "$WORK/state" "$WORK/served"

# ---- 1. the workshop, prepared on this host ------------------------------------------------------------------

# make_repository <name> <requirements line>: a local git repository with a pinned requirements.txt, and its
# bare copy served on 127.0.0.1:$REPO_PORT, where the link points.
make_repository() {
    local name=$1 requirement=$2 src="$WORK/src/$1"
    mkdir -p "$src"
    git -C "$src" init -q -b main
    echo "$requirement" >"$src/requirements.txt"
    printf '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n' >"$src/index.ipynb"
    git -C "$src" add requirements.txt index.ipynb
    git -C "$src" -c user.name=check -c user.email=check@localhost commit -q -m "$name"
    git clone -q --bare "$src" "$WORK/served/$name.git"
    git -C "$WORK/served/$name.git" update-server-info
}

# prepare_workshop: the instructor's command, `binderlite workshop prepare LINKS_FILE`: it builds each link,
# keeps its bare copy, writes the manifest and collects the package mirror.
prepare_workshop() {
    local url="http://127.0.0.1:$REPO_PORT/workshop.git"
    make_repository workshop "six==1.16.0"
    python3 -m http.server "$REPO_PORT" --bind 127.0.0.1 --directory "$WORK/served" \
        >"$WORK/http.log" 2>&1 &
    HTTP_PID=$!
    printf 'git/%s/main %s\n' "$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$url")" \
        "$ATTENDEES" >"$WORK/links.in"
    host_binderlite "$PY" -m binderlite.cli base-image >"$WORK/prepare.log" 2>&1
    host_binderlite "$PY" -m binderlite.cli workshop prepare --allow-local "$WORK/links.in" >>"$WORK/prepare.log" 2>&1 \
        || { tail -n 30 "$WORK/prepare.log"; return 1; }
    cut -d' ' -f1 "$WORK/links.in" >"$WORK/links.txt"
    kill "$HTTP_PID" && HTTP_PID=""
}
log "preparing a small workshop on this host (log: prepare.log)"
timed "prepare (host)" prepare_workshop
mapfile -t LINKS <"$WORK/links.txt"
log "prepared: ${LINKS[*]}"

log "binderlite workshop export"
timed "export" host_binderlite "$PY" -m binderlite.cli workshop export "$WORK/workshop.tar" >"$WORK/export.log" 2>&1 \
    || { tail -n 30 "$WORK/export.log"; exit 1; }
sed 's/^/    /' "$WORK/export.log"
BUNDLE_SIZE="$(du -h "$WORK/workshop.tar" | cut -f1) ($(stat -c %s "$WORK/workshop.tar") bytes)"
log "bundle: $BUNDLE_SIZE"

# ---- 2. a fresh machine -----------------------------------------------------------------------------------------
log "debootstrap bookworm (systemd) -> $IMAGE"
timed "debootstrap + import" machine_image "$IMAGE" "$WORK"
log "booting $MACHINE (systemd)"
STARTED=1
timed "boot" machine_boot "$MACHINE" "$IMAGE" "$VOLUME"
# Only for this nested test: the machine's Docker keeps its layers on the volume (ext4), with overlay2.
in_m_sh 'mkdir -p /etc/docker && echo "{\"storage-driver\": \"overlay2\"}" > /etc/docker/daemon.json'

# ---- 3. the bundle in, every network out ----------------------------------------------------------------------
log "copying the bundle into the machine"
timed "copy bundle in" docker cp "$WORK/workshop.tar" "$MACHINE:/root/workshop.tar"
docker cp "$REPO_DIR/scripts/lib/offline_launch.py" "$MACHINE:/root/offline_launch.py"

disconnect_all() {
    local network
    for network in $(docker inspect -f '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}' "$MACHINE"); do
        log "docker network disconnect $network $MACHINE"
        docker network disconnect "$network" "$MACHINE"
    done
    [ -z "$(docker inspect -f '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}}{{end}}' "$MACHINE")" ]
}
dns_fails_fast() {
    local ms
    ms=$(in_m_sh 'start=$(date +%s%N); if timeout 30 getent hosts pypi.org >/dev/null; then echo resolved; exit 0; fi
        echo $(( ($(date +%s%N) - start) / 1000000 ))')
    [ "$ms" != resolved ] || { echo "pypi.org still resolves inside the machine" >&2; return 1; }
    log "getent hosts pypi.org fails inside, in ${ms} ms; routes: $(in_m ip -o route | tr '\n' ';')"
    [ "$ms" -lt "$DNS_FAIL_WITHIN_MS" ] || { echo "DNS took ${ms} ms to fail (> $DNS_FAIL_WITHIN_MS)" >&2; return 1; }
}
disconnect_all
dns_fails_fast

# ---- 4. install, up, launch: nothing but the bundle ---------------------------------------------------------
# The laptop keeps the default registry (prepared here without one): import tagged each prepared image with the
# name this machine's settings give its link. Written before the install, so the import already names the
# images as `binderlite up` will look for them. The classroom: the room's address, a pool of $POOL, and servers
# of 512M so the pool is not bounded by this host's memory (at the default 2G, 10 would not fit next to a build).
in_m_sh "mkdir -p /etc/binderlite && printf '%s\n' 'allow_local_repos = true' 'image_prefix = \"$PREFIX\"' \
    'python_base_images = \"\"' 'classroom_address = \"$ROOM\"' 'warm_pool_size = $POOL' \
    'memory_limit = \"512M\"' > /etc/binderlite/binderlite.toml"
log "tar -xf workshop.tar binderlite-workshop/install.sh && bash binderlite-workshop/install.sh workshop.tar"
install_bundle() {
    in_m_sh 'cd /root && tar -xf workshop.tar binderlite-workshop/install.sh \
        && bash binderlite-workshop/install.sh workshop.tar >/root/install.log 2>&1'
}
timed "install.sh (with import)" install_bundle
in_m_sh 'grep -E "^(==>|  |Checked|Loading|Imported|Tagged)" /root/install.log' | sed 's/^/    /' || true
IMPORT_SECONDS=$(in_m_sh "sed -n 's/^  import: \\([0-9.]*\\) s$/\\1/p' /root/install.log" || true)
TIMINGS+=("$(printf '%-28s %5ss' "  of which import" "${IMPORT_SECONDS:-?}")")

log "binderlite up --classroom (log: /root/up.log in the machine)"
docker exec -d "$MACHINE" bash -c 'echo $$ >/root/up.pid; exec binderlite up --classroom >/root/up.log 2>&1'
wait_health() {
    local deadline=$(($(date +%s) + UP_TIMEOUT))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        if in_m curl -fsS -o /dev/null "$WEB/health" 2>/dev/null; then return 0; fi
        if ! in_m_sh 'kill -0 "$(cat /root/up.pid)"'; then echo "binderlite up exited" >&2; return 1; fi
        sleep 2
    done
    echo "/health did not answer within ${UP_TIMEOUT}s" >&2
    return 1
}
timed "up -> /health 200" wait_health
in_m_sh 'grep -E "^Classroom|^Sized|^Warning" /root/up.log' | sed 's/^/    /' || true

launcher() { # launcher <offline_launch.py arguments...>: in the machine, against the room's web app
    in_m /opt/binderlite/venv/bin/python /root/offline_launch.py --base "$WEB" "$@" | sed 's/^/    /'
    return "${PIPESTATUS[0]}"
}
launch_prepared() { launcher "${LINKS[@]}"; }
log "launching every prepared link through /build/ to a kernel (1+1)"
timed "first launch (all links)" launch_prepared

# ---- 5. the rest of the issue's offline test, on the same `up` ----------------------------------------------
# Two repositories nobody prepared, served from inside the machine (git came with the bundle; a bare copy after
# `git update-server-info`, over python3 -m http.server on 127.0.0.1): offline, a link to this machine itself
# resolves as always (allow_local_repos), a link anywhere else does not.
serve_new_repositories() {
    in_m_sh "set -e; mkdir -p /root/new/served; cd /root/new
        for pair in 'fresh six==1.16.0' 'missing more-itertools==10.1.0'; do
            name=\${pair%% *}; requirement=\${pair#* }
            git init -q -b main \$name && echo \"\$requirement\" > \$name/requirements.txt
            echo \"# \$name: not prepared, made offline\" > \$name/README.md
            git -C \$name add requirements.txt README.md
            git -C \$name -c user.name=check -c user.email=check@localhost commit -q -m \$name
            git clone -q --bare \$name served/\$name.git && git -C served/\$name.git update-server-info
        done"
    docker exec -d "$MACHINE" python3 -m http.server "$REPO_PORT" --bind 127.0.0.1 --directory /root/new/served
    local _
    for _ in $(seq 1 20); do
        in_m curl -fsS -o /dev/null "http://127.0.0.1:$REPO_PORT/fresh.git/HEAD" 2>/dev/null && return 0
        sleep 0.5
    done
    echo "the machine's git server on 127.0.0.1:$REPO_PORT did not answer" >&2
    return 1
}
new_link() { # new_link <name>: the git/ link of a repository served inside the machine
    printf 'git/%s/main' "$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' \
        "http://127.0.0.1:$REPO_PORT/$1.git")"
}
check_new_repository_builds_from_mirror() {
    # Built with six from the local package index (the `index` service of `binderlite up`), then a kernel.
    launcher --code $'import six\n1+1' "$(new_link fresh)"
}
check_missing_package_fails_fast() {
    # The build's `failed` event names the package and the mirror that lacks it, within seconds.
    launcher --expect-failure more-itertools --expect-failure "package mirror lacks" --within "$MISSING_WITHIN" \
        "$(new_link missing)"
}
check_classroom_burst_with_warm_pool() {
    # The pool holds $POOL ready servers, then $ATTENDEES launches of the workshop link at once through the
    # room's address: all ready on the first try, the pool's servers handed out, 3 of them run a kernel.
    launcher --wait-pool "$POOL" --pool-db "$M_STATE/run/pool.sqlite" --within "$UP_TIMEOUT" || return 1
    launcher --burst "$ATTENDEES" --min-pooled "$POOL" --kernels 3 "${LINKS[0]}"
}
log "classroom burst: $POOL warm servers, then $ATTENDEES launches at once through $WEB"
timed "burst of $ATTENDEES (pool of $POOL)" check_classroom_burst_with_warm_pool
log "two repositories nobody prepared, served from inside the machine on 127.0.0.1:$REPO_PORT"
serve_new_repositories
log "a new repository (six==1.16.0) builds from the local package index and launches"
timed "new repository -> kernel" check_new_repository_builds_from_mirror
log "a repository needing more-itertools (not mirrored) fails within ${MISSING_WITHIN}s, naming it"
timed "missing package -> failed" check_missing_package_fails_fast

RESULT=PASS
