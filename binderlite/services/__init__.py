"""The processes binderlite runs: one service table, a supervisor, and ``binderlite up``.

``table`` lists every service (name, command, environment, readiness,
order): ``binderlite up`` runs them through ``supervisor``, and the systemd
units run the same commands. ``up`` checks what is needed first and keeps
everything running in the foreground.
"""
