"""SAE sites chosen from the head analysis, not by hand: the heads with the largest refusal and
hallucination (truthfulness) effects, grouped into one ``hook_z`` site per layer.

Heads are ranked by the magnitude of their score (``HeadScores.top_k(k, by="magnitude")``): a head
that strongly suppresses refusal matters as much as one that promotes it. ``rule`` combines the two
top-k sets: ``union`` (default), ``intersection`` (the overlap heads the paper decomposes), or one
of them alone. The *primary* site is the layer whose chosen heads carry the most of both metrics'
max-normalised |score|; every site and head, with its scores and ranks, goes into the provenance.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

from interp.heads.scores import Head, HeadScores
from interp.hooks import Site
from interp.sae.site import ActSite

Rule = Literal["union", "intersection", "refusal", "hallucination"]


@dataclass(frozen=True)
class SiteChoice:
    """Sites (one ``z`` site per layer, with its chosen heads) and how they were chosen."""

    sites: tuple[ActSite, ...]
    """Every chosen site, strongest first."""
    heads: tuple[Head, ...]
    """The chosen (layer, head) pairs."""
    provenance: dict = field(default_factory=dict)
    """Rule, k, ranking, the two score sources and every chosen head's scores and ranks."""

    @property
    def primary(self) -> ActSite:
        return self.sites[0]


def sites_from_heads(refusal: HeadScores, hallucination: HeadScores, k: int = 10,
                     rule: Rule = "union") -> SiteChoice:
    """The SAE sites of the top-``k`` heads by |score| of each metric, combined by ``rule``."""
    if refusal.scores.shape != hallucination.scores.shape:
        raise ValueError(f"refusal scores {tuple(refusal.scores.shape)} and hallucination scores "
                         f"{tuple(hallucination.scores.shape)} are not of the same model")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    top_r = set(refusal.top_k(k, by="magnitude"))
    top_h = set(hallucination.top_k(k, by="magnitude"))
    chosen = {"union": top_r | top_h, "intersection": top_r & top_h, "refusal": top_r,
              "hallucination": top_h}.get(rule)
    if chosen is None:
        raise ValueError(f"rule must be one of union, intersection, refusal, hallucination; got {rule!r}")
    if not chosen:
        raise ValueError(f"no head is in both top-{k} sets (rule {rule!r}); use a larger k or rule='union'")
    nr = refusal.scores.abs() / refusal.scores.abs().max().clamp_min(1e-30)
    nh = hallucination.scores.abs() / hallucination.scores.abs().max().clamp_min(1e-30)
    by_layer: dict[int, list[int]] = defaultdict(list)
    for layer, head in sorted(chosen):
        by_layer[layer].append(head)
    weight = {layer: sum(float(nr[layer, h] + nh[layer, h]) for h in hs) for layer, hs in by_layer.items()}
    layers = sorted(by_layer, key=lambda layer: (-weight[layer], layer))
    sites = tuple(ActSite(Site("z", layer), tuple(by_layer[layer])) for layer in layers)
    ranks_r, ranks_h = refusal.ranks(by="magnitude"), hallucination.ranks(by="magnitude")
    records = [{"layer": layer, "head": head, "refusal": refusal[(layer, head)],
                "hallucination": hallucination[(layer, head)], "refusal_rank": int(ranks_r[layer, head]),
                "hallucination_rank": int(ranks_h[layer, head]), "in_refusal_top": (layer, head) in top_r,
                "in_hallucination_top": (layer, head) in top_h} for layer, head in sorted(chosen)]
    prov = {"rule": rule, "k": k, "rank_by": "magnitude",
            "refusal_scores": {"metric": refusal.metric, "method": refusal.method,
                               "provenance": refusal.provenance},
            "hallucination_scores": {"metric": hallucination.metric, "method": hallucination.method,
                                     "provenance": hallucination.provenance},
            "sites": [{**s.to_dict(), "weight": weight[s.layer]} for s in sites], "heads": records}
    return SiteChoice(sites, tuple(sorted(chosen)), prov)
