"""The ``interp`` command line: thin wrappers that parse arguments, call the library and write files.

Each subcommand lives in its own module exposing ``add_parser(subparsers)``, which registers the
subparser and sets ``func`` to a ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from interp.errors import InterpError

SUBCOMMANDS = ("doctor", "models", "eval", "compare", "align", "ntk", "heads", "sae", "subspace", "report",
               "realign", "explore", "safemoe")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interp",
        description="Mechanistic-interpretability workbench for the overlap of refusal and hallucination "
        "machinery: evaluate, align, attribute heads, decompose with SAEs, export subspaces.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"interp.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"interp.cli.{name}":
                continue  # subcommand not built yet
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from interp.runtime import limit_heap_fragmentation

    args = build_parser().parse_args(argv)
    limit_heap_fragmentation()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "urllib3", "filelock", "transformers", "huggingface_hub", "kaleido", "choreographer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except InterpError as exc:
        print(f"interp {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
