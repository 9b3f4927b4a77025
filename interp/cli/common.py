"""Arguments shared by several subcommands."""

from __future__ import annotations

import argparse

from interp.models import DEFAULT_MODEL


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="built-in name, checkpoint directory or hub name (default: %(default)s)")
    add_device_args(p)


def add_device_args(p: argparse.ArgumentParser) -> None:
    """``--device`` and ``--dtype`` alone (for subcommands whose models are named by other options)."""
    from interp.models.load import DTYPES

    p.add_argument("--device", default=None,
                   help="torch device (cpu, cuda, cuda:1, mps, ...); default: cuda if available, else cpu")
    p.add_argument("--dtype", choices=list(DTYPES), default="float32",
                   help="dtype of the model weights and activations; reductions (means, kernels, "
                        "log-softmax over the vocabulary) are accumulated in float32/float64 regardless")


def add_data_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--data", action="append", default=None, required=required, metavar="SPEC",
                   help="prompt set spec, repeatable: builtin, builtin:harmful, advbench:PATH, "
                        "xstest:PATH, ... (or a bare benchmark name with --data-dir)")
    p.add_argument("--data-dir", default=None,
                   help="directory laid out like the benchmark data folder (advbench/, xstest/, ...)")


def add_sampling_args(p: argparse.ArgumentParser, per_class: int | None, seed: int = 0,
                      what: str = "prompts per class") -> None:
    """``--per-class`` (the one name for "how many prompts of each class") and ``--seed`` (of that sample and
    of anything else the command draws at random). Defaults come from the command's config dataclass."""
    p.add_argument("--per-class", type=int, default=per_class,
                   help=f"{what} (a seeded subsample; default: %(default)s, None: all)")
    p.add_argument("--seed", type=int, default=seed, help="seed of prompt subsampling and every other random draw")


def sample_per_class(prompts, n: int | None, seed: int = 0):
    """At most ``n`` prompts of every class (seeded; classes in first-seen order); ``None`` keeps all."""
    from interp.data import concat

    if n is None:
        return prompts
    labels = list(dict.fromkeys(p.label for p in prompts))
    return concat(prompts.name, [prompts.by_label(lab).sample(n, seed) for lab in labels])


def load_model_from(args, name: str | None = None):
    """The model named by ``--model`` (or ``name``: e.g. ``--reference``), on ``--device`` in ``--dtype``."""
    from interp.models import load_model

    return load_model(args.model if name is None else name, device=args.device, dtype=args.dtype)


def load_data_from(args, default: tuple[str, ...] = ("builtin",)):
    from interp.data.registry import load_prompt_sets

    return load_prompt_sets(args.data or list(default), data_dir=args.data_dir)
