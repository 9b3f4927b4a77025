"""The resumable stages of a SafeMoE run, each writing JSON (and adapters) under one output folder.

``corpora`` -> ``experts`` -> ``router`` -> ``losses`` -> ``eval``. Each stage skips work whose output
already exists (a corpus file, an expert adapter, a router, a variant's scores), so a killed run is
rerun with the same command. Harmful text (corpora, replies) lands only under ``out/cache`` and in
the eval records: keep ``out`` under the gitignored ``runs/``.

Layout::

    out/cache/corpora/<domain>.{train,heldout}.jsonl, harmless.train.jsonl
    out/experts/<domain>/adapter/          peft adapters (plain-HF keys)
    out/controls/safe_data_lora/adapter/        the no-expert control
    out/random_experts/<name>/             Gaussian control experts (norm-matched)
    out/routers/{main,zeroshot,random}/    router.safetensors + router.json
    out/loss_matrix.json, out/eval/<variant>.json, out/corpora.json, out/experts.json
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from interp.io import write_json
from interp.safemoe.config import SafeMoEConfig
from interp.safemoe.corpora import build_corpus, read_corpus
from interp.safemoe.data import safe_informative
from interp.safemoe.domains import by_domain
from interp.safemoe.experts import ExpertSpec, add_merges, add_random_experts, load_experts
from interp.safemoe.moe import SafeMoE
from interp.safemoe.prompts import eval_prompts, harm_prompts, harmless_prompts
from interp.safemoe.router import load_router, save_router, train_router
from interp.train.examples import SFTExample
from interp.train.lora import save_adapter

log = logging.getLogger(__name__)

STAGES = ("corpora", "experts", "router", "losses", "eval")
ROUTERS = ("main", "zeroshot", "random")


def _corpus_dir(out: Path) -> Path:
    return out / "cache" / "corpora"


def stage_corpora(model, cfg: SafeMoEConfig, out: Path, data_dir) -> dict:
    """The untrained model's greedy answers: per domain (training and held-out halves) and harmless."""
    harm = harm_prompts(cfg.harm_sources, data_dir)
    train, test = harm.split()
    counts = {}
    for half, ps, n in (("train", train, cfg.train_per_domain), ("heldout", test, cfg.heldout_per_domain)):
        for d, dps in by_domain(ps, cfg.domains).items():
            if not dps:
                raise ValueError(f"domain {d!r} has no {half} prompts in sources {list(cfg.harm_sources)}")
            rows = build_corpus(model, dps.sample(n, cfg.seed), _corpus_dir(out) / f"{d}.{half}.jsonl",
                                cfg.corpus_tokens, cfg.batch_size)
            if not rows:
                raise ValueError(f"{model.name!r} gave only empty replies to the {half} prompts of domain {d!r}; "
                                 f"nothing to train or score (delete {_corpus_dir(out)} to regenerate)")
            counts[f"{d}.{half}"] = len(rows)
    harmless = harmless_prompts(data_dir).split().train.sample(cfg.harmless_train, cfg.seed)
    rows = build_corpus(model, harmless, _corpus_dir(out) / "harmless.train.jsonl", cfg.corpus_tokens,
                        cfg.batch_size)
    counts["harmless.train"] = len(rows)
    summary = {"counts": counts, "sources": list(cfg.harm_sources), "model": model.name,
               "note": "texts are in cache/corpora (harmful; never commit)"}
    write_json(out / "corpora.json", summary)
    return summary


def corpus_examples(out: Path, name: str, kind: str) -> list[SFTExample]:
    path = _corpus_dir(out) / f"{name}.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the corpora stage first")
    return [r.example(kind) for r in read_corpus(path)]


def router_examples(out: Path, domains: Sequence[str]) -> list[SFTExample]:
    """Safe-informative replies of ``domains`` plus harmless prompts with the model's own answers."""
    safe = [SFTExample(s.prompt, s.response, "safe_informative") for s in safe_informative() if s.domain in domains]
    return safe + corpus_examples(out, "harmless.train", "harmless")


def stage_experts(load_base: Callable[[], object], cfg: SafeMoEConfig, out: Path) -> dict:
    """One LoRA expert per domain on its training corpus, and the safe-data LoRA control."""
    from interp.safemoe.experts import train_expert

    summary = {}
    for i, d in enumerate(cfg.domains):
        examples = corpus_examples(out, f"{d}.train", f"harmful:{d}")
        path = train_expert(load_base, examples, replace(cfg.expert_sft, seed=cfg.seed + i), out / "experts" / d,
                            provenance={"safemoe_domain": d})
        summary[d] = _train_summary(path.parent)
    safe = router_examples(out, cfg.domains)
    path = train_expert(load_base, safe, replace(cfg.expert_sft, seed=cfg.seed), out / "controls" / "safe_data_lora",
                        provenance={"safemoe_control": "safe_data_lora"})
    summary["safe_data_lora"] = _train_summary(path.parent)
    write_json(out / "experts.json", summary)
    return summary


def _train_summary(run_dir: Path) -> dict:
    rec = json.loads((run_dir / "train.json").read_text())
    losses = rec["losses"]
    return {"n_examples": rec["n_examples"], "steps": len(losses), "first_loss": losses[0][1] if losses else None,
            "last_loss": losses[-1][1] if losses else None}


def assemble(model, cfg: SafeMoEConfig, out: Path, routers: bool = True) -> SafeMoE:
    """Load experts, controls, merges, random experts and (if trained) routers onto ``model``."""
    specs = [ExpertSpec(d, out / "experts" / d / "adapter") for d in cfg.domains]
    tuner = load_experts(model, specs)
    control = out / "controls" / "safe_data_lora" / "adapter"
    extra = []
    if control.exists():
        load_experts(model, [ExpertSpec("safe_data_lora", control)], tuner)
        extra.append("safe_data_lora")
    random_names = {f"random_{d}": d for d in cfg.domains}
    saved = [ExpertSpec(n, out / "random_experts" / n) for n in random_names]
    if all(s.path.exists() for s in saved):
        load_experts(model, saved, tuner)
    else:
        add_random_experts(model, tuner, random_names, seed=cfg.seed)
        for n in random_names:
            save_adapter(model, cfg.expert_sft.lora, out / "random_experts" / n, adapter_name=n)
    merges = add_merges(tuner, cfg.domains)
    moe = SafeMoE(model, tuner, tuple(cfg.domains), {}, tuple(merges + extra))
    if routers:
        for key in ROUTERS:
            if (out / "routers" / key / "router.json").exists():
                moe.routers[key] = load_router(out / "routers" / key, model.device)
    return moe


def stage_router(model, cfg: SafeMoEConfig, out: Path) -> dict:
    """Train the main router, the zero-shot one (``zero_shot_holdout`` unseen) and one over random experts."""
    moe = assemble(model, cfg, out, routers=False)
    seen = [d for d in cfg.domains if d not in cfg.zero_shot_holdout]
    plans = {"main": (moe.experts, list(cfg.domains)), "zeroshot": (moe.experts, seen),
             "random": (tuple(f"random_{d}" for d in cfg.domains), list(cfg.domains))}
    summary = {}
    for key, (experts, domains) in plans.items():
        path = out / "routers" / key
        if not (path / "router.json").exists():
            examples = router_examples(out, domains)
            result = train_router(model, experts, examples, cfg.router,
                                  provenance={"router": key, "trained_domains": domains})
            save_router(result, path)
        r = load_router(path)
        summary[key] = {"first_loss": r.losses[0], "last_loss": r.losses[-1], "experts": list(r.experts),
                        "trained_domains": r.provenance.get("trained_domains")}
    write_json(out / "routers.json", summary)
    return summary


def stage_losses(model, cfg: SafeMoEConfig, out: Path) -> dict:
    """The domain x expert held-out loss matrix."""
    from interp.safemoe.isolation import loss_matrix

    moe = assemble(model, cfg, out, routers=False)
    heldout = {d: corpus_examples(out, f"{d}.heldout", d) for d in cfg.domains}
    m = loss_matrix(moe, heldout, max_length=cfg.expert_sft.max_length).to_dict()
    write_json(out / "loss_matrix.json", m)
    return m


def stage_eval(model, cfg: SafeMoEConfig, out: Path, data_dir, variants: Sequence[str] | None = None,
               extra_models: dict[str, Callable[[], object]] | None = None) -> dict:
    """Score every variant (and ``extra_models``, e.g. an STL checkpoint) on the held-out evaluation prompts."""
    from interp.safemoe.scoring import score_variant

    prompts = eval_prompts(cfg.eval_harmful, cfg.eval_per_source, cfg.seed, data_dir)
    harm = _harm_judge(data_dir)
    moe = assemble(model, cfg, out)
    todo = list(variants) if variants is not None else moe.variants()
    done = {}
    for v in todo:
        path = out / "eval" / f"{v.replace(':', '_')}.json"
        if not path.exists():
            key = v.split(":", 1)[1] if v.startswith("router:") else None
            scores = score_variant(moe, v, prompts, harm, cfg.eval_tokens, cfg.batch_size, key)
            write_json(path, scores.to_dict())
        done[v] = str(path)
    for name, load in (extra_models or {}).items():
        path = out / "eval" / f"{name}.json"
        if not path.exists():
            other = SafeMoE(load(), None, (), {}, ())
            scores = _score_plain(other, name, prompts, harm, cfg)
            write_json(path, scores.to_dict())
        done[name] = str(path)
    write_json(out / "eval.json", {"variants": done, "n_prompts": len(prompts), "counts": prompts.counts("source")})
    return done


def _score_plain(moe: SafeMoE, name: str, prompts, harm, cfg: SafeMoEConfig):
    from interp.evaluate.generate import generate
    from interp.safemoe.scoring import VariantScores, score_replies, summarise

    replies = generate(moe.model, prompts.texts, cfg.eval_tokens, cfg.batch_size, progress=False)
    records = score_replies(prompts, replies, harm)
    return VariantScores(name, records, summarise(records), {"model": moe.model.name})


def _harm_judge(data_dir):
    if data_dir is None:
        log.warning("no data directory: no harm judge, every non-refusal of a harmful prompt counts as harmful")
        return None
    from interp.safemoe.data import load_jbb_artifacts
    from interp.safemoe.judges import fit_harm_judge

    folder = Path(data_dir) / "jbb_artifacts"
    if not folder.exists():
        log.warning("%s missing: no harm judge", folder)
        return None
    return fit_harm_judge(load_jbb_artifacts(folder))
