"""``make run``'s settings, kept for ``manage.py`` and the shell: the file ``.local/env``.

``make run`` (:mod:`zipline_site.firstlook`) writes there every ``JQS_*`` variable it runs with: the
SQLite file, the generated secret key, the Redis it found or started, the local addresses. ``manage.py``
run from the checkout with no ``JQS_*`` variable set reads it, so ``manage.py shell`` or ``createtoken``
reach the first look's data instead of stopping for a missing secret or opening another database. Any
``JQS_*`` variable, or ``--config``, means the caller configures ZipLine itself: then nothing is read, so
a production command never mixes its settings with a first look's. Other tools take the same settings
with ``. .local/env``. The file holds the secret key: it is made readable by its owner only.

``ZIPLINE_LOCAL_DIR`` moves ``.local/`` (the tests use it to keep their own).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL_DIR_ENV = "ZIPLINE_LOCAL_DIR"
PREFIX = "JQS_"


def local_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where ``make run`` keeps its state: ``ZIPLINE_LOCAL_DIR``, else ``.local/`` in the checkout."""
    env = os.environ if environ is None else environ
    return Path(env.get(LOCAL_DIR_ENV) or ROOT / ".local")


def env_file(environ: Mapping[str, str] | None = None) -> Path:
    return local_dir(environ) / "env"


def write(path: Path, environ: Mapping[str, str]) -> None:
    """Write the ``JQS_*`` variables of ``environ`` as ``export`` lines a shell can source (mode 0600)."""
    lines = ["# Written by `make run`: its settings, read by manage.py in this checkout; `. .local/env` for a shell."]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in sorted(environ.items()) if key.startswith(PREFIX)]
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an older file keeps its mode otherwise
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


def read(path: Path) -> dict[str, str]:
    """The ``JQS_*`` variables of a file :func:`write` made."""
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, value = words[1].split("=", 1)
            if key.startswith(PREFIX):
                found[key] = value
    return found


def apply(environ: MutableMapping[str, str], argv: Sequence[str]) -> Path | None:
    """Put ``make run``'s settings into ``environ`` when the caller set none; returns the file read, if any."""
    if any(key.startswith(PREFIX) for key in environ) or any(
        a == "--config" or a.startswith("--config=") for a in argv
    ):
        return None
    path = env_file(environ)
    if not path.is_file():
        return None
    environ.update(read(path))
    return path
