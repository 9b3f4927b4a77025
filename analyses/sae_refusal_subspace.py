"""SAE decomposition of refusal vs hallucination in chosen heads, and the exported refusal subspace.

config -> collect head outputs -> train SAE (sae-lens) -> quality -> attribute features -> subspace.
Writes JSON/CSV/HTML into --out (default figures/sae/). ~10 min on a laptop CPU with the defaults.

    python analyses/sae_refusal_subspace.py --model smollm2-135m-instruct --layer 12 --heads 0,3,5
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from interp.cli.common import add_device_args
from interp.data.builtin import builtin_prompts
from interp.io import write_json
from interp.models import load_model
from interp.sae.pipeline import corpus_texts, difference_of_means, run_attribution, write_attribution
from interp.sae.quality import sae_quality
from interp.sae.site import ActSite
from interp.sae.store import CollectConfig, collect_activations
from interp.sae.train import SAETrainConfig, train_sae
from interp.subspace import export_subspace, subspace_from_sae


def data_selection(max_prompts: int = 160, seed: int = 0):
    """SAE corpus and attribution prompts from disjoint parts of the training half; quality on held-out text.

    The subspace is later scored on held-out prompts, so nothing that shapes it (corpus, attribution,
    difference of means) may come from the held-out half.
    """
    from interp.data.selection import DataSelection

    sp = builtin_prompts().split()
    fit, attr = sp.train.partition(0.3, seed)
    return DataSelection("sae_refusal_subspace",
                         {"corpus": fit.sample(max_prompts, seed), "attribution": attr},
                         {"quality": sp.test.sample(32, seed)})


def parse(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--layer", type=int, default=12)
    ap.add_argument("--heads", default=None, help="comma-separated query heads (default: whole layer)")
    ap.add_argument("--heads-from", default=None,
                    help="head-study folder (refusal_heads.json, truth_heads.json): choose the site from the "
                         "top heads by |score| instead of --layer/--heads")
    ap.add_argument("--head-k", type=int, default=10, help="with --heads-from: top-k heads of each metric")
    ap.add_argument("--head-rule", choices=["union", "intersection", "refusal", "hallucination"], default="union",
                    help="with --heads-from: how the two top-k sets combine")
    ap.add_argument("--n-random", type=int, default=10, help="random same-size feature sets in the validation")
    ap.add_argument("--arch", choices=["standard", "topk"], default="topk")
    ap.add_argument("--d-sae", type=int, default=512)
    ap.add_argument("--sae-k", type=int, default=16, help="top-k SAE: active features per row")
    ap.add_argument("--rows", type=int, default=150_000, help="SAE training rows")
    ap.add_argument("--corpus-prompts", type=int, default=160, help="training-corpus prompts (with responses)")
    ap.add_argument("--max-length", type=int, default=128, help="tokens per text")
    ap.add_argument("--per-class", type=int, default=16, help="prompts per class for attribution")
    ap.add_argument("--n-refusal", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0, help="sampling seed (the held-out split never changes)")
    ap.add_argument("--out", default="figures/sae", help="figures, JSON and the exported subspaces")
    ap.add_argument("--work", default="runs/sae", help="activation stores and SAE weights (large files)")
    add_device_args(ap)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out, work = Path(args.out), Path(args.work)
    t0 = time.time()
    model = load_model(args.model, device=args.device, dtype=args.dtype)
    heads = tuple(int(h) for h in args.heads.split(",")) if args.heads else None
    site = ActSite.parse(f"z:{args.layer}", args.heads)
    choice = None
    if args.heads_from:
        from interp.heads.scores import HeadScores
        from interp.sae.site_choice import sites_from_heads

        hdir = Path(args.heads_from)
        choice = sites_from_heads(HeadScores.from_json(hdir / "refusal_heads.json"),
                                  HeadScores.from_json(hdir / "truth_heads.json"), args.head_k, args.head_rule)
        site, heads = choice.primary, choice.primary.heads

    sel = data_selection(args.corpus_prompts, args.seed)
    corpus, attr_set, heldout = sel.train["corpus"], sel.train["attribution"], sel.evaluation["quality"]
    texts, labels = corpus_texts(model, corpus, with_responses=True)
    ccfg = CollectConfig(batch_size=8, max_length=args.max_length)
    store = collect_activations(model, texts, [site], work / "store", ccfg, labels,
                                {"prompts": corpus.name, "dtype": args.dtype})
    t_collect = time.time() - t0

    cfg = SAETrainConfig(architecture=args.arch, d_sae=args.d_sae, k=args.sae_k, training_rows=args.rows,
                         batch_size=512, lr=1e-3)
    trained = train_sae(store, work / "sae", cfg, provenance={"heads": heads})
    t_train = time.time() - t0 - t_collect
    held_texts, _ = corpus_texts(model, heldout, with_responses=True)
    held = collect_activations(model, held_texts, [site], work / "store_heldout", ccfg)
    quality = sae_quality(trained.sae, site, held.read(), model, held_texts[:24],
                          provenance=trained.provenance)
    write_json(out / "sae_quality.json", quality.to_dict())

    attr, checks = run_attribution(model, trained.sae, site, attr_set, args.per_class)
    attr.provenance["sae"] = str(trained.path)
    summary = write_attribution(attr, checks, out, trained.sae, store, model.tokenizer)

    dom = difference_of_means(model, site, attr_set.by_label("harmful").texts[:32],
                              attr_set.by_label("harmless").texts[:32])
    keep = attr.features("refusal")[: args.n_refusal]
    remove = attr.features("hallucination")
    validation = None
    if keep:  # the ablation check on exactly the subspace's features, on the attribution's prompts
        from interp.sae.attribution import refusal_batches, validate_features

        rb = refusal_batches(model, attr_set.by_label("harmful").sample(args.per_class).texts,
                             attr_set.by_label("harmless").sample(args.per_class).texts)
        validation = validate_features(model, trained.sae, site, rb, keep, attr.refusal, args.n_random, args.seed)
    sub = subspace_from_sae(trained.sae, site, keep, remove, dom[None], model.spec.to_dict(),
                            {"model": model.name, "sae": str(trained.path), "attribution": summary["counts"],
                             "site_choice": None if choice is None else choice.provenance},
                            validation=validation)
    path = export_subspace(sub, out / "subspaces")
    report = {"model": model.name, "dtype": args.dtype, "device": str(model.device), "site": site.to_dict(),
              "quality": quality.to_dict() | {"provenance": None},
              "attribution": {k: summary[k] for k in ("counts", "top", "ablation_checks")},
              "subspace": {"path": str(path), "k": sub.k, "d": sub.d, "version": sub.version},
              "validation": None if validation is None else validation.to_dict(),
              "site_choice": None if choice is None else choice.provenance,
              "seconds": {"collect": t_collect, "train": t_train, "total": time.time() - t0},
              "store_rows": store.n_rows}
    write_json(out / "summary.json", report)
    print(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
