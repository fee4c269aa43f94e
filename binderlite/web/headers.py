"""Security headers on every response of the web app.

The pages load scripts, styles and images from binderlite itself only (no
inline script, style or handler anywhere), the launch page's event stream is
same-origin, no page may be framed, and no form posts elsewhere. The
Content-Security-Policy below says exactly that, so markup injected into a page
can neither run script nor send the server's token anywhere. A response that
sets one of these headers itself keeps its own value.
"""

from __future__ import annotations

from flask import Flask, Response

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Pages' URLs name what a person launches; none of it goes to another site.
    "Referrer-Policy": "no-referrer",
}


def add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def init_app(app: Flask) -> None:
    app.after_request(add_security_headers)
