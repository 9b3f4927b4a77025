"""``interp align``: safety-align a model with STL, STL-aug or DCR."""

from __future__ import annotations

import argparse
from dataclasses import replace

from interp.cli.common import add_model_args


def add_parser(sub) -> None:
    from interp.train import AlignConfig, ContrastiveConfig, SFTConfig
    from interp.train.contrastive import POOLINGS

    p = sub.add_parser(
        "align", help="safety fine-tuning: stl, stl-aug or dcr (contrastive refinement + stl)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Fine-tune a model to refuse harmful requests. Trains on the training halves of the "
        "built-in sets and of the benchmarks in --data-dir; evaluation halves are never used. Resumes "
        "from OUT/checkpoint after an interruption. The aligned model is written to OUT/model. Runs on "
        "several processes (DDP) under `accelerate launch -m interp.cli align ...`.")
    add_model_args(p)
    p.add_argument("--recipe", choices=("stl", "stl-aug", "dcr"), default="stl")
    p.add_argument("--data-dir", default=None, help="benchmark data directory (advbench/, catqa/, ...)")
    p.add_argument("--out", default=None, help="output directory (default: runs/align/RECIPE)")
    sft, con, cfg = SFTConfig(), ContrastiveConfig(), AlignConfig()
    p.add_argument("--epochs", type=int, default=sft.epochs)
    p.add_argument("--lr", type=float, default=sft.lr)
    p.add_argument("--batch-size", type=int, default=sft.batch_size)
    p.add_argument("--grad-accum", type=int, default=sft.grad_accum,
                   help="micro-batches per process per optimizer step (the step still sees --batch-size examples)")
    p.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default=None,
                   help="accelerate autocast mixed precision (default: the accelerate launch config's, else no)")
    p.add_argument("--lora-rank", type=int, default=0,
                   help="train rank-r LoRA adapters on q_proj/v_proj instead of the weights (0: full fine-tuning); "
                        "merged into OUT/model, adapter in OUT/adapter")
    p.add_argument("--n-refusal", type=int, default=cfg.n_refusal, help="(harmful, refusal) pairs")
    p.add_argument("--n-general", type=int, default=cfg.n_general, help="(harmless, own answer) pairs")
    p.add_argument("--n-helpful", type=int, default=cfg.n_helpful,
                   help="(seemingly harmful, helpful) pairs; stl-aug")
    p.add_argument("--dcr-layer", type=int, default=con.layer, help="layer l of the contrastive stage")
    p.add_argument("--dcr-steps", type=int, default=con.steps, help="optimizer steps of the contrastive stage")
    p.add_argument("--dcr-lr", type=float, default=con.lr, help="learning rate of the contrastive stage")
    p.add_argument("--dcr-margin", type=float, default=con.margin, help="Circle-loss relaxation margin m")
    p.add_argument("--dcr-gamma", type=float, default=con.gamma, help="Circle-loss scale gamma")
    p.add_argument("--dcr-pooling", choices=POOLINGS, default=con.pooling,
                   help="pooling of layer l's states: the user's tokens, every prompt token, or the last token")
    p.add_argument("--dcr-per-class", type=int, default=con.per_class,
                   help="prompts of each class in every contrastive batch")
    p.add_argument("--track", choices=("none", "refusal", "kernel"), default="refusal",
                   help="record per-class refusal probability (refusal) and also gradient-kernel class "
                        "similarity (kernel) at every callback step")
    p.add_argument("--kernel-per-class", type=int, default=6,
                   help="held-out prompts per class for --track kernel (each costs ~15 forward+backward passes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--protect", choices=("none", "freeze", "lr"), default=cfg.protect,
                   help="supervised stage: train the embeddings and blocks <= l (the contrastive layer) like the "
                        "rest, freeze them, or train them at --protect-lr-scale times the rate")
    p.add_argument("--protect-lr-scale", type=float, default=cfg.protect_lr_scale,
                   help="learning-rate factor of the protected layers under --protect lr")
    p.add_argument("--protect-layer", type=int, default=None, help="layer l to protect (default: --dcr-layer)")
    p.add_argument("--refusal-fraction", type=float, default=None,
                   help="set --n-refusal to this share of the STL mixture given --n-general (the paper: ~0.05)")
    p.add_argument("--distill-tokens", type=int, default=cfg.distill_tokens,
                   help="length of the self-distilled general answers (cached per prompt in --cache-dir)")
    p.add_argument("--cache-dir", default=None,
                   help="self-distillation cache shared by recipes and seeds (default: OUT/../cache)")
    p.add_argument("--dcr-diagnostic", type=int, default=0, metavar="N",
                   help="dcr: measure separation (cosines, probe AUC, refusal probability, LM loss) of N held-out "
                        "prompts per class at every contrastive callback step (0: off)")
    p.set_defaults(func=run)


def config_from(args):
    from interp.train import AlignConfig, ContrastiveConfig, LoRAConfig, SFTConfig

    lora = LoRAConfig(rank=args.lora_rank, alpha=2.0 * args.lora_rank) if args.lora_rank else None
    sft = SFTConfig(lr=args.lr, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                    grad_accum=args.grad_accum, mixed_precision=args.mixed_precision, lora=lora)
    con = replace(ContrastiveConfig(), layer=args.dcr_layer, steps=args.dcr_steps, lr=args.dcr_lr,
                  margin=args.dcr_margin, gamma=args.dcr_gamma, pooling=args.dcr_pooling,
                  per_class=args.dcr_per_class, seed=args.seed)
    n_refusal = args.n_refusal
    if args.refusal_fraction is not None:
        if not 0 < args.refusal_fraction < 1:
            raise SystemExit(f"--refusal-fraction must be in (0, 1), got {args.refusal_fraction}")
        n_refusal = round(args.refusal_fraction / (1 - args.refusal_fraction) * args.n_general)
    return AlignConfig(recipe=args.recipe, n_refusal=n_refusal, n_general=args.n_general,
                       n_helpful=args.n_helpful, sft=sft, contrastive=con, seed=args.seed,
                       protect=args.protect, protect_lr_scale=args.protect_lr_scale,
                       protect_layer=args.protect_layer, distill_tokens=args.distill_tokens)


def run(args) -> int:
    from pathlib import Path

    from interp.cli.common import load_model_from
    from interp.train import align
    from interp.train.align import suite_align_data
    from interp.train.tracking import tracking_callbacks

    out = Path(args.out or f"runs/align/{args.recipe}")
    model = load_model_from(args)
    data = suite_align_data(args.data_dir, seed=args.seed)
    callbacks = () if args.track == "none" else tracking_callbacks(
        model, args.data_dir, kernel=args.track == "kernel", kernel_per_class=args.kernel_per_class)
    config = config_from(args)
    diagnostic = []
    if args.dcr_diagnostic and config.recipe == "dcr":
        from interp.evaluate.reference_text import REFERENCE_PARAGRAPHS
        from interp.train.contrastive_diagnostic import SeparationCallback, heldout_classes

        a, b = heldout_classes(args.data_dir, args.dcr_diagnostic, seed=args.seed)
        diagnostic = [SeparationCallback(a, b, REFERENCE_PARAGRAPHS, config.contrastive.layer,
                                         config.contrastive.pooling)]
    result = align(model, data, config, out, callbacks=callbacks, cache_dir=args.cache_dir,
                   contrastive_callbacks=diagnostic)
    print(f"aligned model: {result.model_dir}  ({result.steps} steps, final loss {result.losses[-1][1]:.3f})")
    return 0
