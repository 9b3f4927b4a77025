"""Behaviour of the embedded model before any safety training: refusal, over-refusal, truthfulness.

config -> compute -> plot -> write: evaluates one model on the held-out halves of the built-in sets
and, given a data directory, of XSTest and AdvBench; writes eval.json (metrics + per-prompt records) and a headline
figure (HTML, PNG, JSON) into --out.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def parse(argv=None) -> argparse.Namespace:
    from interp.cli.common import add_device_args

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="figures/foundation")
    p.add_argument("--per-class", type=int, default=30, help="held-out prompts per class (seeded subsample)")
    p.add_argument("--max-new-tokens", type=int, default=48)
    add_device_args(p)
    return p.parse_args(argv)


def data_selection(data_dir):
    """The held-out halves of the built-in sets (and XSTest, AdvBench with a data directory)."""
    from interp.data.registry import load_prompt_sets
    from interp.data.selection import DataSelection

    specs = ["builtin"] + (["xstest", "advbench"] if data_dir else [])
    return DataSelection("foundation_eval", {}, {"heldout": load_prompt_sets(specs, data_dir=data_dir).split().test})


def main(argv=None) -> int:
    from interp.cli.eval import print_table
    from interp.evaluate import EvalConfig, evaluate
    from interp.evaluate.plots import headline_bars, source_bars
    from interp.figures import save_figure
    from interp.models import load_model

    args = parse(argv)
    out = Path(args.out)
    specs = ["builtin"] + (["xstest", "advbench"] if args.data_dir else [])
    prompts = data_selection(args.data_dir).evaluation["heldout"]
    config = EvalConfig(max_new_tokens=args.max_new_tokens, max_prompts_per_class=args.per_class)
    model = load_model(args.model, device=args.device, dtype=args.dtype)
    result = evaluate(model, prompts, config)
    result.provenance |= {"dtype": args.dtype, "device": str(model.device)}
    result.to_json(out / "eval.json")
    print_table(result, title=f"{model.name} on {prompts.name}")
    summary = {"model": model.name, "data": specs, "config": config.__dict__ | {"detector": None},
               "dtype": args.dtype, "device": str(model.device),
               "metrics": {k: v.to_dict() for k, v in result.metrics.items()}}
    save_figure(headline_bars({model.name: result.metrics}, f"{model.name}: behaviour before safety training"),
                out / "headline", summary)
    for prefix, title in (("harmful/refusal_rate", "refusal rate on harmful prompts by source"),
                          ("seemingly_harmful/compliance_rate", "compliance on seemingly harmful prompts")):
        save_figure(source_bars(result.metrics, prefix, f"{model.name}: {title}"),
                    out / prefix.replace("/", "_"), None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
