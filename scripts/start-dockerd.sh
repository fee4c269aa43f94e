#!/usr/bin/env bash
# Start the Docker daemon if it is not answering. Uses systemd where it runs,
# otherwise starts dockerd in the background after clearing stale pid files
# left by an abrupt stop.
set -euo pipefail

if docker info >/dev/null 2>&1; then exit 0; fi

if [ -d /run/systemd/system ]; then
    systemctl start docker
else
    for pidfile in /var/run/docker.pid /run/docker/containerd/containerd.pid /var/run/docker/containerd/containerd.pid; do
        if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            echo "Removing stale pid file $pidfile"
            rm -f "$pidfile"
        fi
    done
    mkdir -p /var/log
    # The daemon keeps none of this shell's other open files (a caller's lock, a pipe it waits on).
    for fd in /proc/$$/fd/*; do
        fd=${fd##*/}
        if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    nohup dockerd >/var/log/binderlite-dockerd.log 2>&1 &
fi

for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then exit 0; fi
    sleep 1
done
echo "Docker daemon did not start within 60 s; see /var/log/binderlite-dockerd.log" >&2
exit 1
