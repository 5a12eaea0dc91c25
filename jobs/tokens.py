"""API tokens: one DRF ``authtoken`` token per user, made or fetched for ``manage.py createtoken``.

The admin (``Auth Token > Tokens``) lists, creates and deletes the same tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import models, transaction
from rest_framework.authtoken.models import Token


class UnknownUser(LookupError):
    """No user by that name (and creating one was not asked for)."""


class BadUsername(ValueError):
    """The name cannot be given to a new user: the user model's own username checks refuse it."""


@dataclass(frozen=True)
class IssuedToken:
    username: str  # as stored: normalised by the user model (NFKC for Django's User)
    key: str
    user_created: bool
    token_created: bool


def issue_token(
    username: str, *, create: bool = False, staff: bool = False, superuser: bool = False, regenerate: bool = False
) -> IssuedToken:
    """The user's token (made if missing); ``create`` makes the user too, ``regenerate`` replaces the key.

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
            if not create:
                raise UnknownUser(f"no user {username!r} (add --create to make one)")
            check_new_username(username, name)
            user = users._default_manager.create_user(**{users.USERNAME_FIELD: name})
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
    return IssuedToken(name, token.key, user_created, token_created)


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
