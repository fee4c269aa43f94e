"""The one scheduler process and its jobs: cull idle servers, reconcile Docker/hub/proxy, collect disk.

``runner`` holds the lock (exactly one scheduler per install) and the clock;
``cull``, ``reconcile`` and ``diskgc`` are the jobs, each usable on its own
(``binderlite cull`` calls ``cull`` directly).
"""
