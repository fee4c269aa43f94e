"""The base image is never pulled by an unqualified name (Docker Hub's namespace would supply every image)."""

import pytest

from binderlite.builds.baseimage import is_pinned_reference
from binderlite.settings import Settings


@pytest.mark.parametrize(
    "name, pinned",
    [
        ("binderlite/base:bookworm", False),  # Docker Hub's namespace "binderlite": never pulled
        ("debian:bookworm", False),
        ("registry.example.org/base:bookworm", False),  # a tag can be moved
        ("base@sha256:" + "a" * 64, False),  # Docker Hub again
        ("registry.example.org/lab/base@sha256:" + "a" * 64, True),
        ("127.0.0.1:5000/base@sha256:" + "0" * 64, True),
        ("localhost/base@sha256:" + "0" * 64, True),
        ("registry.example.org/base@sha256:short", False),
    ],
)
def test_only_pinned_references_to_a_named_registry_are_pulled(name, pinned):
    assert is_pinned_reference(name) is pinned


def test_an_unqualified_base_image_is_never_pulled(monkeypatch, tmp_path):
    from binderlite.builds import baseimage

    class Images:
        def pull(self, name):
            raise AssertionError(f"pulled {name}")

    class Client:
        images = Images()

    built = []
    monkeypatch.setattr(baseimage, "docker_client", lambda settings: Client())
    monkeypatch.setattr(baseimage, "local_image_exists", lambda client, name: False)
    monkeypatch.setattr(baseimage, "build_debian_base", lambda name, log, suite: built.append((name, suite)))
    settings = Settings(
        state_dir=str(tmp_path),
        base_image="binderlite/base:bookworm",
        python_base_images="binderlite/base:bullseye, binderlite/base:trixie",
        toolchain_packages="",
    )
    assert baseimage.ensure_base_image(settings, log=lambda msg: None) == "built"
    assert built == [
        ("binderlite/base:bookworm", "bookworm"),
        ("binderlite/base:bullseye", "bullseye"),
        ("binderlite/base:trixie", "trixie"),
    ]


@pytest.mark.parametrize(
    "name, suite",
    [
        ("binderlite/base:trixie", "trixie"),
        ("127.0.0.1:5000/base:bullseye", "bullseye"),
        ("binderlite/base:latest", None),
        ("binderlite/base", None),
        ("registry.example.org/lab/base@sha256:" + "a" * 64, None),
    ],
)
def test_the_tag_names_the_debian_release(name, suite):
    from binderlite.builds.baseimage import suite_of

    assert suite_of(name) == suite


def test_an_extra_base_image_whose_tag_names_no_release_is_not_made(monkeypatch, tmp_path):
    from binderlite.builds import baseimage
    from binderlite.errors import BaseImageMissingError

    monkeypatch.setattr(baseimage, "docker_client", lambda settings: object())
    monkeypatch.setattr(baseimage, "local_image_exists", lambda client, name: name == "binderlite/base:bookworm")
    settings = Settings(state_dir=str(tmp_path), python_base_images="lab/python:3.12", toolchain_packages="")
    with pytest.raises(BaseImageMissingError, match="lab/python:3.12 is missing and its tag names no Debian release"):
        baseimage.ensure_base_image(settings, log=lambda msg: None)


@pytest.mark.parametrize(
    "binaries, python3, pythons",
    [
        (["python3", "python3.11", "perl"], "python3.11", ("3.11",)),
        (["python2.7", "python3", "python3.9", "python3.9-config"], "python3.9", ("3.9", "2.7")),
        (["python3.12", "python3.13", "python3"], "python3.13", ("3.13", "3.12")),
        (["python2.7"], "", ("2.7",)),
    ],
)
def test_an_images_pythons_come_python3_first(binaries, python3, pythons):
    from binderlite.builds.baseimage import pythons_in

    assert pythons_in(binaries, python3) == pythons
