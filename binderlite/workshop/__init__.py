"""Offline workshops: prepare while online, carry one bundle, serve a classroom with no internet.

``manifest`` records what was prepared (link → commit → image); ``offline``
says whether binderlite runs without the internet. The other modules build
on those two: preparing, the package mirror and its index, the bundle, the
classroom and the warm pool.
"""
