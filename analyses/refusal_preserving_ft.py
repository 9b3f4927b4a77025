"""Truthfulness fine-tuning with and without the refusal-subspace constraint.

config -> compute -> plot -> write. Starting from a safety-aligned checkpoint, fine-tunes for
truthfulness (SFT on the training halves of the factual sets) in up to four variants:

* unconstrained;
* constrained: every update of the weights that write into the exported refusal subspace is projected
  off it (:class:`interp.train.constraints.SubspaceConstraint`; the subspace is loaded from disk, i.e.
  from another process's export);
* constrained-frozen: as constrained, and every weight upstream of the subspace's site is frozen, so
  the subspace projection there is invariant for every prompt;
* upstream-frozen: the control for constrained-frozen, the same weights frozen and nothing projected.

Scores each model on held-out halves:
MC1 on factual questions, refusal rate on harmful prompts, compliance on seemingly harmful and
harmless prompts; and measures how far each fine-tune moved the subspace projection of the site's
activation on held-out prompts. Writes JSON/CSV/figures into --out.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def parse(argv=None) -> argparse.Namespace:
    from interp.cli.common import add_device_args

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="runs/align/stl/model")
    p.add_argument("--subspace", default=None, help="exported subspace folder (default: latest in --subspaces)")
    p.add_argument("--subspaces", default="figures/sae/subspaces")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="figures/finetune")
    p.add_argument("--runs", default="runs/finetune")
    p.add_argument("--n-train", type=int, default=240)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=8e-5)
    p.add_argument("--per-source", type=int, default=None, help="held-out prompts per source (default: all)")
    p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS,
                   help="constrained-frozen also freezes every weight upstream of the subspace's site; "
                        "upstream-frozen freezes those weights without the constraint (a control)")
    add_device_args(p)  # the aligned model and every fine-tuned copy
    return p.parse_args(argv)


VARIANTS = ("unconstrained", "constrained", "constrained-frozen", "upstream-frozen")
"""upstream-frozen is the control for constrained-frozen: the same weights frozen, no projection."""


def subspace_drift(model, subspace, texts: list[str], reference) -> float:
    """Mean |B a(x) - B a_ref(x)| / mean |B a_ref(x)|: how far a fine-tune moved the subspace component."""
    from interp.sae.pipeline import last_token_activations

    basis = subspace.basis.double()
    proj = last_token_activations(model, subspace.site, texts) @ basis.T
    ref = reference @ basis.T
    return float((proj - ref).norm(dim=-1).mean() / ref.norm(dim=-1).mean().clamp_min(1e-12))


def data_selection(data_dir, per_source: int | None = None):
    """Factual training half for the fine-tune; every class's held-out half for the evaluation."""
    from interp.data.prompts import concat
    from interp.data.selection import DataSelection
    from interp.data.suites import load_suite

    held = concat("heldout", [ps for label in ("harmful", "seemingly_harmful", "harmless", "factual")
                              for ps in load_suite(label, data_dir).test(per_source).values()])
    return DataSelection("refusal_preserving_ft", {"factual": load_suite("factual", data_dir).train()},
                         {"heldout": held})


def main(argv=None) -> int:
    from dataclasses import replace

    from interp.evaluate import EvalConfig, evaluate
    from interp.evaluate.plots import headline_bars
    from interp.figures import save_figure
    from interp.io import write_json
    from interp.models import load_model
    from interp.sae.pipeline import last_token_activations
    from interp.subspace import latest_version, load_subspace
    from interp.train import SFTConfig
    from interp.train.constraints import SubspaceConstraint, upstream_prefixes
    from interp.train.truthful import truthful_finetune

    args = parse(argv)
    out, runs = Path(args.out), Path(args.runs)
    sub_path = Path(args.subspace) if args.subspace else latest_version(args.subspaces)
    sel = data_selection(args.data_dir, args.per_source)
    factual_train, held = sel.train["factual"], sel.evaluation["heldout"]
    probe_texts = held.by_label("harmful").texts[:16] + held.by_label("factual").texts[:16]
    sft = replace(SFTConfig(), lr=args.lr, epochs=args.epochs)
    config = EvalConfig(max_new_tokens=args.max_new_tokens)

    base = load_model(args.model, device=args.device, dtype=args.dtype)
    subspace = load_subspace(sub_path, base)
    reference = last_token_activations(base, subspace.site, probe_texts)
    results, drift, training = {"aligned": evaluate(base, held, config).metrics}, {"aligned": 0.0}, {}
    for name in args.variants:
        model = load_model(args.model, device=args.device, dtype=args.dtype)
        constraint = None if name in ("unconstrained", "upstream-frozen") else SubspaceConstraint(
            model, load_subspace(sub_path, model), freeze_upstream=name == "constrained-frozen")
        train_config = sft if name != "upstream-frozen" else replace(
            sft, frozen=sft.frozen + upstream_prefixes(subspace.layer))
        res = truthful_finetune(model, factual_train, train_config, runs / name, constraint, n=args.n_train,
                                provenance={"subspace": str(sub_path), "dtype": args.dtype})
        training[name] = {"steps": res.steps, "final_loss": res.losses[-1][1]}
        drift[name] = subspace_drift(model, subspace, probe_texts, reference)
        results[name] = evaluate(model, held, config).metrics
    keys = ("factual/mc1", "harmful/refusal_rate", "seemingly_harmful/compliance_rate", "harmless/compliance_rate")
    table = {name: {k: m[k].to_dict() for k in keys if k in m} | {"subspace_drift": drift[name]}
             for name, m in results.items()}
    write_json(out / "finetune.json", {"table": table, "training": training, "subspace": str(sub_path),
                                       "model": args.model, "config": vars(args)})
    save_figure(headline_bars(results, "truthfulness fine-tuning: unconstrained vs refusal-subspace constrained"),
                out / "headline", table)
    for name, row in table.items():
        print(name, {k: round(v["mean"], 3) if isinstance(v, dict) else round(v, 4) for k, v in row.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
