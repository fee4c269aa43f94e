"""Which repo2docker build packs a build uses, configured from settings; their shared stages made ahead."""

from __future__ import annotations

import importlib.metadata
import urllib.parse
from collections.abc import Callable, Iterable
from pathlib import Path

from repo2docker.app import Repo2Docker
from repo2docker.buildpacks import DockerBuildPack, LegacyBinderDockerBuildPack
from uv import find_uv_bin

from binderlite.builds.baseimage import LocalBase, available_base_images
from binderlite.builds.buildpacks.envtool import MIRROR_VARIABLE
from binderlite.builds.buildpacks.python import (
    NB_UID,
    NB_USER,
    BinderlitePythonBuildPack,
    BuildOptions,
    ensure_shared_stages,
)
from binderlite.builds.buildpacks.r import BinderliteRBuildPack, r_options
from binderlite.builds.buildpacks.unsupported import JuliaBuildPack, NixBuildPack
from binderlite.builds.packageindex import build_ca_bundle, workshop_index_url
from binderlite.builds.stages import DockerStageImages, Stage
from binderlite.settings import Settings, proxy_environment


def mirror_environment(settings: Settings, url: str | None) -> tuple[tuple[str, str], ...]:
    """The repository's packages stage's variables that make uv and pip install from ``url`` alone.

    Every index variable names it (a configured extra index would be a DNS
    look-up offline), uv reads no repository's config (no other index), the
    index's host bypasses any proxy, and the build's messages name the mirror.
    """
    if not url:
        return ()
    host = urllib.parse.urlsplit(url).hostname or ""
    no_proxy = ",".join(filter(None, [proxy_environment(settings).get("NO_PROXY", ""), host]))
    return (
        ("UV_DEFAULT_INDEX", url),
        ("UV_INDEX", ""),
        ("UV_NO_CONFIG", "1"),
        ("PIP_INDEX_URL", url),
        ("PIP_EXTRA_INDEX_URL", ""),
        ("PIP_TRUSTED_HOST", host),
        ("NO_PROXY", no_proxy),
        ("no_proxy", no_proxy),
        (MIRROR_VARIABLE, "1"),
    )


def build_options(settings: Settings) -> BuildOptions:
    """BuildOptions from settings: CA bundle, package index (the workshop's when in use), tooling, base images."""
    hub_version = importlib.metadata.version("jupyterhub")
    hub_spec = settings.jupyterhub_spec or f"jupyterhub=={hub_version}"
    hub_python = "" if settings.jupyterhub_spec else importlib.metadata.metadata("jupyterhub")["Requires-Python"]
    index_env = []
    if settings.package_index_url:
        index_env += [("PIP_INDEX_URL", settings.package_index_url), ("UV_DEFAULT_INDEX", settings.package_index_url)]
    if settings.extra_index_url:
        index_env += [("PIP_EXTRA_INDEX_URL", settings.extra_index_url), ("UV_INDEX", settings.extra_index_url)]
    if settings.trusted_host:
        index_env += [("PIP_TRUSTED_HOST", settings.trusted_host), ("UV_INSECURE_HOST", settings.trusted_host)]
    return BuildOptions(
        mirror_env=mirror_environment(settings, workshop_index_url(settings)),
        ca_bundle=str(Path(build_ca_bundle(settings)).resolve()),
        uv_binary=str(Path(find_uv_bin()).resolve()),
        generated_dir=str(settings.build_work_dir / "generated"),
        tooling_specs=(settings.jupyterlab_spec, *settings.default_environment.split(), hub_spec),
        index_env=tuple(index_env),
        base_images=tuple(available_base_images(settings)),
        hub_requires_python=hub_python or "",
        hub_spec_for_older_python=f"jupyterhub<={hub_version}",
        stages=DockerStageImages(settings),
    )


def prepare_shared_stages(
    settings: Settings, bases: Iterable[LocalBase], say: Callable[[str], None] = print
) -> list[str]:
    """Make the shared stages of each base's own Python now; their names (so a machine's first build runs only
    its own steps, and ``docker save`` of these names gives an offline machine the same)."""
    made = DockerStageImages(settings, say)
    names: list[str] = []

    class Naming:
        def ensure(self, stage: Stage) -> str:
            names.append(stage.image_name)
            return made.ensure(stage)

    options = BuildOptions(**{**build_options(settings).__dict__, "stages": Naming()})
    for base in bases:
        if base.pythons and base.pythons[0].startswith("3"):
            ensure_shared_stages(options, base, base.pythons[0], False, {"NB_USER": NB_USER, "NB_UID": str(NB_UID)})
    return names


def buildpack_classes(settings: Settings) -> list[type]:
    """The ordered build pack list for ``Repo2Docker.buildpacks``."""
    if settings.build_packs == "repo2docker":
        return list(Repo2Docker.buildpacks.default_value)
    configured = type(
        "BinderlitePythonBuildPack",
        (BinderlitePythonBuildPack,),
        {"options": build_options(settings)},
    )
    r = type(
        "BinderliteRBuildPack",
        (BinderliteRBuildPack,),
        {"options": configured.options, "r_options": r_options(settings)},
    )
    # Most specific first, as repo2docker's own list.
    return [LegacyBinderDockerBuildPack, DockerBuildPack, JuliaBuildPack, NixBuildPack, r, configured]
