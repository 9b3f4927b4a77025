"""``interp heads``: refusal and truthfulness head scores, their overlap, figures and JSON in one folder."""

from __future__ import annotations

import argparse
import logging

from interp.cli.common import add_data_args, add_model_args, add_sampling_args, load_data_from, load_model_from
from interp.heads.study import HeadStudyConfig, run_head_study, write_head_study

log = logging.getLogger(__name__)

DEFAULT_DATA = ("builtin:harmful", "builtin:harmless", "builtin:factual")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``heads`` subcommand."""
    p = subparsers.add_parser(
        "heads", help="score attention heads for refusal and truthfulness and measure their overlap",
        description="Score every attention head for the refusal metric (harmful vs harmless) and the "
                    "first-token truth margin (factual items), compare the two maps (Jaccard@k, Spearman, "
                    "permutation p-values) and write JSON, heatmaps and attention views into --out.",
    )
    add_model_args(p)
    add_data_args(p)  # needs harmful, harmless and factual prompts; default: the built-in sets
    p.add_argument("--out", required=True, help="output folder")
    d = HeadStudyConfig()
    p.add_argument("--method", choices=["attribution", "activation_patching"], default=d.method)
    p.add_argument("--probes", action="store_true", help="also fit ITI probes per head")
    p.add_argument("--top-k", type=int, nargs="+", default=list(d.ks), help="top-k sizes for the overlap")
    p.add_argument("--figure-k", type=int, default=d.figure_k)
    p.add_argument("--permutations", type=int, default=d.n_permutations)
    p.add_argument("--rank-by", choices=["signed", "magnitude"], default=d.rank_by,
                   help="rank heads by signed score or by the magnitude of their effect")
    p.add_argument("--candidates", type=int, default=d.candidate_k, metavar="K",
                   help="also patch exactly the union of both attribution maps' top-K heads by magnitude")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    add_sampling_args(p, d.n_prompts, d.seed, "prompts per class")
    p.set_defaults(func=run)
    return p


def config_from_args(args: argparse.Namespace) -> HeadStudyConfig:
    return HeadStudyConfig(n_prompts=args.per_class, method=args.method, probes=args.probes, ks=tuple(args.top_k),
                           figure_k=args.figure_k, n_permutations=args.permutations,
                           batch_size=args.batch_size, seed=args.seed, rank_by=args.rank_by,
                           candidate_k=args.candidates)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    prompts = load_data_from(args, DEFAULT_DATA)
    model = load_model_from(args)
    study = run_head_study(model, prompts, config)
    paths = write_head_study(model, study, args.out)
    ov = study.overlap
    log.info("wrote %d files to %s", len(paths), args.out)
    print(f"refusal top-5: {study.refusal.top_k(5)}")
    print(f"truthfulness top-5: {study.truth.top_k(5)}")
    print("overlap: " + ", ".join(f"J@{k}={ov.jaccard[k]:.2f} (p={ov.jaccard_p[k]:.3g})" for k in ov.jaccard)
          + f", Spearman={ov.spearman:.3f} (p={ov.spearman_p:.3g})")
    if study.candidates is not None:
        cov = study.candidates.overlap
        print(f"exact patching on {len(study.candidates.candidates)} candidates: "
              + ", ".join(f"J@{k}={cov.jaccard[k]:.2f} (p={cov.jaccard_p[k]:.3g})" for k in cov.jaccard))
    print(f"files in {args.out}")
    return 0
