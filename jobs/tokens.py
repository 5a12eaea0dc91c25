"""API tokens: random keys of which only a hash is stored, made for ``manage.py createtoken`` and the admin.

A key is 160 random bits (40 hex characters). The database keeps its SHA-256 and its first characters
(:class:`jobs.models.ApiToken`), so reading the table or the admin's token page gives no key; a key is
shown once, when it is made. A slow hash would add nothing: the keys are random, not chosen by people.
A user may have several tokens; ``regenerate`` revokes the user's others.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import models, transaction

from jobs.models import ApiToken
from jobs.roles import grant_role

KEY_BYTES = 20  # 160 bits
PREFIX_LENGTH = 8


def new_key() -> str:
    return secrets.token_hex(KEY_BYTES)


def digest(key: str) -> str:
    """What is stored of a key, and what a presented key is looked up by."""
    return hashlib.sha256(key.encode()).hexdigest()


def prefix_of(key: str) -> str:
    return key[:PREFIX_LENGTH]


def create_token(user: Any, name: str = "") -> str:
    """A new token of ``user``; returns its key, which exists nowhere else afterwards."""
    key = new_key()
    ApiToken.objects.create(user=user, name=name, prefix=prefix_of(key), digest=digest(key))
    return key


def find_token(key: str) -> ApiToken | None:
    """The token whose key is ``key`` (with its user), or None."""
    return ApiToken.objects.select_related("user").filter(digest=digest(key)).first()


def kept_token(user: Any, path: Path) -> str:
    """The key kept in ``path`` if it is still a token of ``user``; else a new token's, written there (0600).

    For the first look (``make run``), whose banner prints the token on every start: the database cannot
    give the key back, so the key is kept in a file only its owner can read, next to the admin password.
    """
    if path.exists():
        key = path.read_text().strip()
        token = find_token(key) if key else None
        if token is not None and token.user_id == user.pk:
            return key
    key = create_token(user, name="first look")
    path.touch(mode=0o600)
    path.write_text(key)
    path.chmod(0o600)
    return key


class BadUsername(ValueError):
    """The name cannot be given to a new user: the user model's own username checks refuse it."""


@dataclass(frozen=True)
class IssuedToken:
    username: str  # as stored: normalised by the user model (NFKC for Django's User)
    key: str
    user_created: bool
    revoked: int  # the user's other tokens deleted by ``regenerate``


def issue_token(
    username: str,
    *,
    staff: bool = False,
    superuser: bool = False,
    roles: Iterable[str] = (),
    regenerate: bool = False,
) -> IssuedToken:
    """A new token for ``username``, made if missing; ``roles`` (:data:`jobs.roles.ROLES`) are granted to the
    user, and ``regenerate`` revokes the user's other tokens.

    The name is normalised as the user model does when it saves one (``create_user`` would store 'ﬁx' as
    'fix'), so looking up and creating agree; a new name must pass the model's own username checks.
    """
    users = get_user_model()
    name = users.normalize_username(username)
    with transaction.atomic():
        # Postgres cannot even compare a string with a NUL in it, and no stored name has one.
        user = None if "\x00" in name else users._default_manager.filter(**{users.USERNAME_FIELD: name}).first()
        user_created = False
        if user is None:
            check_new_username(username, name)
            user = users._default_manager.create_user(**{users.USERNAME_FIELD: name})
            user.set_unusable_password()
            user_created = True
        if staff or superuser:
            user.is_staff = True
            user.is_superuser = user.is_superuser or superuser
        if user_created or staff or superuser:
            user.save()
        for role in roles:
            grant_role(user, role)
        revoked = ApiToken.objects.filter(user=user).delete()[0] if regenerate else 0
        key = create_token(user)
    return IssuedToken(name, key, user_created, revoked)


def check_new_username(username: str, name: str) -> None:
    """Refuse ``name`` (``username`` normalised) with the user model's username field: not blank, its
    max_length and validators (Django's User: letters, digits and @/./+/-/_, at most 150)."""
    users = get_user_model()
    field = users._meta.get_field(users.USERNAME_FIELD)
    assert isinstance(field, models.Field)  # a username is a plain column, never a relation
    messages: list[str] = []
    try:
        field.clean(name, None)
    except ValidationError as exc:
        messages += exc.messages
    if messages and not name:  # clean() skips the validators for a blank name, and they say what is allowed
        for validator in field.validators:
            try:
                validator(name)
            except ValidationError as exc:
                messages += exc.messages
    if messages:
        reasons = " ".join(" ".join(str(message).split()) for message in messages)
        raise BadUsername(f"invalid username {username!r}: {reasons}")
