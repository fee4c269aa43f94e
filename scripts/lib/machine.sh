# A whole Debian 12 machine in a container, for the machine checks
# (scripts/check-fresh-machine.sh, scripts/check-lab-server.sh): a
# debootstrapped image running systemd, booted with a nested Docker engine
# whose /var/lib/docker is a volume (ext4, so it uses overlay2 as a real
# machine does). Only for these nested tests the machine gets NET_ADMIN (its
# dockerd sets up iptables and a bridge) and this host's CA bundle (a real
# machine behind the inspecting proxy already has it in its trust store).
# Source it; the functions use $MACHINE for in_m/in_m_sh.

MACHINE_MIRROR="${MACHINE_MIRROR:-http://deb.debian.org/debian}"

in_m() { docker exec "$MACHINE" "$@"; }
in_m_sh() { docker exec "$MACHINE" bash -c "$1"; }

# machine_image <image> <work dir>: debootstrap bookworm with systemd and import it as <image>.
# With BLTEST_MACHINE_IMAGE set (.ci/run sets it, and removes that image before and after), the
# first check debootstraps into it and the others tag it: one debootstrap for every machine check.
machine_image() {
    local image=$1 shared=${BLTEST_MACHINE_IMAGE:-}
    if [ -n "$shared" ]; then
        docker image inspect "$shared" >/dev/null 2>&1 || machine_debootstrap "$shared" "$2" || return 1
        docker tag "$shared" "$image"
        return
    fi
    machine_debootstrap "$image" "$2"
}

machine_debootstrap() {
    local image=$1 rootfs=$2/rootfs
    debootstrap --include=systemd,systemd-sysv,python3,dbus,ca-certificates,iproute2 \
        bookworm "$rootfs" "$MACHINE_MIRROR" >"$2/debootstrap.log" 2>&1 \
        || { tail -n 20 "$2/debootstrap.log"; return 1; }
    rm -rf "$rootfs/var/cache/apt/archives"/*.deb
    tar -C "$rootfs" -c . | docker import - "$image" >/dev/null || return 1
    rm -rf "$rootfs"
}

# machine_wait_systemd <machine>: until systemd says running or degraded (60 s).
machine_wait_systemd() {
    local state="" _
    for _ in $(seq 1 60); do
        state=$(docker exec "$1" systemctl is-system-running 2>/dev/null || true)
        case "$state" in running | degraded) return 0 ;; esac
        sleep 1
    done
    echo "systemd did not come up in $1 (state: $state)" >&2
    return 1
}

# machine_boot <machine> <image> <volume> [docker run options...]: boot it, /var/lib/docker on <volume>.
machine_boot() {
    local machine=$1 image=$2 volume=$3
    shift 3
    docker run -d --name "$machine" --hostname "$machine" \
        --cap-add SYS_ADMIN --cap-add NET_ADMIN --security-opt seccomp=unconfined --cgroupns=host \
        --tmpfs /run --tmpfs /run/lock -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
        -v "$volume:/var/lib/docker" "$@" \
        "$image" /sbin/init >/dev/null || return 1
    machine_wait_systemd "$machine"
}

# machine_trust_host_ca <machine> <storage driver>: this host's CA bundle into the machine's
# trust store; the nested Docker's storage driver.
machine_trust_host_ca() {
    docker cp /etc/ssl/certs/ca-certificates.crt "$1:/usr/local/share/ca-certificates/outer-host-bundle.crt"
    docker exec "$1" bash -c 'update-ca-certificates >/dev/null 2>&1; mkdir -p /etc/docker && echo "{\"storage-driver\": \"'"$2"'\"}" > /etc/docker/daemon.json'
}

# machine_stop_docker <machine>: stop the nested daemon so its layers unmount cleanly.
machine_stop_docker() {
    docker inspect "$1" >/dev/null 2>&1 || return 0
    docker exec "$1" bash -c 'systemctl stop binderlite.target docker docker.socket containerd' >/dev/null 2>&1 || true
}

# machine_remove <machine> <image> <volume>
machine_remove() {
    docker rm -f -v "$1" >/dev/null 2>&1 || true
    docker rmi -f "$2" >/dev/null 2>&1 || true
    docker volume rm -f "$3" >/dev/null 2>&1 || true
}
