"""The processes binderlite runs: one service table, and what runs, shows and keeps them.

``table`` lists every service (name, command, readiness, user, order, what its
unit needs); ``prepare`` makes what they need before they start, for
``binderlite up`` (``up`` + ``supervisor``) and for systemd alike (``units``
renders a unit per entry, the committed ``systemd/`` folder). ``status`` is the
operator's view of a running install; ``backup`` keeps what cannot be rebuilt.
"""
