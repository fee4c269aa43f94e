# The Ansible role's k3s part on the lab server's machine (scripts/check-lab-server.sh sources this):
# no k3s binary or Kubernetes image can be fetched here, so the administrator's files are placeholders
# (a k3s "binary" that only prints a version, an empty images tarball, an install script that fails if
# anything runs it) and what k3s itself would write when it starts (the join token, /etc/rancher/k3s/k3s.yaml
# in k3s's format) is placed in the machine by hand. Then:
#   1. ansible-playbook --check --tags k3s with an inventory of three groups: the machine is the binderlite
#      host and the k3s server, and (under a second name, the same container) a k3s agent; every k3s task
#      of the four plays runs in check mode, the install scripts are not run;
#   2. a real converge of the server's file-placing tasks (--tags k3s_files: binary, images, install script,
#      registries.yaml, config.yaml, the registry's CA), then again with changed=0, then the placed files
#      are checked: modes, the binary runs, registries.yaml and config.yaml validate against the schemas
#      written from k3s's documentation (tests/schemas/);
#   3. the k3s files are removed again.
# Needs: MACHINE, WORK, REPO_DIR, ANSIBLE_VENV, USER_PY, in_m/in_m_sh, log.

lab_k3s_files() { # the administrator's files, as placeholders, in $WORK/k3s-files
    local dir=$WORK/k3s-files
    mkdir -p "$dir"
    printf '#!/bin/sh\n# placeholder of the k3s binary: the check never starts k3s\necho "k3s version v0.0.0+placeholder"\n' \
        >"$dir/k3s"
    printf '#!/bin/sh\necho "placeholder install script: nothing may run it in this check" >&2\nexit 1\n' >"$dir/install.sh"
    chmod 0755 "$dir/k3s" "$dir/install.sh"
    tar -cf "$dir/k3s-airgap-images-amd64.tar" -T /dev/null
}

lab_k3s_inventory() { # an inventory with the k3s groups, in $WORK/k3s-inventory
    local inv=$WORK/k3s-inventory
    mkdir -p "$inv/group_vars"
    cat >"$inv/hosts.yml" <<EOF
binderlite:
  hosts:
    $MACHINE:
k3s_server:
  hosts:
    $MACHINE:
k3s_agents:
  hosts:
    bltest-lab-k3s-agent:
      ansible_host: $MACHINE
all:
  vars:
    ansible_connection: community.docker.docker
    ansible_python_interpreter: /usr/bin/python3
    ansible_become: false
EOF
    cat >"$inv/group_vars/all.yml" <<EOF
binderlite_k3s_enabled: true
binderlite_k3s_binary: $WORK/k3s-files/k3s
binderlite_k3s_images: $WORK/k3s-files/k3s-airgap-images-amd64.tar
binderlite_k3s_install_script: $WORK/k3s-files/install.sh
binderlite_k3s_server_address: 192.0.2.10
binderlite_k3s_binderlite_address: 192.0.2.10
binderlite_k3s_registry_tls: true
binderlite_tls: selfsigned
binderlite_checkout_dir: $REPO_DIR
binderlite_wheel_cache: $WORK/wheels
EOF
}

lab_k3s_play() { # lab_k3s_play <log name> [ansible-playbook options...]: the recap's changed= sum in $WORK/<name>.changed
    local name=$1 rc=0
    shift
    # pipelining: a module goes through one docker exec, not three (the step's time is counted)
    ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1 ANSIBLE_PIPELINING=1 ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks \
        "$ANSIBLE_VENV/bin/ansible-playbook" -i "$WORK/k3s-inventory/hosts.yml" \
        "$REPO_DIR/ansible/site.yml" "$@" >"$WORK/$name.log" 2>&1 || rc=$?
    sed -n '/^PLAY RECAP/,$p' "$WORK/$name.log" | grep -o 'changed=[0-9]*' | cut -d= -f2 \
        | awk '{s += $1} END {print s + 0}' >"$WORK/$name.changed"
    if [ $rc -ne 0 ]; then
        grep -B2 -A20 -E '^(fatal|failed):|ERROR!' "$WORK/$name.log" | tail -n 40
        return $rc
    fi
}

lab_k3s_validate() { # lab_k3s_validate <file in the machine> <schema>: YAML, valid against tests/schemas/<schema>
    docker cp "$MACHINE:$1" "$WORK/k3s-placed.yaml" >/dev/null || return 1
    "$USER_PY" - "$WORK/k3s-placed.yaml" "$REPO_DIR/tests/schemas/$2" <<'EOF'
import json, sys
import jsonschema, yaml
document = yaml.safe_load(open(sys.argv[1]))
jsonschema.Draft202012Validator(json.load(open(sys.argv[2]))).validate(document)
EOF
}

lab_k3s_check() {
    local changed modes
    lab_k3s_files
    lab_k3s_inventory
    # What k3s writes when it starts, which the agent's and the hub's tasks read.
    in_m_sh 'mkdir -p /var/lib/rancher/k3s/server /etc/rancher/k3s
        echo "K10placeholder::server:placeholder" >/var/lib/rancher/k3s/server/node-token
        chmod 0600 /var/lib/rancher/k3s/server/node-token' || return 1
    docker cp "$REPO_DIR/tests/fixtures/k3s/k3s.yaml" "$MACHINE:/etc/rancher/k3s/k3s.yaml" >/dev/null || return 1

    "$ANSIBLE_VENV/bin/ansible-playbook" -i "$WORK/k3s-inventory/hosts.yml" --syntax-check "$REPO_DIR/ansible/site.yml" \
        >/dev/null || { echo "syntax-check with the k3s inventory failed" >&2; return 1; }
    lab_k3s_play k3s-check --check --tags k3s || { echo "--check --tags k3s failed" >&2; return 1; }
    for task in 'Install and start the k3s server' 'Install and start the k3s agent' "Write the hub's kubeconfig" \
        'Point k3s at binderlite' "Make the registry's certificate"; do
        grep -q "^TASK \[.*$task" "$WORK/k3s-check.log" || { echo "--check did not run: $task" >&2; return 1; }
    done
    if grep -qE 'K10placeholder|client-key-data' "$WORK/k3s-check.log"; then
        echo "the join token or the kubeconfig's key is in the play's output" >&2
        return 1
    fi
    log "k3s: --check of every k3s task on the booted machine (server, agent, hub): $(cat "$WORK/k3s-check.changed") would change; token and key never shown"
    in_m test ! -e /usr/local/bin/k3s || { echo "--check placed the k3s binary" >&2; return 1; }

    lab_k3s_play k3s-files --tags k3s_files --limit k3s_server || { echo "converge of the k3s files failed" >&2; return 1; }
    lab_k3s_play k3s-files2 --tags k3s_files --limit k3s_server || { echo "second converge of the k3s files failed" >&2; return 1; }
    changed=$(cat "$WORK/k3s-files2.changed")
    [ "$changed" = 0 ] || { grep -E '^changed:' -B1 "$WORK/k3s-files2.log" | head -n 20; echo "k3s files: second converge changed=$changed" >&2; return 1; }
    modes=$(in_m stat -c '%n %a %U:%G' /usr/local/bin/k3s /usr/local/lib/k3s/install.sh \
        /var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar /etc/rancher/k3s/registries.yaml \
        /etc/rancher/k3s/config.yaml /etc/rancher/k3s/binderlite-registry-ca.crt | tr '\n' ';')
    [ "$modes" = "/usr/local/bin/k3s 755 root:root;/usr/local/lib/k3s/install.sh 755 root:root;/var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar 644 root:root;/etc/rancher/k3s/registries.yaml 600 root:root;/etc/rancher/k3s/config.yaml 600 root:root;/etc/rancher/k3s/binderlite-registry-ca.crt 644 root:root;" ] \
        || { echo "placed k3s files: $modes" >&2; return 1; }
    in_m /usr/local/bin/k3s --version | grep -q placeholder || { echo "the placed k3s binary does not run" >&2; return 1; }
    in_m cmp -s /etc/rancher/k3s/binderlite-registry-ca.crt /etc/binderlite/tls/ca.crt \
        || { echo "the nodes' registry CA is not the role's CA" >&2; return 1; }
    lab_k3s_validate /etc/rancher/k3s/registries.yaml k3s-registries.schema.json || return 1
    lab_k3s_validate /etc/rancher/k3s/config.yaml k3s-config.schema.json || return 1
    in_m test ! -e /etc/systemd/system/k3s.service || { echo "k3s was installed" >&2; return 1; }
    log "k3s: files placed (changed=$(cat "$WORK/k3s-files.changed"), again changed=0), modes right, registries.yaml and config.yaml valid, k3s not started"

    in_m_sh 'rm -rf /etc/rancher /var/lib/rancher /usr/local/bin/k3s /usr/local/lib/k3s'
}
