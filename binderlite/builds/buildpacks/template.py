"""The Dockerfiles binderlite's build pack renders (Jinja2 templates): two shared stages and the repository's.

``TOOLING_STAGE`` (from the base image with the chosen Python): the user,
the CA bundle, uv, and the tooling venv with JupyterLab, jupyterhub and
repo2docker's default environment (``default_environment``), with
``jupyter serverextension``/``nbextension`` for old postBuild scripts
(``jupyter_legacy.py``).

``PACKAGES_STAGE`` (from the base's toolchain image: compilers and headers,
see ``baseimage``): the tooling venv copied in and a snapshot of it.

Neither depends on a repository, so each is an image of its own, made once
per base and Python and found by every later build (``builds/stages.py``).

``TEMPLATE``, the repository's Dockerfile: a ``packages`` stage from the
packages stage image gets apt.txt (so its ``-dev`` packages are there to build
against), the repository's requirements (a Python 2 kernel environment
first, when asked for), the repository itself only when it is a package or
installs itself; from the workshop's local package index when one is in use
(``BuildOptions.mirror_env``: this stage only, so the shared stages stay valid). ``envtool delta`` then writes just what the repository added
or changed, and the system libraries its built extensions link.

The image (from the tooling stage image): first what depends on no
repository (the entrypoint, the repository folder), then apt.txt and a build
pack's own early steps (R's Debian packages), that delta, the repository, a
build pack's late steps (install.R), postBuild and start. Each step the
classic builder runs costs a container commit, so what a new commit of the
repository does not change comes before what it does. So the image is the
shared tooling layers plus one layer of the repository's packages, and the
toolchain never reaches it. A change to a notebook reruns only the last steps.

Docker's classic builder runs the steps (binderlite.builds.engine): multi-stage
builds work there; only syntax it knows is used (no ``--chmod``, no
``--mount``). No step writes into a cache another build reads (uv keeps no
cache: UV_NO_CACHE). ``FROM`` names images by id, so a missing image is an
error, never a pull from Docker Hub. No step needs Docker Hub, conda or
GitHub: the base images and the package index (apt only for apt.txt).
"""

# Names of the files the shared stages copy in, in their build context.
CA_FILE = "ca-certificates.crt"
UV_FILE = "uv"
ENVTOOL_FILE = "envtool.py"
JUPYTER_LEGACY_FILE = "jupyter_legacy.py"

PRELUDE = r"""ENV DEBIAN_FRONTEND=noninteractive \
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
    VENV_DIR=/srv/venv \
    NB_PYTHON_PREFIX=/srv/venv \
    KERNEL_PYTHON_PREFIX={{ kernel_prefix }}

# Python and venv only when the base image lacks them (a pulled distribution image);
# the non-root user every container runs as; the venvs on PATH for login shells too
# (Debian's /etc/profile resets PATH); libraries copied from the build stage found last.
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
    install -o ${NB_USER} -g ${NB_USER} -d ${VENV_DIR} ${KERNEL_PYTHON_PREFIX} && \
    printf 'export VIRTUAL_ENV=%s\nexport PATH={{ path_prefix }}$HOME/.local/bin:$PATH\n' "${VENV_DIR}" \
        > /etc/profile.d/00-binderlite-venv.sh && \
    echo /usr/local/lib/binderlite > /etc/ld.so.conf.d/zz-binderlite.conf

# TLS trust for builds and the running image (inspecting proxies, private mirrors),
# and uv (the binary binderlite itself installed from the package index).
COPY {{ ca_file }} /usr/local/share/binderlite/ca-certificates.crt
COPY {{ uv_file }} /usr/local/bin/uv
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
    PATH={{ path_prefix }}${PATH}
"""

TOOLING_STAGE = r"""
# ---- tooling: Python {{ server_python }}, JupyterLab, jupyterhub-singleuser (shared by every repository) ----
FROM {{ base_id }}
{{ prelude }}
COPY --chown={{ uid }}:{{ uid }} {{ jupyter_legacy_file }} /usr/local/lib/binderlite/jupyter_legacy.py
USER ${NB_USER}
RUN uv venv --quiet --python /usr/bin/python{{ server_python }} ${VENV_DIR} && \
    uv pip install --python ${VENV_DIR}/bin/python pip {{ tooling_specs }} && \
    for command in serverextension nbextension; do \
        if [ ! -e ${VENV_DIR}/bin/jupyter-$command ]; then \
            install -m 0755 /usr/local/lib/binderlite/jupyter_legacy.py ${VENV_DIR}/bin/jupyter-$command; \
        fi; \
    done
"""

PACKAGES_STAGE = r"""
# ---- packages: the toolchain image with the tooling venv and a snapshot of it (shared by every repository) ----
FROM {{ tooling_id }} AS tooling

FROM {{ toolchain_id }}
{{ prelude }}
COPY --from=tooling --chown={{ uid }}:{{ uid }} /srv/venv /srv/venv
COPY {{ envtool_file }} /usr/local/lib/binderlite/envtool.py
USER root
RUN /usr/bin/python3 -I -S /usr/local/lib/binderlite/envtool.py snapshot /srv/binderlite-snapshot.json ${VENV_DIR} ${KERNEL_PYTHON_PREFIX} && \
    install -o ${NB_USER} -g ${NB_USER} -d /srv/delta
"""

TEMPLATE = r"""
# ---- packages: the repository's requirements, built with the toolchain (which stays here) ----
FROM {{ packages_id }} AS packages
ARG NB_USER
ARG NB_UID
USER root
{% for key, value in mirror_env -%}
ENV {{ key }}="{{ value }}"
{% endfor -%}
{% if kernel_setup -%}
USER ${NB_USER}
RUN {{ kernel_setup }}
USER root
{% endif -%}
{% if apt_script -%}
RUN {{ apt_script }}
{% endif -%}
{% for src, dst in generated_files -%}
COPY --chown={{ uid }}:{{ uid }} {{ src }} {{ dst }}
{% endfor -%}
ARG REPO_DIR=${HOME}
ENV REPO_DIR=${REPO_DIR}
RUN if [ ! -d "${REPO_DIR}" ]; then install -o ${NB_USER} -g ${NB_USER} -d "${REPO_DIR}"; fi && \
    chown ${NB_USER}:${NB_USER} ${REPO_DIR}
WORKDIR ${REPO_DIR}
{% for src, dst in preassemble_files -%}
COPY --chown={{ uid }}:{{ uid }} src/{{ src }} ${REPO_DIR}/{{ dst }}
{% endfor -%}
USER ${NB_USER}
{% for directive in preassemble_directives -%}
{{ directive }}
{% endfor -%}
{% if assemble_directives -%}
COPY --chown={{ uid }}:{{ uid }} src/ ${REPO_DIR}/
{% for directive in assemble_directives -%}
{{ directive }}
{% endfor -%}
USER ${NB_USER}
{% endif -%}
RUN /usr/bin/python3 -I -S /usr/local/lib/binderlite/envtool.py delta /srv/binderlite-snapshot.json /srv/delta ${VENV_DIR} ${KERNEL_PYTHON_PREFIX}

# ---- the image: the tooling layers, the repository's packages, the repository ----
FROM {{ tooling_id }}
ARG NB_USER
ARG NB_UID
USER root
ENV PYTHONUNBUFFERED=1
COPY /python3-login /usr/local/bin/python3-login
COPY /repo2docker-entrypoint /usr/local/bin/repo2docker-entrypoint
ENTRYPOINT ["/usr/local/bin/repo2docker-entrypoint"]
CMD ["jupyter", "lab", "--ip", "0.0.0.0"]
ARG REPO_DIR=${HOME}
ENV REPO_DIR=${REPO_DIR}
RUN if [ ! -d "${REPO_DIR}" ]; then install -o ${NB_USER} -g ${NB_USER} -d "${REPO_DIR}"; fi && \
    chown ${NB_USER}:${NB_USER} ${REPO_DIR}
WORKDIR ${REPO_DIR}
ENV PATH=${HOME}/.local/bin:${REPO_DIR}/.local/bin:${PATH}
{% if apt_script -%}
RUN {{ apt_script }}
{% endif -%}
{% if image_prepare_directives -%}
{% for directive in image_prepare_directives -%}
{{ directive }}
{% endfor -%}
USER root
{% endif -%}
COPY --from=packages --chown={{ uid }}:{{ uid }} /srv/delta/venv/ /srv/venv/
{% if kernel_setup -%}
COPY --from=packages --chown={{ uid }}:{{ uid }} /srv/delta/kernel/ /srv/kernel/
{% endif -%}
COPY --from=packages /srv/delta/libs/ /usr/local/lib/binderlite/
COPY --from=packages /srv/delta/removed.txt /usr/local/share/binderlite/removed.txt
RUN grep -E '^/srv/(venv|kernel)/' /usr/local/share/binderlite/removed.txt | grep -v '/\.\./' \
        | xargs -r -d '\n' rm -rf -- && \
    rm /usr/local/share/binderlite/removed.txt && ldconfig
COPY --chown={{ uid }}:{{ uid }} src/ ${REPO_DIR}/
{% if labels -%}
LABEL {% for k, v in labels|dictsort %}{{ k }}="{{ v }}" {% endfor %}
{% endif -%}
USER ${NB_USER}
{% if image_assemble_directives -%}
{% for directive in image_assemble_directives -%}
{{ directive }}
{% endfor -%}
USER ${NB_USER}
{% endif -%}
{% for script in post_build_scripts -%}
RUN chmod +x {{ script }} && ./{{ script }}
{% endfor -%}
{% if start_script -%}
RUN chmod +x "{{ start_script }}"
ENV R2D_ENTRYPOINT="{{ start_script }}"
{% endif -%}
"""
