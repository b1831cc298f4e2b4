"""Optional HTTP basic auth in front of every request of the dashboard (page, assets, API).

Credentials come from the configuration, in practice from the environment or a file; they
are compared in constant time and never logged. Without credentials the page is open, which
the configuration only allows on a loopback address (see :mod:`dashboard.config`).
"""

from __future__ import annotations

import base64
import hmac

from flask import Flask, Response, request


def _matches(header: str | None, username: str, password: str) -> bool:
    if not header or not header.startswith("Basic "):
        return False
    try:
        given = base64.b64decode(header[6:], validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return False
    user, _, secret = given.partition(":")
    # evaluate both comparisons so the time taken does not say which one failed
    ok_user = hmac.compare_digest(user.encode(), username.encode())
    ok_secret = hmac.compare_digest(secret.encode(), password.encode())
    return ok_user and ok_secret


def require_basic_auth(server: Flask, username: str, password: str) -> None:
    """Answer 401 to any request without the right ``Authorization: Basic`` header."""

    @server.before_request
    def _check() -> Response | None:
        if _matches(request.headers.get("Authorization"), username, password):
            return None
        return Response(
            "Authentication required.\n",
            401,
            {"WWW-Authenticate": 'Basic realm="NeuroCLIP Monitor", charset="UTF-8"'},
        )
