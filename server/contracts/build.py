"""Compile the Vyper sources and write their artifacts: `python -m server.contracts.build`."""

import argparse
import hashlib
import json
import sys
from typing import Any

from server.contracts import HERE, artifact_path, source_path


def sources() -> list[str]:
    """Names of every contract source beside this module."""
    return sorted(path.stem for path in HERE.glob("*.vy"))


def compile_contract(name: str) -> dict[str, Any]:
    """Compile one source with the `vyper` package into its artifact dict."""
    import vyper

    path = source_path(name)
    source = path.read_text(encoding="utf-8")
    output = vyper.compile_code(
        source, contract_path=path.name, output_formats=["abi", "bytecode", "bytecode_runtime"]
    )
    return {
        "contract": name,
        "compiler": f"vyper {vyper.__version__}",
        "source_sha256": hashlib.sha256(source.encode()).hexdigest(),
        "abi": output["abi"],
        "bytecode": output["bytecode"],
        "bytecode_runtime": output["bytecode_runtime"],
    }


def render(artifact: dict[str, Any]) -> str:
    """The artifact as committed: stable key order, one ABI entry per line, final newline."""
    head = {key: value for key, value in artifact.items() if key != "abi"}
    lines = ",\n".join(
        "    " + json.dumps(entry, ensure_ascii=False, sort_keys=True) for entry in artifact["abi"]
    )
    body = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in head.items())
    return "{\n" + body + ',\n  "abi": [\n' + lines + "\n  ]\n}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if an artifact differs from its source"
    )
    args = parser.parse_args(argv)
    stale = []
    for name in sources():
        text = render(compile_contract(name))
        path = artifact_path(name)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(HERE.parent.parent)}")
    if stale:
        print("stale artifacts: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
