"""The Dockerfile that binderlite's build pack renders (a Jinja2 template).

Layer order is chosen for the Docker cache: everything that does not depend
on the repository comes first (user, CA bundle, the tooling venv with uv,
JupyterLab and jupyterhub), so every repository shares those layers; then the
repository's environment files alone (apt.txt, requirements); then the whole
repository, postBuild and start. A change to a notebook reruns only the
last steps. Docker's classic builder runs the steps (binderlite.builds.engine),
so there is no cache mount: no repository writes into a cache that another
build (or the tooling step) reads; uv keeps no cache (UV_NO_CACHE). The
tooling layer is shared through Docker's layer cache instead. No step needs
Docker Hub, conda or GitHub: only the base image and the package index (apt
only when the base lacks Python or apt.txt asks). Only Dockerfile syntax the
classic builder knows is used (no ``--chmod``, no ``--mount``).
"""

TEMPLATE = r"""
FROM {{ base_image }}

ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    LC_ALL=C.UTF-8 \
    SHELL=/bin/bash

ARG NB_USER
ARG NB_UID
ENV USER=${NB_USER} \
    NB_USER=${NB_USER} \
    NB_UID=${NB_UID} \
    HOME=/home/${NB_USER} \
    APP_BASE=/srv \
    VENV_DIR=/srv/venv

# Python and venv only when the base image lacks them (a pulled distribution image);
# the non-root user every container runs as; the venv on PATH for login shells too
# (Debian's /etc/profile resets PATH). One step: each RUN costs a layer.
RUN if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then \
        apt-get -qq update && \
        apt-get -qq install --yes --no-install-recommends python3 python3-venv ca-certificates > /dev/null && \
        apt-get -qq clean && rm -rf /var/lib/apt/lists/*; \
    fi && \
    if getent group ${NB_UID} > /dev/null; then \
        groupmod --new-name ${NB_USER} "$(getent group ${NB_UID} | cut -d: -f1)" 2>/dev/null || true; \
    else groupadd --gid ${NB_UID} ${NB_USER}; fi && \
    if id ${NB_UID} > /dev/null 2>&1; then \
        usermod --home /home/${NB_USER} --login ${NB_USER} --move-home "$(id -un ${NB_UID})" 2>/dev/null || true; \
    else useradd --comment "Binder user" --create-home --gid ${NB_UID} --no-log-init \
        --shell /bin/bash --uid ${NB_UID} ${NB_USER}; fi && \
    install -o ${NB_USER} -g ${NB_USER} -d ${VENV_DIR} && \
    printf 'export VIRTUAL_ENV=%s\nexport PATH=%s/bin:$HOME/.local/bin:$PATH\n' "${VENV_DIR}" "${VENV_DIR}" \
        > /etc/profile.d/00-binderlite-venv.sh

# TLS trust for builds and the running image (inspecting proxies, private mirrors),
# and uv (the binary binderlite itself installed from the package index).
COPY {{ ca_context_path }} /usr/local/share/binderlite/ca-certificates.crt
COPY {{ uv_context_path }} /usr/local/bin/uv
ENV SSL_CERT_FILE=/usr/local/share/binderlite/ca-certificates.crt \
    PIP_CERT=/usr/local/share/binderlite/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/usr/local/share/binderlite/ca-certificates.crt \
    UV_SYSTEM_CERTS=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_PYTHON_DOWNLOADS=never
{% for key, value in index_env -%}
ENV {{ key }}="{{ value }}"
{% endfor %}
ENV VIRTUAL_ENV=${VENV_DIR} \
    PATH=${VENV_DIR}/bin:${PATH}

# The tooling venv: pip, JupyterLab and jupyterhub-singleuser (shared by every repository).
USER ${NB_USER}
RUN PYTHON_BIN="$(command -v {{ python_command }} || true)"; \
    if [ -z "$PYTHON_BIN" ]; then \
        echo "binderlite: WARNING: {{ python_command }} (requested by {{ python_source }}) is not in the base image; using $(python3 --version) instead."; \
        PYTHON_BIN="$(command -v python3)"; \
    fi && \
    uv venv --quiet --python "$PYTHON_BIN" ${VENV_DIR} && \
    uv pip install --python ${VENV_DIR}/bin/python pip {{ tooling_specs }}

USER root
{% for src, dst in generated_files -%}
COPY --chown={{ uid }}:{{ uid }} {{ src }} {{ dst }}
{% endfor %}
ARG REPO_DIR=${HOME}
ENV REPO_DIR=${REPO_DIR}
RUN if [ ! -d "${REPO_DIR}" ]; then install -o ${NB_USER} -g ${NB_USER} -d "${REPO_DIR}"; fi && \
    chown ${NB_USER}:${NB_USER} ${REPO_DIR}
WORKDIR ${REPO_DIR}
ENV PATH=${HOME}/.local/bin:${REPO_DIR}/.local/bin:${PATH}

{% for src, dst in preassemble_files -%}
COPY --chown={{ uid }}:{{ uid }} src/{{ src }} ${REPO_DIR}/{{ dst }}
{% endfor -%}
{% for directive in preassemble_directives -%}
{{ directive }}
{% endfor %}
USER root
COPY --chown={{ uid }}:{{ uid }} src/ ${REPO_DIR}/
{% for directive in assemble_directives -%}
{{ directive }}
{% endfor %}
{% for k, v in labels|dictsort -%}
LABEL {{ k }}="{{ v }}"
{% endfor %}
USER ${NB_USER}
{% for script in post_build_scripts -%}
RUN chmod +x {{ script }} && ./{{ script }}
{% endfor -%}
{% if start_script -%}
RUN chmod +x "{{ start_script }}"
ENV R2D_ENTRYPOINT="{{ start_script }}"
{% endif %}
ENV PYTHONUNBUFFERED=1
COPY /python3-login /usr/local/bin/python3-login
COPY /repo2docker-entrypoint /usr/local/bin/repo2docker-entrypoint
ENTRYPOINT ["/usr/local/bin/repo2docker-entrypoint"]
CMD ["jupyter", "lab", "--ip", "0.0.0.0"]
"""
