"""``interp ntk``: empirical-NTK class similarity of prompt sets (exact or sketched)."""

from __future__ import annotations

import argparse
from pathlib import Path

from interp.cli.common import (
    add_data_args,
    add_model_args,
    add_sampling_args,
    load_data_from,
    load_model_from,
    sample_per_class,
)


def add_parser(sub) -> None:
    from interp.ntk.config import NTKConfig

    d = NTKConfig()
    p = sub.add_parser("ntk", help="NTK similarity of prompts on the first-token logits (DCR diagnosis)",
                       description="Normalised empirical-NTK similarity S(x', x) = ||K(x',x)||_F / "
                                   "||K(x',x')||_F between prompts, class means and a heatmap.")
    add_model_args(p)
    add_data_args(p)
    p.add_argument("--estimator", choices=("exact", "sketch"), default=d.estimator,
                   help="exact Jacobians (tiny models only) or the sketched estimator (default)")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--n-probes", type=int, default=d.n_probes, help="sketch: output probes m")
    p.add_argument("--sketch-dim", type=int, default=d.sketch_dim, help="sketch: parameter sketch width s")
    p.add_argument("--layers-upto", type=int, default=None, help="only embedding + blocks 0..L")
    p.add_argument("--param-filter", action="append", default=None, metavar="SUBSTRING",
                   help="only parameters whose name contains this (repeatable)")
    p.add_argument("--logit-top-k", type=int, default=None,
                   help="kernel on each prompt's own k most likely first-token logits (the DCR paper's code: 10)")
    p.add_argument("--last-layers", type=int, default=None,
                   help="only the last L blocks and the final norm (the paper's code: the last layers)")
    add_sampling_args(p, None, d.seed, "prompts per class (the seed also draws the sketch's probes and hashes)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from interp.io import write_json, write_with
    from interp.ntk import NTKConfig, kernel_similarity
    from interp.ntk.plots import class_means_heatmap, similarity_heatmap

    config = NTKConfig(estimator=args.estimator, layers_upto=args.layers_upto,
                       param_filter=tuple(args.param_filter) if args.param_filter else None,
                       n_probes=args.n_probes, sketch_dim=args.sketch_dim, seed=args.seed,
                       top_k=args.logit_top_k, last_layers=args.last_layers)
    prompts = load_data_from(args, default=("builtin:seemingly_harmful", "builtin:harmful"))
    prompts = sample_per_class(prompts, args.per_class, args.seed)
    model = load_model_from(args)
    km = kernel_similarity(model, prompts, config)
    out: Path = args.out
    km.save(out / "kernel")
    means = km.class_means()
    write_json(out / "class_means.json", [{"x_prime": a, "x": b, "mean_similarity": v}
                                          for (a, b), v in means.items()])
    for name, fig in (("similarity", similarity_heatmap(km)), ("class_means", class_means_heatmap(km))):
        write_with(out / f"{name}.html", fig.write_html)
        write_with(out / f"{name}.png", lambda tmp, fig=fig: fig.write_image(tmp, format="png"))
    for (a, b), v in means.items():
        print(f"{a:>20s} x {b:<20s} {v:.4f}")
    print(f"wrote {out}")
    return 0
