"""Token authentication for the API: ``Authorization: Bearer <token>`` or DRF's ``Token <token>``.

Tokens are DRF's ``authtoken`` rows (one per user): ``manage.py createtoken <user>`` prints one and the
admin lists, creates and deletes them. A key that cannot be a token (wrong length or characters) is
refused before any query, which also keeps odd bytes out of the SQL.

A verified token is remembered by the process (:mod:`jobs.api.token_memory`), which saves a query on
every request (submissions are the hot path). Deleting a token or changing a user makes every process
forget what it remembered before its next request. Permissions are not remembered: cancel, retry,
delete, pause and resume read them on every request.

Open mode (``JQS_API_OPEN=true``, which the configuration accepts only with ``JQS_DEBUG=true``) lets
requests without a token through, for local development; it logs a warning once per process.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.authtoken.models import Token
from rest_framework.request import Request

from jobs import auth_failures
from jobs.api import token_memory

logger = logging.getLogger("zipline.api")

KEYWORDS = (b"bearer", b"token")
#: DRF's keys are 40 hex characters; a key set by hand may be any printable ASCII, but at least 32 long.
TOKEN_KEY = re.compile(r"[!-~]{32,40}")

_warned = threading.Event()

post_delete.connect(token_memory.forget_all, sender=Token, dispatch_uid="zipline-api-token-deleted")
post_save.connect(token_memory.forget_all, sender=Token, dispatch_uid="zipline-api-token-saved")
post_save.connect(token_memory.forget_all, sender=get_user_model(), dispatch_uid="zipline-api-user-saved")
post_delete.connect(token_memory.forget_all, sender=get_user_model(), dispatch_uid="zipline-api-user-deleted")


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

    @auth_failures.limited  # 429 after too many failed tokens from one address
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
        generation = token_memory.current_generation()  # before the query: see token_memory
        hit = token_memory.recall(key, generation) if generation is not None else None
        if hit is not None:
            user = hit[0]
            for cached in ("_perm_cache", "_user_perm_cache", "_group_perm_cache"):
                user.__dict__.pop(cached, None)  # permissions are always read fresh
            return hit
        user, token = self.authenticate_credentials(key)
        if generation is not None:
            token_memory.remember(key, generation, user, token)
        return user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
