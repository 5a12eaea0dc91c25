"""The load generators a benchmark drives its server with (wrk, h2load), installed when missing.

They are Debian packages, as on this machine and in CI: installed with ``apt-get`` (through ``sudo`` when
not root). Where that cannot work, the benchmark stops with the one line that installs them.
"""

from __future__ import annotations

import os
import shutil
import subprocess


def ensure_tool(tool: str, package: str) -> str:
    """The path of ``tool``, installing Debian's ``package`` first if it is missing."""
    found = shutil.which(tool)
    if found:
        return found
    apt = ["apt-get", "install", "-y", "--no-install-recommends", package]
    if os.geteuid() != 0:
        apt = ["sudo", "-n", *apt]
    print(f"{tool} is missing: {' '.join(apt)}", flush=True)
    try:
        subprocess.run(
            apt, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"{tool} is needed and could not be installed ({exc}): apt-get install {package}") from None
    found = shutil.which(tool)
    if not found:
        raise SystemExit(f"{tool} is needed: apt-get install {package} did not provide it")
    return found
