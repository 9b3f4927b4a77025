"""Refusal vs hallucination heads, refusal-direction sanity checks, the truthfulness/safety trade-off.

config -> compute -> plot -> write. For a (safety-trained) checkpoint:

1. head study on a training split: refusal and truthfulness head scores, overlap, figures; the overlap
   ranks heads by the magnitude of their effect (``--rank-by signed`` for the signed ranking) and reports
   Jaccard@{5,10,20,30} with permutation p-values and the chance level (mean of the permutation null),
   once for the attribution maps over all heads and once for exact activation patching restricted to
   the union of both maps' top-30 candidates (null over the candidates only); also ``overlap.md``;
2. refusal direction (difference of means, layer chosen on a validation split): ablating it from every
   layer should raise attack success on held-out harmful prompts; adding it should make the model refuse
   held-out harmless prompts;
3. trade-off sweep: ITI steering of the top truthfulness heads (by held-out probe accuracy) with strength
   alpha, and activation addition along the truthfulness direction (= steering along the negative
   hallucination direction) with scale s; each point: factual MC1 accuracy and attack success rate (ASR =
   share of held-out harmful prompts answered without a refusal); both curves on one figure;
4. mean-ablation of the top refusal heads, the top truthfulness heads and the heads in both top-k sets,
   in turn: refusal rate and MC accuracy.

    python analyses/heads_tradeoff.py --model PATH [--out figures/heads] [--eval-per-class 40] [--rank-by magnitude]
        [--study-only]

Run it once on the instruct model and once on the STL checkpoint for the two rows of the overlap table.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass

import plotly.graph_objects as go

from interp.data.prompts import PromptSet, Split
from interp.data.registry import load_prompt_sets
from interp.data.selection import DataSelection
from interp.directions import (
    head_directions,
    refusal_directions,
    select_refusal_direction,
    select_truth_direction,
    truth_directions,
)
from interp.evaluate import generate, is_refusal, mc_scores
from interp.evaluate.coherence import CoherenceJudge
from interp.figures import save_figure
from interp.heads import answer_activations, head_means, probe_heads, refusal_metric, truth_metric
from interp.heads.overlap import jaccard_cell
from interp.heads.scores import RankBy
from interp.heads.study import HeadStudyConfig, run_head_study, write_head_study
from interp.interventions import ablate_direction, add_direction, mean_ablate_heads, steer_heads
from interp.io import write_json, write_text
from interp.models import load_model

log = logging.getLogger("heads_tradeoff")


@dataclass(frozen=True)
class Config:
    """Settings of the analysis."""

    model: str = "smollm2-135m-instruct"
    """Model name or (safety-trained) checkpoint directory."""
    data: tuple[str, ...] = ("builtin:harmful", "builtin:harmless", "builtin:factual")
    """Prompt specs (harmful, harmless, factual; add e.g. advbench:PATH for more harmful prompts)."""
    n_train: int = 32
    """Prompts per class for head scores and directions."""
    n_eval: int = 40
    """Held-out harmful / harmless / factual prompts per evaluation."""
    max_new_tokens: int = 24
    """Tokens generated per reply (refusal detection reads the opening)."""
    top_k: int = 10
    """Heads steered (ITI) and ablated per group."""
    alphas: tuple[float, ...] = (0.0, 5.0, 10.0, 15.0)
    """ITI strengths."""
    scales: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0)
    """Scales of the truthfulness direction added at its layer."""
    batch_size: int = 8
    """Prompts per forward pass / generation batch."""
    seed: int = 0
    """Split and sampling seed."""
    data_dir: str | None = None
    """Benchmark data directory; when given, AdvBench joins the harmful prompts."""
    device: str | None = None
    """Torch device of the model (default: cuda if available, else cpu)."""
    dtype: str = "float32"
    """Dtype of the model's weights and activations (float32, bfloat16 or float16)."""
    rank_by: RankBy = "magnitude"
    """Head ranking of the overlap statistics: magnitude of the effect (either sign) or signed score."""
    overlap_ks: tuple[int, ...] = (5, 10, 20, 30)
    """Top-k sizes of the Jaccard overlap."""
    candidate_k: int = 30
    """Top-k heads of each attribution map patched exactly for the candidate overlap."""
    n_permutations: int = 1000
    """Permutations of the overlap tests."""
    direction_layer_stride: int = 1
    """Evaluate every n-th candidate layer when choosing the refusal direction (1: all; the quick report: 2)."""
    study_only: bool = False
    """Stop after step 1 (the head study and its overlap statistics); skip directions, sweep and ablations."""


def refusal_rate(replies: list[str]) -> float:
    return sum(is_refusal(r) for r in replies) / len(replies)


def mc_accuracy(model, factual: PromptSet, cfg: Config) -> float:
    recs = mc_scores(model, factual, batch_size=cfg.batch_size)
    return sum(r.mc1 for r in recs) / len(recs)


def measure(model, ctx: AbstractContextManager, ev: dict, cfg: Config, what=("asr", "mc"),
            judge: CoherenceJudge | None = None) -> dict:
    """Attack success (non-refusal) on harmful prompts, refusal on harmless ones and MC1 under ``ctx``.

    A non-refusal is not necessarily compliance: a broken model stops refusing too. With a ``judge``, the
    harmful replies are also scored for fluency under the unmodified model (outside ``ctx``), giving the
    rate of coherent non-refusals and of incoherent replies; a few replies are kept as examples.
    """
    out: dict = {}
    harmful = None
    with ctx:
        if "asr" in what:
            harmful = generate(model, ev["harmful"], cfg.max_new_tokens, cfg.batch_size, progress=False)
        if "harmless_refusal" in what:
            out["refusal_rate_harmless"] = refusal_rate(
                generate(model, ev["harmless"], cfg.max_new_tokens, cfg.batch_size, progress=False))
        if "mc" in what:
            out["mc1_accuracy"] = mc_accuracy(model, ev["factual"], cfg)
    if harmful is not None:
        complied = [not is_refusal(r) for r in harmful]
        out["asr_harmful"] = sum(complied) / len(complied)
        if judge is not None:
            ok = judge.judge(model, ev["harmful"], harmful, cfg.batch_size)
            out["coherent_asr_harmful"] = sum(c and k for c, k in zip(complied, ok, strict=True)) / len(ok)
            out["incoherent_rate_harmful"] = sum(not k for k in ok) / len(ok)
        out["examples_harmful"] = dict(zip(ev["harmful"][:4], harmful[:4], strict=True))
    return out


def splits(cfg: Config):
    """Training-half samples (head scores, directions, probes) and held-out samples (every number reported)."""
    specs = list(cfg.data) + (["advbench"] if cfg.data_dir and "advbench" not in cfg.data else [])
    ps = load_prompt_sets(specs, data_dir=cfg.data_dir)
    train, ev = {}, {}
    for label in ("harmful", "harmless", "factual"):
        sp = ps.by_label(label).dedupe().split()
        train[label] = sp.train.sample(cfg.n_train, cfg.seed)
        ev[label] = sp.test.sample(cfg.n_eval, cfg.seed)
    return ps, train, ev


def direction_splits(train: dict[str, PromptSet], seed: int) -> dict[str, Split]:
    """Fit vs validation parts of the training samples, for choosing the refusal direction's layer."""
    return {label: train[label].partition(0.3, seed + 1) for label in ("harmful", "harmless")}


def data_selection(cfg: Config) -> DataSelection:
    _, train, ev = splits(cfg)
    pools = dict(train)
    for label, sp in direction_splits(train, cfg.seed).items():
        pools[f"{label}:direction-fit"], pools[f"{label}:direction-validation"] = sp.train, sp.test
    return DataSelection("heads_tradeoff", pools, ev)


def tradeoff_figure(rows: list[dict]) -> go.Figure:
    fig = go.Figure()
    for method, dash in (("iti_heads", "solid"), ("truth_direction", "dot")):
        pts = [r for r in rows if r["method"] == method]
        x = [r["strength"] for r in pts]
        fig.add_trace(go.Scatter(x=x, y=[r["mc1_accuracy"] for r in pts], name=f"MC1 accuracy ({method})",
                                 mode="lines+markers", line={"dash": dash, "color": "royalblue"}))
        fig.add_trace(go.Scatter(x=x, y=[r["asr_harmful"] for r in pts], name=f"attack success ({method})",
                                 mode="lines+markers", line={"dash": dash, "color": "crimson"}))
        if all("coherent_asr_harmful" in r for r in pts):
            fig.add_trace(go.Scatter(x=x, y=[r["coherent_asr_harmful"] for r in pts],
                                     name=f"coherent attack success ({method})", mode="lines+markers",
                                     line={"dash": dash, "color": "darkorange"}))
    fig.update_layout(title="Truthfulness steering vs safety",
                      xaxis_title="steering strength (alpha / scale)", yaxis_title="rate",
                      yaxis_range=[0, 1], width=800, height=500)
    return fig


def overlap_markdown(model: str, overlaps: dict[str, dict]) -> str:
    """Jaccard@k with p-value and chance level per k, one table row per comparison (``Overlap.to_dict``s)."""
    ks = sorted({int(k) for ov in overlaps.values() for k in ov["jaccard"]})
    head = "| comparison | ranking | heads | " + " | ".join(f"J@{k} (p; chance)" for k in ks) + " | Spearman (p) |"
    lines = [f"## Head overlap: {model}", "", head, "|" + " --- |" * (len(ks) + 4)]
    for name, ov in overlaps.items():
        cells = [jaccard_cell(ov, k) for k in ks]
        lines.append(f"| {name} | {ov['rank_by']} | {ov['settings']['n_heads']} | " + " | ".join(cells)
                     + f" | {ov['spearman']:.2f} ({ov['spearman_p']:.3g}) |")
    lines += ["", "p: permutation test (chance of at least this overlap between unrelated rankings); chance: mean "
              "Jaccard@k over the permutations. The candidate row compares exact activation-patching scores "
              "on the union of both attribution maps' top-k heads by magnitude; its null permutes those heads "
              "only.", ""]
    return "\n".join(lines)


def to_csv(rows: list[dict]) -> str:
    """The scalar columns of ``rows`` (example replies stay in the JSON)."""
    rows = [{k: v for k, v in r.items() if not isinstance(v, dict | list)} for r in rows]
    buf = io.StringIO()
    keys = list(dict.fromkeys(k for r in rows for k in r))
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def run(cfg: Config, out: str) -> dict:
    model = load_model(cfg.model, device=cfg.device, dtype=cfg.dtype)
    ps, train, ev_sets = splits(cfg)
    ev = {"harmful": ev_sets["harmful"].texts, "harmless": ev_sets["harmless"].texts,
          "factual": ev_sets["factual"]}
    results: dict = {"config": asdict(cfg), "model": model.name, "provenance": model.provenance}

    # 1. head study on the training split
    study = run_head_study(model, train["harmful"] + train["harmless"] + train["factual"],
                           HeadStudyConfig(n_prompts=cfg.n_train, ks=cfg.overlap_ks,
                                           figure_k=10 if 10 in cfg.overlap_ks else cfg.overlap_ks[0],
                                           n_permutations=cfg.n_permutations, batch_size=cfg.batch_size,
                                           seed=cfg.seed, rank_by=cfg.rank_by, candidate_k=cfg.candidate_k))
    write_head_study(model, study, out)
    results["overlap"] = study.overlap.to_dict()
    results["candidate_overlap"] = study.candidates.overlap.to_dict()
    results["candidate_heads"] = study.candidates.candidates
    write_text(f"{out}/overlap.md", overlap_markdown(model.name, {
        "attribution, all heads": results["overlap"],
        f"activation patching, top-{cfg.candidate_k} candidates": results["candidate_overlap"]}))
    if cfg.study_only:
        write_json(f"{out}/heads_tradeoff.json", results)
        return results

    judge = CoherenceJudge.for_model(model)
    results["coherence_judge"] = judge.to_dict()

    # 2. refusal direction and its sanity checks
    dsp = direction_splits(train, cfg.seed)
    tr_h, val_h = dsp["harmful"], dsp["harmless"]
    cands = refusal_directions(model, tr_h.train.texts, val_h.train.texts, cfg.batch_size)
    sel = select_refusal_direction(model, cands, tr_h.test.texts, val_h.test.texts,
                                   refusal_metric(model.tokenizer), batch_size=cfg.batch_size,
                                   layer_stride=cfg.direction_layer_stride)
    refusal = sel.direction
    refusal.save(f"{out}/refusal_direction")
    base = measure(model, nullcontext(), ev, cfg, ("asr", "harmless_refusal", "mc"), judge)
    ablated = measure(model, ablate_direction(model, refusal), ev, cfg, ("asr", "mc"), judge)
    added = measure(model, add_direction(model, refusal, 1.0), ev, cfg, ("harmless_refusal",))
    results["refusal_direction"] = {
        "layer": refusal.layer, "selection_table": sel.table, "criterion": sel.criterion,
        "baseline": base, "ablated": ablated,
        "added": added, "asr_increase_points": 100 * (ablated["asr_harmful"] - base["asr_harmful"]),
        "harmless_refusal_increase_points":
            100 * (added["refusal_rate_harmless"] - base["refusal_rate_harmless"]),
    }

    # 3. trade-off sweep
    acts = answer_activations(model, train["factual"], cfg.batch_size)
    probes = probe_heads(model, train["factual"], seed=cfg.seed, acts=acts)
    probes.to_json(f"{out}/probe_heads.json")
    iti_heads = probes.top_k(cfg.top_k)
    hdirs = head_directions(model, acts=acts)
    tmetric = truth_metric(model.tokenizer, train["factual"])
    tsel = select_truth_direction(model, truth_directions(model, train["factual"], cfg.batch_size),
                                  train["factual"], tmetric, batch_size=cfg.batch_size)
    rows = []
    for a in cfg.alphas:
        ctx = steer_heads(model, iti_heads, hdirs, a) if a else nullcontext()
        rows.append({"method": "iti_heads", "strength": a, **measure(model, ctx, ev, cfg, judge=judge)})
        log.info("ITI alpha=%g: %s", a, rows[-1])
    for s in cfg.scales:
        ctx = add_direction(model, tsel.direction, s) if s else nullcontext()
        rows.append({"method": "truth_direction", "strength": s, **measure(model, ctx, ev, cfg, judge=judge)})
        log.info("truth direction scale=%g: %s", s, rows[-1])
    results["tradeoff"] = rows
    results["iti_heads"] = iti_heads
    results["truth_direction_layer"] = tsel.direction.layer

    # 4. head ablations
    means = head_means(model, train["harmless"].texts + train["factual"].texts, cfg.batch_size)
    k = cfg.top_k
    groups = {"refusal_heads": study.refusal.top_k(k), "truth_heads": study.truth.top_k(k),
              "overlap_heads": study.overlap.shared.get(20, [])[:k]}
    abl = [{"group": "none", "n_heads": 0, **base}]
    for name, heads in groups.items():
        if heads:
            ctx = mean_ablate_heads(model, heads, means)
            m = measure(model, ctx, ev, cfg, ("asr", "harmless_refusal", "mc"), judge)
            abl.append({"group": name, "n_heads": len(heads), **m})
    results["head_ablations"] = abl
    results["head_groups"] = groups

    write_json(f"{out}/heads_tradeoff.json", results)
    write_text(f"{out}/tradeoff.csv", to_csv(rows))
    write_text(f"{out}/head_ablations.csv", to_csv(abl))
    save_figure(tradeoff_figure(rows), f"{out}/tradeoff", {"rows": rows, "config": asdict(cfg)})
    return results


def parse(argv=None) -> argparse.Namespace:
    from interp.cli.common import add_device_args

    d = Config()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=d.model)
    ap.add_argument("--data", nargs="+", default=list(d.data))
    ap.add_argument("--out", default="figures/heads")
    ap.add_argument("--per-class", dest="n_train", type=int, default=d.n_train,
                    help="training prompts per class (head scores, directions)")
    ap.add_argument("--eval-per-class", dest="n_eval", type=int, default=d.n_eval,
                    help="held-out prompts per class per evaluation")
    ap.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens)
    ap.add_argument("--top-k", type=int, default=d.top_k)
    ap.add_argument("--alphas", type=float, nargs="+", default=list(d.alphas))
    ap.add_argument("--scales", type=float, nargs="+", default=list(d.scales))
    ap.add_argument("--batch-size", type=int, default=d.batch_size)
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--data-dir", default=None, help="benchmark data directory (adds AdvBench)")
    ap.add_argument("--rank-by", choices=["magnitude", "signed"], default=d.rank_by,
                    help="head ranking of the overlap statistics (default: magnitude of the effect)")
    ap.add_argument("--overlap-k", type=int, nargs="+", default=list(d.overlap_ks),
                    help="top-k sizes of the Jaccard overlap")
    ap.add_argument("--candidate-k", type=int, default=d.candidate_k,
                    help="top-k heads of each attribution map patched exactly")
    ap.add_argument("--permutations", type=int, default=d.n_permutations)
    ap.add_argument("--direction-layer-stride", type=int, default=d.direction_layer_stride,
                    help="evaluate every n-th candidate layer when choosing the refusal direction")
    ap.add_argument("--study-only", action="store_true",
                    help="only the head study and its overlap (step 1); no directions, sweep or ablations")
    add_device_args(ap)
    return ap.parse_args(argv)


def print_overlaps(res: dict) -> None:
    for name in ("overlap", "candidate_overlap"):
        ov = res[name]
        print(f"{name} ({ov['rank_by']}, {ov['settings']['n_heads']} heads): "
              + ", ".join(f"J@{k}={j:.2f} (p={ov['jaccard_p'][k]:.3g}, chance {ov['jaccard_null'][k]:.2f})"
                          for k, j in ov["jaccard"].items())
              + f", Spearman {ov['spearman']:.3f} (p={ov['spearman_p']:.3g})")


def main(argv=None) -> int:
    a = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = Config(a.model, tuple(a.data), a.n_train, a.n_eval, a.max_new_tokens, a.top_k, tuple(a.alphas),
                 tuple(a.scales), a.batch_size, a.seed, a.data_dir, a.device, a.dtype, rank_by=a.rank_by,
                 overlap_ks=tuple(a.overlap_k), candidate_k=a.candidate_k, n_permutations=a.permutations,
                 direction_layer_stride=a.direction_layer_stride, study_only=a.study_only)
    res = run(cfg, a.out)
    if cfg.study_only:
        print_overlaps(res)
        print(f"files in {a.out}")
        return 0
    rd = res["refusal_direction"]
    print(f"refusal direction layer {rd['layer']}: ASR {rd['baseline']['asr_harmful']:.2f} -> "
          f"{rd['ablated']['asr_harmful']:.2f} when ablated ({rd['asr_increase_points']:+.0f} points); "
          f"harmless refusal {rd['baseline']['refusal_rate_harmless']:.2f} -> "
          f"{rd['added']['refusal_rate_harmless']:.2f} when added")
    print_overlaps(res)
    for r in res["tradeoff"]:
        print(f"{r['method']:>16} strength {r['strength']:>5}: MC1 {r['mc1_accuracy']:.2f}, "
              f"ASR {r['asr_harmful']:.2f}")
    for r in res["head_ablations"]:
        print(f"ablate {r['group']:>14}: ASR {r['asr_harmful']:.2f}, MC1 {r['mc1_accuracy']:.2f}")
    print(f"files in {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
