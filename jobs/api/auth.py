"""Token authentication for the API: ``Authorization: Bearer <token>`` or DRF's ``Token <token>``.

Tokens are :class:`jobs.models.ApiToken` rows, found by the SHA-256 of the key (:mod:`jobs.tokens`):
``manage.py createtoken <user>`` makes one and the admin lists, creates and deletes them. A key that
cannot be a token (wrong length or characters) is refused before any query.

A verified token is remembered by the process (:mod:`jobs.api.token_memory`), which saves a query on
every request (submissions are the hot path). Deleting a token or changing a user makes every process
forget what it remembered before its next request. Permissions are not remembered: every request
reads them afresh (:mod:`jobs.api.permissions`).

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
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from jobs import auth_failures, tokens
from jobs.api import throttling, token_memory
from jobs.models import ApiToken

logger = logging.getLogger("zipline.api")

KEYWORDS = (b"bearer", b"token")
#: Keys are 40 hex characters, never set by hand; keys migrated from DRF's authtoken may be any printable
#: ASCII (they migrate without being revoked).
TOKEN_KEY = re.compile(r"[!-~]{1,40}")

_warned = threading.Event()

post_delete.connect(token_memory.forget_all, sender=ApiToken, dispatch_uid="zipline-api-token-deleted")
post_save.connect(token_memory.forget_all, sender=ApiToken, dispatch_uid="zipline-api-token-saved")
post_save.connect(token_memory.forget_all, sender=get_user_model(), dispatch_uid="zipline-api-user-saved")
post_delete.connect(token_memory.forget_all, sender=get_user_model(), dispatch_uid="zipline-api-user-deleted")


def api_open() -> bool:
    """True when the API may be used without a token (development only); warns once when it is."""
    config = settings.ZIPLINE
    is_open = config.api.open and config.security.debug
    if is_open and not _warned.is_set():
        _warned.set()
        logger.warning("JQS_API_OPEN=true: the REST API accepts requests WITHOUT a token. Local development only.")
    return is_open


class BearerTokenAuthentication(BaseAuthentication):
    """Token authentication that takes both the ``Bearer`` and the ``Token`` keyword."""

    _generation: tuple[str | None] | None = None  # read along with the failure counter, before authenticate
    _key: tuple[tuple[str, str] | None] | None = None  # what _presented found, once it has looked

    def read_along(self) -> str:
        """The token generation's key, read with the failed-login counter (one round trip, not two)."""
        return token_memory.generation_key()

    def took_along(self, read: bool, value: Any) -> None:
        self._generation = (token_memory.generation_read(read, value),)

    def hit_along(self, request: Request) -> Any:
        """The rate limit's hit of a submission whose token this process remembers, made with the check's
        reads (:data:`jobs.api.throttling.EARLY_SCOPE`): one round trip to Redis a request, not two."""
        try:
            presented = self._presented(request)
        except exceptions.AuthenticationFailed:
            return None  # the check refuses it in a moment
        user = token_memory.likely_user(presented[1]) if presented else None
        view = (getattr(request, "parser_context", None) or {}).get("view")
        return None if user is None or view is None else throttling.early_hit(request, view, user)

    def _presented(self, request: Request) -> tuple[str, str] | None:
        """The key the request presents and its digest, read once per request (:meth:`hit_along` reads it
        first); None without a ``Bearer`` or ``Token`` header, AuthenticationFailed for a malformed one."""
        if self._key is not None:  # an authentication is made for each request (DRF's and the gRPC calls')
            return self._key[0]
        parts = get_authorization_header(request).split()
        found: tuple[str, str] | None = None
        if parts and parts[0].lower() in KEYWORDS:
            if len(parts) != 2:
                raise exceptions.AuthenticationFailed("Invalid Authorization header: expected 'Bearer <token>'.")
            try:
                key = parts[1].decode("ascii")
            except UnicodeError:
                raise exceptions.AuthenticationFailed("Invalid token.") from None
            if not TOKEN_KEY.fullmatch(key):
                raise exceptions.AuthenticationFailed("Invalid token.")
            found = (key, tokens.digest(key))
        self._key = (found,)
        return found

    @auth_failures.limited  # 429 after too many failed tokens from one address
    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        presented = self._presented(request)
        if presented is None:
            return None
        key, hashed = presented
        # Read before the query (see token_memory): along with the failure counter, or now.
        generation = self._generation[0] if self._generation is not None else token_memory.current_generation()
        hit = token_memory.recall(hashed, generation) if generation is not None else None
        if hit is not None:
            user = hit[0]
            for cached in ("_perm_cache", "_user_perm_cache", "_group_perm_cache"):
                user.__dict__.pop(cached, None)  # permissions are always read fresh
            return hit
        user, token = self.authenticate_credentials(key)
        if generation is not None:
            token_memory.remember(hashed, generation, user, token)
        return user, token

    def authenticate_credentials(self, key: str) -> tuple[Any, ApiToken]:
        token = tokens.find_token(key)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
