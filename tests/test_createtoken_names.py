"""``manage.py createtoken``: usernames are normalised like the user model does, and checked before creating."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from jobs.tokens import find_token
from tests.procs import manage

pytestmark = pytest.mark.django_db(transaction=True)


def owner_of(key: str) -> str:
    token = find_token(key)
    assert token is not None, f"no token {key[:8]}..."
    return str(token.user.username)


def createtoken(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("createtoken", *args, stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue().strip()


@pytest.mark.parametrize(
    "name",
    ["", "two words", "line\nbreak", "trailing\n", "bell\x07", "nul\x00", "x" * 151],
    ids=["empty", "space", "newline", "trailing-newline", "control-byte", "nul", "151-chars"],
)
def test_a_bad_new_username_is_refused_in_one_line(name: str) -> None:
    with pytest.raises(CommandError) as raised:
        createtoken(name, "--create")
    message = str(raised.value)
    assert raised.value.returncode == 1
    assert repr(name) in message and "\n" not in message
    assert "database" not in message
    assert not User.objects.exists()


@pytest.mark.parametrize("name", ["", "two words"])
def test_the_error_says_what_is_allowed(name: str) -> None:
    with pytest.raises(CommandError) as raised:
        createtoken(name, "--create")
    assert "letters" in str(raised.value) and "@/./+/-/_" in str(raised.value)
    with pytest.raises(CommandError) as raised:
        createtoken("x" * 151, "--create")
    assert "150" in str(raised.value)


def test_the_longest_allowed_name_and_every_allowed_sign_are_accepted() -> None:
    name = ("a.b@c+d-e_f9" * 13)[:150]
    token, err = createtoken(name, "--create")
    assert owner_of(token) == name
    assert err == f"created user {name!r}"


def test_a_compatibility_character_is_normalised_before_lookup_and_creation() -> None:
    token, err = createtoken("\ufb01x", "--create")  # 'ﬁx', with the fi ligature
    assert err == "created user 'fix'"
    assert list(User.objects.values_list("username", flat=True)) == ["fix"]
    assert owner_of(token) == "fix"
    for same in ("\ufb01x", "fix"):
        again, err = createtoken(same)
        assert err == "" and owner_of(again) == "fix"
    assert User.objects.count() == 1


def test_looking_up_a_name_with_a_nul_byte_finds_no_user_rather_than_a_database_error() -> None:
    with pytest.raises(CommandError) as raised:
        createtoken("nul\x00")
    assert str(raised.value).startswith("invalid username 'nul\\x00'")


def test_an_existing_user_with_an_old_style_name_is_still_found() -> None:
    User.objects.create(username="old name")  # made before any check, e.g. by a script
    token, err = createtoken("old name")
    assert err == "" and owner_of(token) == "old name"


def test_an_empty_name_from_the_command_line_fails_in_one_line_without_a_traceback() -> None:
    done = manage("createtoken", "", "--create")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "''" in done.stderr
    assert done.stdout == ""
    assert not User.objects.exists()
