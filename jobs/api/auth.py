"""Token authentication for the API: ``Authorization: Bearer <token>`` or DRF's ``Token <token>``.

Tokens are DRF's ``authtoken`` rows (one per user): ``manage.py createtoken <user>`` prints one and the
admin lists, creates and deletes them. A key that cannot be a token (wrong length or characters) is
refused before any query, which also keeps odd bytes out of the SQL.

Open mode (``JQS_API_OPEN=true``, which the configuration accepts only with ``JQS_DEBUG=true``) lets
requests without a token through, for local development; it logs a warning once per process.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

from django.conf import settings
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.request import Request

logger = logging.getLogger("zipline.api")

KEYWORDS = (b"bearer", b"token")
#: DRF's keys are 40 hex characters; the admin lets operators type their own, so allow any printable ASCII.
TOKEN_KEY = re.compile(r"[!-~]{1,40}")

_warned = threading.Event()


def api_open() -> bool:
    """True when the API may be used without a token (development only); warns once when it is."""
    config = settings.ZIPLINE
    is_open = bool(getattr(config, "api_open", False) and getattr(config, "debug", False))
    if is_open and not _warned.is_set():
        _warned.set()
        logger.warning("JQS_API_OPEN=true: the REST API accepts requests WITHOUT a token. Local development only.")
    return is_open


class BearerTokenAuthentication(TokenAuthentication):
    """DRF token authentication that takes both the ``Bearer`` and the ``Token`` keyword."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in KEYWORDS:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: expected 'Bearer <token>'.")
        try:
            key = parts[1].decode("ascii")
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        if not TOKEN_KEY.fullmatch(key):
            raise exceptions.AuthenticationFailed("Invalid token.")
        return self.authenticate_credentials(key)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
