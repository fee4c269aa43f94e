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
    monkeypatch.setattr(baseimage, "build_debian_base", lambda name, log: built.append(name))
    settings = Settings(state_dir=str(tmp_path), base_image="binderlite/base:bookworm")
    assert baseimage.ensure_base_image(settings, log=lambda msg: None) == "built"
    assert built == ["binderlite/base:bookworm"]
