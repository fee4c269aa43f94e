#!/usr/bin/env bash
# The lab server, end to end: the Ansible role (ansible/site.yml) converges a
# freshly debootstrapped Debian 12 running systemd, converges again with
# changed=0, and then a user outside the machine reaches it through the one
# HTTPS address only:
#   - every unit active; systemd-analyze verify of every unit; only Caddy
#     listens on a public (wildcard) address;
#   - HTTPS with the made certificate, checked against the CA the play printed
#     (fingerprint compared); HTTP redirects to HTTPS;
#   - a launch through https://<name>/build/… (the event stream through Caddy)
#     to a kernel that answers 2 for 1+1 over wss; headless Chromium, trusting
#     the CA, opens https://<name>/v2/… and lands in JupyterLab on that origin;
#   - reboot (docker restart of the machine): units come back, and the server
#     launched before is served again or cleaned up (printed, asserted);
#   - crash: kill -9 of each service's main process, systemd restarts it, a
#     launch works;
#   - upgrade: converge version A, launch, converge version B (HEAD) while a
#     poller asks the server through HTTPS every 0.5 s (no failure allowed),
#     the server answers after; rollback to A (units active, a launch works).
# plus ansible-lint --profile production ansible/ and --syntax-check with the
# k3s example inventory; and at the end the role's k3s part on the same machine
# (scripts/lib/lab_k3s.sh): --check of every k3s task with placeholder k3s
# files, a real converge of the files a k3s node gets (twice: changed=0), up to
# but not including starting k3s (no k3s binary can be fetched here).
#
# Why a script on the fresh-machine approach and not Molecule: it reuses the
# booted-systemd container that scripts/check-fresh-machine.sh already runs
# here with a nested Docker engine on a volume; Molecule's docker driver would
# need the same privileged settings and adds a layer that does nothing more.
# Ansible reaches the machine with the community.docker.docker connection
# (docker exec from this host, no SSH server in the machine, so nothing but
# Caddy listens publicly): the controller is this host, as an administrator's
# laptop would be, and the wheel is built here from the committed tree.
#
#   bash scripts/check-lab-server.sh       # versions: B = HEAD, A = BLTEST_LAB_VERSION_A
#   BLTEST_LAB_KEEP=1 ...                  # keep the machine afterwards, for a look inside
#   BLTEST_LAB_REUSE=1 ...                 # converge a kept machine again (development)
#
# Everything is named bltest-lab-* and removed at the end (and leftovers of an
# earlier run at the start). Prints timings and PASS/FAIL; exit 0 only on PASS.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO_DIR/scripts/lib/machine.sh"
source "$REPO_DIR/scripts/lib/lab_k3s.sh"

IMAGE=bltest-lab-debian:12
MACHINE=bltest-lab-m
VOLUME=bltest-lab-docker
NAME=binder.bltest.test          # the public name (reserved .test TLD)
HTTPS_PORT=18443                 # the machine's 443 and 80, published on this host's 127.0.0.1
HTTP_PORT=18080
REPO_PORT=18999                  # the git repository served inside the machine
KEEP="${BLTEST_LAB_KEEP:-0}"
REUSE="${BLTEST_LAB_REUSE:-0}"
ANSIBLE_VENV="${ANSIBLE_VENV:-/opt/binderlite/ansible-venv}"
USER_PY="${BLTEST_LAB_PYTHON:-/opt/binderlite/venv/bin/python}"
VERSION_B=$(git -C "$REPO_DIR" rev-parse HEAD)
# A: the last commit that changed the committed units (or HEAD's parent if that is HEAD): from A to B
# only binderlite's own code and the venv its units point at change, so the proxy must keep running.
VERSION_A="${BLTEST_LAB_VERSION_A:-$(git -C "$REPO_DIR" log -n 1 --format=%H -- systemd/)}"
[ "$VERSION_A" = "$VERSION_B" ] && VERSION_A=$(git -C "$REPO_DIR" rev-parse HEAD^)
SPEC="git/http%3A%2F%2F127.0.0.1%3A${REPO_PORT}%2Ffixture.git/main"

WORK=""
T0=$(date +%s)
declare -a TIMINGS=()
RESULT=FAIL
STEP="start"

log() { printf '[lab %4ss] %s\n' "$(($(date +%s) - T0))" "$*"; }
fail() { echo "!! FAIL ($STEP): $*" >&2; exit 1; }
timed() { # timed <label> <command...>: run, record seconds
    local label=$1 start rc=0
    shift
    start=$(date +%s)
    "$@" || rc=$?
    TIMINGS+=("$(printf '%-34s %5ss' "$label" "$(($(date +%s) - start))")")
    return $rc
}

remove_all() {
    machine_remove "$MACHINE" "$IMAGE" "$VOLUME"
}

show_logs() {
    docker inspect "$MACHINE" >/dev/null 2>&1 || return 0
    echo "---- systemctl --failed / binderlite units ----"
    in_m_sh 'systemctl --no-pager --failed; systemctl --no-pager status "binderlite*" caddy 2>&1 | tail -n 60' || true
    echo "---- journal of binderlite's units (tail) ----"
    in_m_sh 'journalctl --no-pager -n 80 -u "binderlite*" -u caddy' || true
}

finish() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "${POLLER_PID:-}" ] && kill "$POLLER_PID" 2>/dev/null
    [ "$RESULT" != PASS ] && show_logs
    if [ "$KEEP" = 1 ]; then
        log "keeping $MACHINE ($IMAGE, $VOLUME); remove with: docker rm -f -v $MACHINE; docker rmi $IMAGE; docker volume rm $VOLUME"
    else
        log "cleaning up $MACHINE, $IMAGE and $VOLUME"
        machine_stop_docker "$MACHINE"
        remove_all
    fi
    [ -n "$WORK" ] && rm -rf "$WORK"
    echo
    echo "==== timings ===="
    printf '%s\n' "${TIMINGS[@]}"
    printf '%-34s %5ss\n' total "$(($(date +%s) - T0))"
    echo "==== $RESULT (lab server, A=${VERSION_A:0:12} B=${VERSION_B:0:12}) ===="
    if [ "$RESULT" = PASS ]; then exit 0; fi
    [ "$rc" -eq 0 ] && rc=1
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap, docker)" >&2; exit 2; }
command -v debootstrap >/dev/null || { echo "needs debootstrap on this host" >&2; exit 2; }
command -v certutil >/dev/null || { echo "needs certutil on this host (apt-get install libnss3-tools)" >&2; exit 2; }
docker info >/dev/null 2>&1 || { echo "needs a running Docker daemon on this host" >&2; exit 2; }
[ -n "$VERSION_A" ] || { echo "no version A (set BLTEST_LAB_VERSION_A to an earlier commit with the units)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/bltest-lab-XXXXXX)
CA="$WORK/ca/$MACHINE-ca.crt"

# 0. The controller's Ansible, and the lint every role change must pass.
STEP="ansible-lint"
timed "ansible venv" bash "$REPO_DIR/scripts/ansible-venv.sh" >/dev/null
log "ansible-lint --profile production ansible/"
lint() { (cd "$REPO_DIR" && "$ANSIBLE_VENV/bin/ansible-lint" --profile production ansible/ 2>&1 | sed '/PATH altered/d'); }
timed "ansible-lint (production)" lint || fail "ansible-lint"
"$ANSIBLE_VENV/bin/ansible-playbook" -i "$REPO_DIR/ansible/inventory/example-k3s/hosts.yml" --syntax-check \
    "$REPO_DIR/ansible/site.yml" >/dev/null || fail "syntax-check with the k3s example inventory"
log "ansible-playbook --syntax-check with the k3s example inventory: clean"

# 1. A fresh Debian 12 with systemd, booted with a nested Docker on a volume;
#    443 and 80 published on this host's 127.0.0.1 (where DNS would point users);
#    SIGRTMIN+3 asks systemd to shut down, so `docker restart` is a clean reboot.
if [ "$REUSE" = 1 ] && docker inspect "$MACHINE" >/dev/null 2>&1; then
    log "reusing $MACHINE"
else
    STEP="machine"
    remove_all
    log "debootstrap bookworm (systemd) -> $IMAGE"
    timed "debootstrap + import" machine_image "$IMAGE" "$WORK" || fail "debootstrap"
    log "booting $MACHINE (systemd)"
    timed "boot" machine_boot "$MACHINE" "$IMAGE" "$VOLUME" \
        -p "127.0.0.1:$HTTPS_PORT:443" -p "127.0.0.1:$HTTP_PORT:80" --stop-signal SIGRTMIN+3 || fail "boot"
    machine_trust_host_ca "$MACHINE" overlay2
fi

# 2. The inventory an administrator would write (plus this test's choices:
#    local repositories allowed, only the bookworm base image, the CA fetched).
mkdir -p "$WORK/inventory/group_vars" "$WORK/ca"
cat >"$WORK/inventory/hosts.yml" <<EOF
binderlite:
  hosts:
    $MACHINE:
      ansible_connection: community.docker.docker
      ansible_python_interpreter: /usr/bin/python3
      ansible_become: false  # docker exec is root already (the machine has no sudo)
EOF
cat >"$WORK/inventory/group_vars/binderlite.yml" <<EOF
binderlite_server_name: $NAME
binderlite_tls: selfsigned
binderlite_tls_ca_fetch_dir: $WORK/ca
binderlite_checkout_dir: $REPO_DIR
binderlite_wheel_cache: $WORK/wheels
binderlite_allow_local_repos: true
binderlite_python_base_images: ""
EOF

converge() { # converge <version> <log name> [-e ...]: run the playbook; the recap's changed= count in $WORK/<name>.changed
    local version=$1 name=$2 rc=0
    shift 2
    ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1 ANSIBLE_HOST_KEY_CHECKING=0 \
        "$ANSIBLE_VENV/bin/ansible-playbook" -i "$WORK/inventory/hosts.yml" "$REPO_DIR/ansible/site.yml" \
        -e "binderlite_version=$version" "$@" >"$WORK/$name.log" 2>&1 || rc=$?
    grep -A3 '^PLAY RECAP' "$WORK/$name.log" | sed -n 2p | sed 's/.*changed=\([0-9]*\).*/\1/' >"$WORK/$name.changed"
    if [ $rc -ne 0 ]; then
        grep -B2 -A25 -E '^(fatal|failed):|FAILED!' "$WORK/$name.log" | tail -n 60
        return $rc
    fi
}

# 3. Converge B, then again: nothing may change.
STEP="converge"
log "converge version B (${VERSION_B:0:12}) (log: $WORK/converge.log)"
timed "converge (fresh machine)" converge "$VERSION_B" converge || fail "the first converge failed"
grep -F 'the CA certificate is' "$WORK/converge.log" | head -n 1 | sed 's/^ *"msg": //' >"$WORK/fingerprint"
log "play printed: $(cat "$WORK/fingerprint")"
STEP="idempotence"
timed "converge again (idempotence)" converge "$VERSION_B" converge2 || fail "the second converge failed"
CHANGED=$(cat "$WORK/converge2.changed")
log "second converge: changed=$CHANGED"
if [ "$CHANGED" != 0 ]; then
    grep -E '^changed:' -B1 "$WORK/converge2.log" | head -n 30
    fail "the second converge changed $CHANGED tasks"
fi

# 4. The machine, from inside: units, unit files, listening sockets.
UNITS="binderlite-prepare.service binderlite-registry.service binderlite-proxy.service binderlite-hub.service binderlite-web.service binderlite-scheduler.service"
SERVICES="binderlite-registry.service binderlite-proxy.service binderlite-hub.service binderlite-web.service binderlite-scheduler.service"
units_active() { in_m_sh "systemctl is-active $UNITS binderlite.target caddy.service docker.service" >/dev/null; }
wait_units() {
    local _
    for _ in $(seq 1 60); do units_active && return 0; sleep 2; done
    in_m_sh "systemctl is-active $UNITS binderlite.target caddy.service docker.service" || true
    return 1
}
STEP="units"
units_active || fail "not every unit is active: $(in_m_sh "systemctl is-active $UNITS binderlite.target caddy.service" | tr '\n' ' ')"
log "every unit active: $UNITS binderlite.target caddy.service"
in_m_sh "cd /etc/systemd/system && systemd-analyze verify $UNITS binderlite.target" \
    || fail "systemd-analyze verify found problems in the units"
log "systemd-analyze verify: clean"
STEP="listening"
# Listening TCP sockets as "<address:port> <unit>" (the socket's cgroup names its unit).
in_m ss -Htlne | awk '{u = "?"; for (i = 1; i <= NF; i++) if ($i ~ /^cgroup:/) { n = split($i, p, "/"); u = p[n] } print $4, u}' \
    >"$WORK/ss.txt"
sed 's/^/    /' "$WORK/ss.txt"
# Wildcard listeners (0.0.0.0, *, [::]) must be Caddy's 80 and 443, nothing else.
grep -E '^(0\.0\.0\.0|\*|\[::\]):' "$WORK/ss.txt" >"$WORK/public.txt" || true
BAD=$(grep -vE '^(0\.0\.0\.0|\*|\[::\]):(80|443) caddy\.service$' "$WORK/public.txt" || true)
[ -z "$BAD" ] || fail "listening on a public address besides Caddy: $BAD"
grep -qE ':443 caddy\.service$' "$WORK/public.txt" || fail "Caddy does not listen on 443"
log "public listeners: only Caddy on 80 and 443"

# The operator's view on the server: binderlite status (exit 0 only when all is up), a backup while it serves.
# The name resolves to the machine itself there, as the lab's DNS would make it.
STEP="status"
in_m_sh "grep -q ' $NAME\$' /etc/hosts || echo '127.0.0.1 $NAME' >>/etc/hosts"
in_m binderlite status >"$WORK/status.txt" 2>&1 || { cat "$WORK/status.txt"; fail "binderlite status says something is down"; }
sed 's/^/    /' "$WORK/status.txt"
in_m binderlite backup /root/bltest-lab-backup.tar.gz >/dev/null || fail "binderlite backup while serving"
MODE=$(in_m stat -c %a /root/bltest-lab-backup.tar.gz)
[ "$MODE" = 600 ] || fail "the backup file is mode $MODE, not 600"
log "binderlite status: all up; binderlite backup while serving: $(in_m tar -tzf /root/bltest-lab-backup.tar.gz | wc -l) files, mode 600"

# 5. The certificate, against the CA the play printed.
STEP="tls"
[ -s "$CA" ] || fail "the play fetched no CA certificate"
FPR=$(openssl x509 -in "$CA" -noout -fingerprint -sha256)
grep -qF "$FPR" "$WORK/fingerprint" || fail "the fetched CA ($FPR) is not the one the play printed"
CURL=(curl -fsS --cacert "$CA" --connect-to "$NAME:443:127.0.0.1:$HTTPS_PORT" --connect-to "$NAME:80:127.0.0.1:$HTTP_PORT")
HEALTH=$("${CURL[@]}" "https://$NAME/health") || fail "https://$NAME/health with --cacert"
log "curl --cacert <CA> https://$NAME/health -> $HEALTH"
"${CURL[@]}" -o /dev/null "https://$NAME/versions" || fail "https://$NAME/versions"
if curl -fsS -o /dev/null --connect-to "$NAME:443:127.0.0.1:$HTTPS_PORT" "https://$NAME/health" 2>/dev/null; then
    fail "the certificate verified without the CA"
fi
user() { PYTHONPATH="$REPO_DIR" "$USER_PY" "$REPO_DIR/scripts/lib/lab_user.py" --name "$NAME" --ca "$CA" \
    --port "443=$HTTPS_PORT" --port "80=$HTTP_PORT" "$@"; }
REDIRECT=$(user redirect) || fail "http://$NAME/"
log "http://$NAME/health -> $REDIRECT"
case "$REDIRECT" in 30[178]\ https://$NAME/health) ;; *) fail "HTTP does not redirect to HTTPS: $REDIRECT" ;; esac

# 6. A launch through the one HTTPS address, of a git repository served inside the machine.
STEP="launch"
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
launch_and_run() { # launch_and_run <label>: a launch over HTTPS, 1+1 on its kernel over wss; sets URL and TOKEN
    local out result
    out=$(user launch "$SPEC") || return 1
    URL=${out% *}
    TOKEN=${out#* }
    result=$(user kernel "$URL" "$TOKEN") || return 1
    log "$1: $URL -> kernel says 1+1 = $result"
    [ "$result" = 2 ]
}
timed "launch over HTTPS (build + start)" launch_and_run "launch" || fail "launch over HTTPS"
FIRST_URL=$URL
FIRST_TOKEN=$TOKEN

STEP="browser"
timed "Chromium lands in JupyterLab" user browser "$SPEC" >"$WORK/browser.txt" || fail "Chromium"
log "Chromium, trusting the CA, landed on $(cat "$WORK/browser.txt")"

# 7. Reboot: all units come back; the server launched before is served again, or cleaned up.
STEP="reboot"
reboot_machine() {
    docker restart -t 120 "$MACHINE" >/dev/null || return 1
    machine_wait_systemd "$MACHINE" || return 1
    wait_units
}
timed "reboot -> all units active" reboot_machine || fail "units after a reboot"
docker exec -d "$MACHINE" python3 -m http.server "$REPO_PORT" --bind 127.0.0.1 --directory /root/served
wait_health() {
    local _
    for _ in $(seq 1 60); do "${CURL[@]}" -o /dev/null "https://$NAME/health" 2>/dev/null && return 0; sleep 2; done
    return 1
}
wait_health || fail "https://$NAME/health after the reboot"
CODE=$(user status "$FIRST_URL" "$FIRST_TOKEN" || echo error)
if [ "$CODE" = 200 ]; then
    log "after the reboot the server launched before answers again (200)"
else
    # Its container did not come back with the machine: the hub forgot the server (JupyterHub answers
    # 424 or 503 for a server that is not running), no container of it is left, and a new launch works.
    log "after the reboot the server launched before is gone (HTTP $CODE): its container did not survive"
    LEFT=$(in_m docker ps -a --filter name=binderlite- --format '{{.Names}} {{.Status}}')
    [ -z "$LEFT" ] || fail "containers of servers from before the reboot are left: $LEFT"
    log "no container of it is left; the hub answers $CODE for it"
    case "$CODE" in 424 | 503 | 404) ;; *) fail "the old server's URL answers $CODE" ;; esac
fi
timed "launch after reboot" launch_and_run "launch after the reboot" || fail "a launch after the reboot"

# 8. Crash: kill -9 each service's main process; systemd brings it back.
STEP="crash"
crash_all() {
    local unit pid new _
    for unit in $SERVICES; do
        pid=$(in_m systemctl show -p MainPID --value "$unit")
        [ "$pid" -gt 0 ] || { echo "$unit has no main process" >&2; return 1; }
        in_m kill -9 "$pid"
        for _ in $(seq 1 60); do
            new=$(in_m systemctl show -p MainPID --value "$unit")
            if [ "$new" -gt 0 ] && [ "$new" != "$pid" ] && in_m systemctl is-active --quiet "$unit"; then break; fi
            sleep 1
        done
        in_m systemctl is-active --quiet "$unit" || { echo "$unit did not come back" >&2; return 1; }
        log "kill -9 $unit ($pid): restarted as $new"
    done
    wait_units && wait_health
}
timed "crash of every service" crash_all || fail "restart after kill -9"
timed "launch after the crashes" launch_and_run "launch after the crashes" || fail "a launch after the crashes"

# 9. Upgrade A -> B with a server answering throughout, then roll back to A.
STEP="upgrade"
log "converge version A (${VERSION_A:0:12})"
timed "converge A" converge "$VERSION_A" converge-a || fail "converge A"
wait_units || fail "units after converging A"
launch_and_run "launch on A" || fail "a launch on A"
PROXY_PID=$(in_m systemctl show -p MainPID --value binderlite-proxy.service)
REGISTRY_PID=$(in_m systemctl show -p MainPID --value binderlite-registry.service)
rm -f "$WORK/stop-poll"
user poll "$URL" "$TOKEN" "$WORK/stop-poll" >"$WORK/poll.txt" 2>"$WORK/poll.err" &
POLLER_PID=$!
sleep 2
log "converge version B (${VERSION_B:0:12}) while polling the server every 0.5 s"
timed "upgrade A -> B (converge)" converge "$VERSION_B" converge-b || fail "upgrade to B"
wait_units || fail "units after the upgrade"
sleep 3
touch "$WORK/stop-poll"
wait "$POLLER_PID" || fail "the poller"
POLLER_PID=""
read -r POLL_OK POLL_FAILED <"$WORK/poll.txt"
log "server polled during the upgrade: $POLL_OK answered, $POLL_FAILED failed"
[ "$POLL_FAILED" = 0 ] && [ "$POLL_OK" -gt 0 ] || { cat "$WORK/poll.err"; fail "the server did not answer throughout the upgrade"; }
CODE=$(user status "$URL" "$TOKEN")
[ "$CODE" = 200 ] || fail "the server after the upgrade: $CODE"
log "the server answers after the upgrade; restarted: $(grep -E '^(changed|ok): .*=> \(item=binderlite-' "$WORK/converge-b.log" \
    | grep -o 'item=[a-z-]*\.service' | tr '\n' ' ')"
[ "$(in_m systemctl show -p MainPID --value binderlite-proxy.service)" = "$PROXY_PID" ] \
    || fail "the upgrade restarted the proxy (users' connections would drop)"
[ "$(in_m systemctl show -p MainPID --value binderlite-registry.service)" = "$REGISTRY_PID" ] \
    || fail "the upgrade restarted the registry"
log "proxy and registry kept running through the upgrade; current -> $(in_m readlink /opt/binderlite/current)"
STEP="rollback"
timed "rollback B -> A (converge)" converge "$VERSION_A" converge-rollback || fail "rollback to A"
wait_units || fail "units after the rollback"
CURRENT=$(in_m readlink /opt/binderlite/current)
case "$CURRENT" in *"-${VERSION_A:0:12}") ;; *) fail "current points at $CURRENT after the rollback" ;; esac
timed "launch after the rollback" launch_and_run "launch after the rollback" || fail "a launch after the rollback"

# 10. A given certificate (made here by another CA, as a lab's own would be): Caddy serves it after a converge.
STEP="tls-given"
mkdir -p "$WORK/given"
openssl req -x509 -newkey rsa:2048 -sha256 -nodes -days 30 -subj "/CN=bltest lab CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
    -keyout "$WORK/given/ca.key" -out "$WORK/given/ca.crt" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -sha256 -nodes -days 30 -CA "$WORK/given/ca.crt" -CAkey "$WORK/given/ca.key" \
    -subj "/CN=$NAME" -addext "subjectAltName=DNS:$NAME" -addext extendedKeyUsage=serverAuth \
    -keyout "$WORK/given/server.key" -out "$WORK/given/server.crt" 2>/dev/null
timed "converge with a given certificate" converge "$VERSION_A" converge-given -e binderlite_tls=given \
    -e "binderlite_tls_certificate=$WORK/given/server.crt" -e "binderlite_tls_key=$WORK/given/server.key" \
    || fail "converge with a given certificate"
given_served() {
    local _
    for _ in $(seq 1 20); do
        curl -fsS -o /dev/null --cacert "$WORK/given/ca.crt" --connect-to "$NAME:443:127.0.0.1:$HTTPS_PORT" \
            "https://$NAME/health" 2>/dev/null && return 0
        sleep 1
    done
    return 1
}
given_served || fail "Caddy does not serve the given certificate"
log "binderlite_tls=given: https://$NAME/health verifies with the given certificate's CA"

# 11. The role's k3s part on this machine: --check of every k3s task, then the node's files for real.
STEP="k3s"
timed "k3s part (--check, node files)" lab_k3s_check || fail "the role's k3s part"

RESULT=PASS
