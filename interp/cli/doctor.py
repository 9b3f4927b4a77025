"""``interp doctor``: is this install the tested one, and does generation work on it?"""

from __future__ import annotations

import argparse
from pathlib import Path

from interp.cli.common import add_device_args

DEFAULT_LOCK = Path(__file__).resolve().parents[2] / "requirements.lock"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "doctor", help="check installed versions against the lock and run the generation self-check",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--lock", default=str(DEFAULT_LOCK), help="lock file to compare against")
    p.add_argument("--skip-generation", action="store_true", help="only compare versions")
    add_device_args(p)  # where and in which dtype the tiny model's generation self-check runs
    p.set_defaults(func=run)


def run(args) -> int:
    from interp.environment import lock_mismatches, read_lock
    from interp.evaluate.verify import installed_versions

    print("stack: " + ", ".join(f"{k}=={v}" for k, v in installed_versions().items()))
    bad = lock_mismatches(read_lock(args.lock))
    for m in bad:
        print(f"  {m.package}: locked {m.locked}, installed {m.installed or 'nothing'}")
    print(f"lock {args.lock}: {'OK' if not bad else f'{len(bad)} package(s) differ'}")
    if not args.skip_generation:
        from interp.evaluate.generate import generate_token_ids
        from interp.models import load_model

        model = load_model("tiny", device=args.device, dtype=args.dtype)
        generate_token_ids(model, ["What is the capital of France?", "hi"], max_new_tokens=8,
                           progress=False, verify="every")  # raises GenerationMismatchError if broken
        print("generation: cached greedy decoding matches an uncached forward pass "
              f"(tiny model, {model.device}, {args.dtype})")
    return 1 if bad else 0
