"""The hub's spawner is chosen in one place, from the settings."""

from traitlets.config import Config

from binderlite.hub.backends import BACKENDS, configure_spawner
from binderlite.settings import Settings


def test_the_docker_backend_confines_servers_as_the_settings_say():
    c = Config()
    settings = Settings(memory_limit="1G", cpu_limit=0.5, pids_limit=256, server_network="bl-test-net")
    configure_spawner(c, settings, "10.99.0.1")
    assert c.JupyterHub.spawner_class == "binderlite.hub.spawner.BinderSpawner"
    assert c.DockerSpawner.network_name == "bl-test-net"
    assert (c.DockerSpawner.mem_limit, c.DockerSpawner.cpu_limit, c.BinderSpawner.pids_limit) == ("1G", 0.5, 256)
    assert c.DockerSpawner.pull_policy == "never" and c.DockerSpawner.host_ip == "127.0.0.1"


def test_every_backend_the_settings_allow_is_known():
    assert set(BACKENDS) == {"docker", "kubernetes"}
