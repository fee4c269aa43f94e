"""The workshop's local package index: when builds use it, and where it answers.

pypiserver serves the mirror folder (``mirror.mirror_dir``) as a PEP 503
simple index on the host's address on the builds' Docker network, port
``workshop_index_port`` (the ``index`` service of ``services/table.py``).
Builds use it instead of the configured package index when a mirror exists
and ``workshop_index`` is ``always``, or ``offline`` (the default) and
binderlite runs offline; with ``never`` they never do. The decision lives
with the builds that take it (``builds/packageindex.py``); this module is its
face for the workshop's commands and services.
"""

from binderlite.builds.packageindex import (
    build_network_gateway,
    index_in_use,
    index_url,
    mirror_exists,
    workshop_index_url,
)

__all__ = ["build_network_gateway", "index_in_use", "index_url", "mirror_exists", "workshop_index_url"]
