"""The web app: BinderHub's links, build API, pages and status endpoints, as one Flask app.

``app.create_app()`` is the factory gunicorn loads (``binderlite.web.wsgi:app``).
Each concern is a blueprint in its own module — ``build_api`` (the SSE build
stream), ``pages`` (landing and launch pages), ``status`` (health, versions,
badges), ``admin`` (the admin page, with ``admin_data`` and ``admin_actions``)
— and every error becomes JSON for API paths or a small page for
browsers, from the one handler here; ``headers`` puts the security headers
(Content-Security-Policy and the rest) on every response. Settings hang off
``app.extensions``, never a module global, so tests make as many apps as they
like.

This package's ``__init__`` imports nothing: gunicorn's master process reads
``gunicorn_conf`` from it before its gevent workers patch the standard library,
and anything imported there (a ``threading.Lock``, a socket) would stay
unpatched in every worker and block the whole worker instead of one greenlet.
"""
