"""A resolved link becomes an image: find it, or build it once, however many ask.

``pipeline`` is the entry (image found or build queued, as an event stream);
``queue`` runs one build per image with a concurrency limit and state on
disk; ``worker`` supervises one build: ``fetch`` (in the sandbox), then
``run_repo2docker`` with binderlite's ``buildpacks`` from the ``baseimage``,
then the push to the ``registry``.
"""
