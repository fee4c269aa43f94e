"""The WSGI entry point gunicorn loads: ``gunicorn -c binderlite/web/gunicorn_conf.py binderlite.web.wsgi:app``."""

from binderlite.web.app import create_app

app = create_app()
