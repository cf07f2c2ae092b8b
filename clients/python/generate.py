"""Generates the Python stubs of the jira-sync contracts from proto/.

Usage: python clients/python/generate.py OUT_DIR [PROTO_DIR]
(PROTO_DIR defaults to the repository's proto/.)
"""

import importlib.resources
import pathlib
import sys

from grpc_tools import protoc


def main() -> int:
    out = pathlib.Path(sys.argv[1])
    default = pathlib.Path(__file__).resolve().parents[2] / "proto"
    proto = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else default
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(str(p.relative_to(proto)) for p in (proto / "assignment" / "v1").glob("*.proto"))
    files.append("tracker/v1/tracker.proto")
    return protoc.main(
        [
            "protoc",
            f"-I{proto}",
            f"-I{proto / 'third_party'}",
            # The well-known types (google/protobuf/timestamp.proto).
            f"-I{importlib.resources.files('grpc_tools') / '_proto'}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            *files,
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
