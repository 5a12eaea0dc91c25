"""The one-line configuration error, and the masking that keeps every password out of it."""

from __future__ import annotations

import re

# The password of a URL: after "scheme://user:", up to the last "@" before a space (a password may hold
# "@", ":" or "/" unescaped; masking too much is better than showing a part).
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):\S*@")


def mask_passwords(text: str) -> str:
    """``text`` with the password of every URL in it masked (``redis://:***@host``), for messages.

    A regular expression rather than a URL parser: the URLs in configuration errors are the ones no
    parser could take (a port out of range, a broken IPv6 address), and their passwords must not show.
    """
    return _URL_PASSWORD.sub(r"\1:***@", text)


def url_password(text: str) -> str:
    """The password of the URL ``text`` as :func:`mask_passwords` sees it ("" for none)."""
    found = _URL_PASSWORD.match(text)
    return found.group(0)[len(found.group(1)) + 1 : -1] if found else ""


def scrub(detail: str, raw: str) -> str:
    """``detail`` (a parser's complaint about ``raw``) without any piece of ``raw``'s password in the
    parts it quotes (``'...'``): a parser that split the URL elsewhere quotes pieces as ports or paths."""
    pieces = [piece for piece in re.split(r"[/?#@:]", url_password(raw)) if piece]

    def scrub_quoted(quoted: re.Match[str]) -> str:
        text = quoted.group(0)
        for piece in pieces:
            text = text.replace(piece, "***")
        return text

    return re.sub(r"'[^']*'", scrub_quoted, detail) if pieces else detail


class ConfigError(Exception):
    """A configuration value ZipLine cannot use; the message names the setting and the value.

    Any password in a URL of the message is masked here, so no configuration error can print one.
    """

    def __init__(self, message: str) -> None:
        super().__init__(mask_passwords(message))
