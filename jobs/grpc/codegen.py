"""Writes the Python code of ``zipline.proto`` beside it: ``python -m jobs.grpc.codegen`` after changing it.

The code is checked in (nothing is generated at install); ``tests/test_grpc_codegen.py`` generates it again
into a temporary directory and compares. The include root is the checkout, so the generated modules import
each other as ``jobs.grpc.proto.zipline.v1``. Needs grpcio-tools (requirements-dev.txt).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PROTO = Path("jobs/grpc/proto/zipline/v1/zipline.proto")
#: The files written from :data:`PROTO`, relative to the output directory.
GENERATED = tuple(PROTO.with_name(PROTO.stem + suffix) for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"))


def generate(out_dir: Path) -> None:
    """Write the generated modules under ``out_dir`` (the checkout's root puts them beside the .proto)."""
    from grpc_tools import protoc  # a development tool: never needed to serve

    well_known = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        str(ROOT / PROTO),
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {PROTO}")


if __name__ == "__main__":
    generate(ROOT)
    sys.stdout.write("".join(f"wrote {path}\n" for path in GENERATED))
