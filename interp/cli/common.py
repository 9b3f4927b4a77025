"""Arguments shared by several subcommands."""

from __future__ import annotations

import argparse

from interp.models import DEFAULT_MODEL


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="built-in name, checkpoint directory or hub name (default: %(default)s)")
    p.add_argument("--device", default=None, help="torch device; cuda if available, else cpu, unless given")


def add_data_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--data", action="append", default=None, required=required, metavar="SPEC",
                   help="prompt set spec, repeatable: builtin, builtin:harmful, advbench:PATH, "
                        "xstest:PATH, ... (or a bare benchmark name with --data-dir)")
    p.add_argument("--data-dir", default=None,
                   help="directory laid out like the benchmark data folder (advbench/, xstest/, ...)")


def load_model_from(args):
    from interp.models import load_model

    return load_model(args.model, device=args.device)


def load_data_from(args, default: tuple[str, ...] = ("builtin",)):
    from interp.data.registry import load_prompt_sets

    return load_prompt_sets(args.data or list(default), data_dir=args.data_dir)
