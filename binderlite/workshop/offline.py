"""Whether binderlite runs without the internet: ``links/offline.py``, which builds ask too (the workshop's
modules import it from here)."""

from binderlite.links.offline import DNS_DEADLINE, RECHECK_SECONDS, index_host, is_offline, resolves

__all__ = ["DNS_DEADLINE", "RECHECK_SECONDS", "index_host", "is_offline", "resolves"]
