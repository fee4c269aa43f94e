#!/usr/bin/env bash
# The controller's Ansible, in a venv of its own (never in binderlite's runtime deps):
# ansible (ansible-core with the community collections: community.docker gives the
# scenario's docker connection) and ansible-lint. Idempotent.
#   bash scripts/ansible-venv.sh            # -> /opt/binderlite/ansible-venv
#   ANSIBLE_VENV=/some/dir bash ...
set -euo pipefail
VENV="${ANSIBLE_VENV:-/opt/binderlite/ansible-venv}"
# ansible-core 2.18 is the last line whose controller runs on Debian 12's Python 3.11.
SPECS=("ansible>=11,<12" "ansible-lint>=24.12,<26" "build>=1")
if [ ! -x "$VENV/bin/python" ]; then
    /usr/bin/python3 -m venv "$VENV"
fi
if ! "$VENV/bin/ansible-lint" --version >/dev/null 2>&1 || ! "$VENV/bin/python" -m build --version >/dev/null 2>&1; then
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q "${SPECS[@]}"
fi
"$VENV/bin/ansible-playbook" --version >/dev/null
