"""A private data record end to end: a CKAN site on 127.0.0.1 that shows its dataset only with the API token.

Resolution asks anonymously, is refused, asks again with the secrets file's
token and marks the record private; the build goes through the real pipeline
(queue, detached worker, sandboxed download with the token in its environment,
repo2docker); then the token is searched for in the events, the build logs,
the state dir, the image's layers and ``docker inspect``: zero hits.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from binderlite.builds.pipeline import build_events, image_for
from binderlite.errors import BinderliteError
from binderlite.links import resolve_link
from tests.helpers import leaksearch
from tests.helpers.ckansite import PrivateCKAN
from tests.helpers.images import run_in_image
from tests.helpers.streams import log_text

pytestmark = pytest.mark.integration

TOKEN = "ckan-PLANTED-7c1e5a93d2b84f60"
CONTROL = "six==1.16.0  # private-record-control"


@pytest.fixture(scope="module")
def ckan():
    site = PrivateCKAN(TOKEN, CONTROL.encode() + b"\n")
    yield site
    site.close()


def test_private_record_builds_with_its_token_and_the_token_is_nowhere(settings, ckan, tmp_path, docker_client):
    secrets_file = tmp_path / "credentials.toml"
    secrets_file.write_text("")
    secrets_file.chmod(0o600)
    root = dataclasses.replace(settings, state_dir=str(tmp_path / "state"), credentials_file=str(secrets_file))

    with pytest.raises(BinderliteError) as err:
        resolve_link(ckan.link("thesis-data"), root)
    assert err.value.status == 404 and "answered HTTP 404" in err.value.message

    secrets_file.write_text(f'[[records]]\nhost = "127.0.0.1:{ckan.port}"\ntoken = "{TOKEN}"\n')
    resolved = resolve_link(ckan.link("thesis-data"), root)
    assert resolved.private
    image = image_for(root, resolved)
    assert image.startswith(f"{settings.registry}/{settings.image_prefix}private-") and "thesis" not in image

    ckan.token_sent.clear()
    events = [ev for ev in build_events(root, resolved) if ev is not None]
    log = log_text(events)
    assert events[-1]["phase"] == "built", log[-3000:]
    assert ("/files/requirements.txt", True) in ckan.token_sent, "the sandboxed download sent the token"
    assert "six==1.16.0" in run_in_image(docker_client, image, "cat requirements.txt")

    needles = leaksearch.needles(TOKEN, "")
    tally = leaksearch.Tally()
    counts = leaksearch.count_each(docker_client.images.get(image).save(named=True), [*needles, CONTROL.encode()])
    tally.add("image layers", sum(counts[:-1]), f"docker save {image}")
    tally.add("docker inspect image", leaksearch.count_text(docker_client.api.inspect_image(image), needles), image)
    tally.add("events", leaksearch.count_text(events, needles), f"{len(events)} events")
    logs = leaksearch.count_tree(root.build_logs_dir, needles)
    tally.add("build logs", logs[0], f"{logs[1]} files")
    state = leaksearch.count_tree(Path(root.state_dir), needles)
    tally.add("state dir (database, logs)", state[0], f"{state[1]} files")
    assert counts[-1] >= 1, "the layer search did not find the record's file (control)"
    print("\nplanted record token search (hits per place):\n" + tally.report())
    assert not tally.leaks(), tally.report()
