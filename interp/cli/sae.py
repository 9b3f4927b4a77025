"""``interp sae collect|train|attribute``: activation store, SAE training (sae-lens), feature attribution."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from interp.cli.common import (
    add_data_args,
    add_device_args,
    add_model_args,
    add_sampling_args,
    load_data_from,
    load_model_from,
    sample_per_class,
)


def add_parser(subparsers) -> None:
    from interp.sae.attribution import ClassifyConfig
    from interp.sae.store import CollectConfig
    from interp.sae.train import SAETrainConfig

    col, tr, cls = CollectConfig(), SAETrainConfig(), ClassifyConfig()
    p = subparsers.add_parser("sae", help="sparse autoencoders on head outputs (sae-lens)")
    sub = p.add_subparsers(dest="sae_command", required=True)

    c = sub.add_parser("collect", help="stream activations of a prompt corpus into a sharded store")
    add_model_args(c)
    add_data_args(c)
    c.add_argument("--site", required=True, help="hook site, e.g. z:12 or resid_post:10")
    c.add_argument("--heads", default=None, help="comma-separated query heads of a z site (default: all)")
    c.add_argument("--positions", choices=["all", "last"], default=col.positions)
    c.add_argument("--with-responses", action="store_true", help="append reference responses where present")
    add_sampling_args(c, None, 0, "corpus prompts per class")
    c.add_argument("--batch-size", type=int, default=col.batch_size)
    c.add_argument("--max-length", type=int, default=col.max_length, help="truncate texts to this many tokens")
    c.add_argument("--shard-rows", type=int, default=col.shard_rows)
    c.add_argument("--out", required=True, help="store directory (re-run the same command to resume)")

    t = sub.add_parser("train", help="train an SAE on a store with sae-lens' trainer")
    t.add_argument("--store", required=True)
    t.add_argument("--key", default=None, help="site key inside the store (default: the only one)")
    t.add_argument("--arch", choices=["standard", "topk"], default=tr.architecture)
    t.add_argument("--d-sae", type=int, default=tr.d_sae)
    t.add_argument("--sae-k", type=int, default=tr.k, help="top-k SAE: active features per row")
    t.add_argument("--l1", type=float, default=tr.l1_coefficient, help="standard SAE: L1 coefficient")
    t.add_argument("--lr", type=float, default=tr.lr)
    t.add_argument("--batch-size", type=int, default=tr.batch_size)
    t.add_argument("--rows", type=int, default=tr.training_rows, help="training rows (store is cycled)")
    t.add_argument("--seed", type=int, default=tr.seed, help="seed of initialisation and data shuffling")
    t.add_argument("--checkpoints", type=int, default=0, help="intermediate checkpoints (enables resume)")
    t.add_argument("--quality-model", default=None,
                   help="model to measure the spliced next-token loss with (default: skip)")
    add_device_args(t)  # --device: where the SAE trains; --dtype: of the quality model (the SAE is float32)
    t.add_argument("--out", required=True)

    a = sub.add_parser("attribute", help="attribute refusal and truthfulness metrics to SAE features")
    add_model_args(a)
    add_data_args(a)
    a.add_argument("--sae", required=True, help="SAE folder written by 'interp sae train'")
    a.add_argument("--store", default=None, help="activation store for top-activating prompts")
    add_sampling_args(a, 16, 0, "prompts per class")
    a.add_argument("--truth-mode", choices=["first", "full"], default="full")
    a.add_argument("--hi", type=float, default=cls.hi, help="normalised |score| at which a metric counts a feature")
    a.add_argument("--lo", type=float, default=cls.lo, help="normalised |score| below which it does not")
    a.add_argument("--out", required=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return {"collect": _collect, "train": _train, "attribute": _attribute}[args.sae_command](args)


def _collect(args) -> int:
    from interp.sae.pipeline import corpus_texts
    from interp.sae.site import ActSite
    from interp.sae.store import CollectConfig, collect_activations

    model = load_model_from(args)
    prompts = sample_per_class(load_data_from(args), args.per_class, args.seed)
    texts, labels = corpus_texts(model, prompts, args.with_responses)
    cfg = CollectConfig(batch_size=args.batch_size, positions=args.positions, shard_rows=args.shard_rows,
                        max_length=args.max_length)
    store = collect_activations(model, texts, [ActSite.parse(args.site, args.heads)], args.out, cfg, labels,
                                {"prompts": prompts.name})
    print(json.dumps({"store": str(store.path), "rows": store.n_rows, "keys": store.keys}))
    return 0


def _train(args) -> int:
    from interp.io import write_json
    from interp.sae.quality import sae_quality
    from interp.sae.store import ActivationStore
    from interp.sae.train import SAETrainConfig, train_sae

    store = ActivationStore(args.store)
    cfg = SAETrainConfig(architecture=args.arch, d_sae=args.d_sae, k=args.sae_k, l1_coefficient=args.l1,
                         lr=args.lr, batch_size=args.batch_size, training_rows=args.rows,
                         n_checkpoints=args.checkpoints, seed=args.seed)
    trained = train_sae(store, args.out, cfg, key=args.key, device=args.device)
    held = store.read(args.key, max_rows=50_000)
    model, texts = None, []
    if args.quality_model:
        model = load_model_from(args, args.quality_model)
        texts = [p["text"] for p in store.prompts()[:32]]
    q = sae_quality(trained.sae, trained.site, held, model, texts, provenance=trained.provenance)
    write_json(Path(args.out) / "quality.json", q.to_dict())
    print(json.dumps({k: v for k, v in q.to_dict().items() if k != "provenance"}))
    return 0


def _attribute(args) -> int:
    from interp.sae.attribution import ClassifyConfig
    from interp.sae.pipeline import run_attribution, write_attribution
    from interp.sae.store import ActivationStore
    from interp.sae.train import load_sae

    model = load_model_from(args)
    trained = load_sae(args.sae, device=model.device)
    trained.site.check(model.spec)
    # sampled here with --seed; run_attribution then keeps all of each (already small) class
    prompts = sample_per_class(load_data_from(args), args.per_class, args.seed)
    attr, checks = run_attribution(model, trained.sae, trained.site, prompts, args.per_class, args.truth_mode,
                                   ClassifyConfig(hi=args.hi, lo=args.lo))
    attr.provenance["sae"] = str(args.sae)
    store = ActivationStore(args.store) if args.store else None
    summary = write_attribution(attr, checks, Path(args.out), trained.sae, store, model.tokenizer)
    print(json.dumps({"counts": summary["counts"], "top": summary["top"],
                      "ablation_passed": {k: v["passed"] for k, v in checks.items()}}))
    return 0
