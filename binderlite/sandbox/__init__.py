"""Running what a link names: unprivileged, confined, limited, with egress filtered where connections are made.

A link names a host to contact and files written by strangers. Everything
that contacts such a host (``git ls-remote``, the clone and its submodules, a
DOI record's downloads) or writes such files runs through ``process``: as
a dedicated system user with no credentials, in a private mount namespace
where only its own work directory is writable, with resource limits, in its
own process group. ``netrules`` installs the kernel's rules (iptables, owner
match) that refuse that user's connections to loopback, link-local, private
and other internal addresses — checked at connect time, so redirects,
submodules and DNS answers cannot get around them. ``checkout`` checks a
fetched tree before anything privileged reads it.
"""
