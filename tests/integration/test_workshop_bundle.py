"""``binderlite workshop export`` / ``import`` on this host's Docker: a round trip, and a damaged bundle refused.

The workshop is small: two tiny images (one stands for the prepared image,
one for the base image; they share a layer, stored once), a package mirror,
a bare git copy and the manifest. ``--no-install`` leaves out what only a
laptop with nothing needs (wheels, Debian packages, the proxy), which
``scripts/check-offline-laptop.sh`` exercises.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from binderlite.cli import main
from binderlite.links.imagenames import image_name
from binderlite.links.model import ResolvedRepo
from binderlite.settings import Settings
from binderlite.workshop.manifest import Manifest, PreparedLink, load_manifest
from tests.helpers.containers import remove_image

pytestmark = pytest.mark.integration

BASE = "bltest-bundle-base:1"
PREPARED = "bltest-bundle-prepared:1"


def tiny_image(client, name: str, files: dict[str, bytes], parent: str | None = None) -> None:
    """An image with ``files`` (on top of ``parent``'s layers, when given)."""
    if parent is None:
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            for path, content in files.items():
                info = tarfile.TarInfo(path)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
        subprocess.run(["docker", "import", "-", name], input=data.getvalue(), check=True, capture_output=True)
        return
    lines = [f"FROM {parent}"] + [f"COPY {Path(path).name} /{path}" for path in files]
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for path, content in [("Dockerfile", "\n".join(lines).encode()), *files.items()]:
            info = tarfile.TarInfo(Path(path).name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    context.seek(0)
    client.images.build(fileobj=context, custom_context=True, tag=name, rm=True)


@pytest.fixture
def workshop(tmp_path, docker_client):
    """Settings of a prepared workshop in a temp state dir, its two images on the daemon."""
    tiny_image(docker_client, BASE, {"etc/base-layer": b"shared by both images\n" * 4096})
    tiny_image(docker_client, PREPARED, {"srv/notebook.ipynb": b"{}\n"}, parent=BASE)
    state = tmp_path / "state"
    workshop_dir = state / "workshop"
    (workshop_dir / "mirror" / "six").mkdir(parents=True)
    (workshop_dir / "mirror" / "six" / "six-1.16.0-py2.py3-none-any.whl").write_bytes(b"a wheel")
    bare = workshop_dir / "repos" / "example.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    resolved = ResolvedRepo(
        provider="gh",
        spec="org/example/main",
        repo_url="https://github.com/org/example",
        unresolved_ref="main",
        resolved_ref="0" * 40,
        resolved_spec="org/example/" + "0" * 40,
        ref_url="https://github.com/org/example/tree/" + "0" * 40,
        build_slug="gh-org-example",
        content_provider="git",
    )
    manifest = Manifest(
        links=(PreparedLink.from_resolved("gh/org/example/main", resolved, PREPARED, "repos/example.git"),),
        attendees=12,
    )
    workshop_dir.joinpath("manifest.json").write_text(manifest.to_json())
    env = {"BINDERLITE_STATE_DIR": str(state), "BINDERLITE_BASE_IMAGE": BASE, "BINDERLITE_PYTHON_BASE_IMAGES": ""}
    env["BINDERLITE_REGISTRY"] = ""
    yield env, workshop_dir
    for name in (PREPARED, BASE, image_name("bltest-bundle-", "gh-org-example", "0" * 40)):
        remove_image(docker_client, name)


def run(env: dict[str, str], *args: str):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def image_ids(client) -> dict[str, str]:
    return {name: client.images.get(name).id for name in (PREPARED, BASE)}


def test_export_then_import_elsewhere_brings_back_images_mirror_repos_and_manifest(workshop, tmp_path, docker_client):
    env, workshop_dir = workshop
    before = image_ids(docker_client)
    out = tmp_path / "workshop.tar"
    exported = run(env, "workshop", "export", "--no-install", str(out))
    assert exported.exit_code == 0, exported.output
    assert "images.tar" in exported.output and "total" in exported.output and "docker save" in exported.output
    with tarfile.open(out) as tar:
        names = tar.getnames()
        info = json.load(tar.extractfile("binderlite-workshop/bundle.json"))
    assert names[0] == "binderlite-workshop/SHA256SUMS"
    assert info["images"] == [PREPARED, BASE]

    for name in (PREPARED, BASE):
        remove_image(docker_client, name)
    other = tmp_path / "laptop"
    laptop = {**env, "BINDERLITE_STATE_DIR": str(other), "BINDERLITE_IMAGE_PREFIX": "bltest-bundle-"}
    imported = run(laptop, "workshop", "import", str(out))
    assert imported.exit_code == 0, imported.output
    assert "every checksum matches" in imported.output and "docker load" in imported.output
    assert image_ids(docker_client) == before
    here = image_name("bltest-bundle-", "gh-org-example", "0" * 40)  # the name this machine's settings give the link
    assert f"Tagged {PREPARED} as {here}" in imported.output
    assert docker_client.images.get(here).id == before[PREPARED]
    placed = other / "workshop"
    assert (placed / "mirror" / "six" / "six-1.16.0-py2.py3-none-any.whl").read_bytes() == b"a wheel"
    assert (placed / "repos" / "example.git" / "HEAD").is_file()
    manifest = load_manifest(Settings(state_dir=str(other)))
    assert manifest is not None and manifest.lookup("gh", "org/example/main").image == PREPARED
    assert manifest.attendees == 12

    again = run(laptop, "workshop", "import", str(out))  # importing twice replaces, it does not pile up
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in placed.iterdir()) == ["ca-bundle.crt", "manifest.json", "mirror", "repos"]


def test_a_flipped_byte_in_the_images_is_refused_before_anything_is_loaded(workshop, tmp_path, docker_client):
    env, _ = workshop
    out = tmp_path / "workshop.tar"
    assert run(env, "workshop", "export", "--no-install", str(out)).exit_code == 0
    with tarfile.open(out) as tar:
        member = tar.getmember("binderlite-workshop/images.tar")
    with open(out, "r+b") as fh:
        fh.seek(member.offset_data + member.size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0x01]))
    remove_image(docker_client, PREPARED)
    laptop = {**env, "BINDERLITE_STATE_DIR": str(tmp_path / "laptop")}
    refused = run(laptop, "workshop", "import", str(out))
    assert refused.exit_code == 2
    assert "Error: The bundle's images.tar does not match its checksum" in refused.output
    assert PREPARED not in {tag for image in docker_client.images.list() for tag in image.tags}
    assert not (tmp_path / "laptop" / "workshop" / "manifest.json").exists()


def test_export_names_an_image_that_is_not_here(workshop, tmp_path, docker_client):
    env, _ = workshop
    remove_image(docker_client, PREPARED)
    result = run(env, "workshop", "export", "--no-install", str(tmp_path / "w.tar"))
    assert result.exit_code == 2
    assert f"not on this machine: {PREPARED}" in result.output
    assert not (tmp_path / "w.tar").exists()


def rewrite(source: Path, target: Path, change) -> None:
    """Copy bundle ``source`` to ``target`` member by member; ``change(name, data)`` returns new data or None."""
    with tarfile.open(source) as old, tarfile.open(target, "w") as new:
        for member in old:
            data = change(member.name.rpartition("/")[2], old.extractfile(member).read())
            if data is not None:
                member.size = len(data)
                new.addfile(member, io.BytesIO(data))


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda part, data: None if part == "repos.tar" else data, "The bundle's repos.tar is missing"),
        (
            lambda part, data: (
                data.replace(b"  manifest.json", b"  manifest.json.bak") if part == "SHA256SUMS" else data
            ),
            "The bundle's SHA256SUMS is damaged",
        ),
        (
            lambda part, data: data.replace(data[:64], b"f" * 64) if part == "SHA256SUMS" else data,
            "does not match its checksum",
        ),
    ],
)
def test_a_real_bundle_missing_a_part_or_with_a_tampered_checksum_file_is_refused(
    workshop, tmp_path, docker_client, change, expected
):
    env, _ = workshop
    out = tmp_path / "workshop.tar"
    assert run(env, "workshop", "export", "--no-install", str(out)).exit_code == 0
    rewrite(out, tmp_path / "changed.tar", change)
    remove_image(docker_client, PREPARED)
    refused = run(
        {**env, "BINDERLITE_STATE_DIR": str(tmp_path / "laptop")}, "workshop", "import", str(tmp_path / "changed.tar")
    )
    assert refused.exit_code == 2
    assert expected in refused.output
    assert PREPARED not in {tag for image in docker_client.images.list() for tag in image.tags}
