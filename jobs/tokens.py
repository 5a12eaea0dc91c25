"""API tokens: one DRF ``authtoken`` token per user, made or fetched for ``manage.py createtoken``.

The admin (``Auth Token > Tokens``) lists, creates and deletes the same tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.authtoken.models import Token


class UnknownUser(LookupError):
    """No user by that name (and creating one was not asked for)."""


@dataclass(frozen=True)
class IssuedToken:
    key: str
    user_created: bool
    token_created: bool


def issue_token(
    username: str, *, create: bool = False, staff: bool = False, superuser: bool = False, regenerate: bool = False
) -> IssuedToken:
    """The user's token (made if missing); ``create`` makes the user too, ``regenerate`` replaces the key."""
    users = get_user_model()
    with transaction.atomic():
        user = users._default_manager.filter(**{users.USERNAME_FIELD: username}).first()
        user_created = False
        if user is None:
            if not create:
                raise UnknownUser(f"no user {username!r} (add --create to make one)")
            user = users._default_manager.create_user(**{users.USERNAME_FIELD: username})
            user.set_unusable_password()
            user_created = True
        if staff or superuser:
            user.is_staff = True
            user.is_superuser = user.is_superuser or superuser
        if user_created or staff or superuser:
            user.save()
        if regenerate:
            Token.objects.filter(user=user).delete()
        token, token_created = Token.objects.get_or_create(user=user)
    return IssuedToken(token.key, user_created, token_created)
