"""What a feature page needs (SAE-Vis / Neuronpedia style): activation histogram and density, top
examples with per-token activations, and logit effects (the decoder direction read through W_U).

Computed from an activation store (no model needed) except the logit effects, which need the model's
output projection and unembedding. The explorer (``interp explore``) shows these pages.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from interp.errors import InterpError
from interp.evaluate.redact import HARMFUL, text_id
from interp.sae.site import ActSite


@dataclass(frozen=True)
class FeaturePagesConfig:
    """How much of each feature page to compute."""

    n_examples: int = 5
    """Top-activating examples per feature (one per prompt, strongest token first)."""
    n_bins: int = 30
    """Bins of the histogram of non-zero activations."""
    n_logits: int = 10
    """Top positive and top negative tokens of the logit effects."""
    max_rows: int | None = 200_000
    """Store rows read (``None``: all)."""
    batch_size: int = 4096
    """Rows encoded per SAE call."""

    def __post_init__(self) -> None:
        if min(self.n_examples, self.n_bins, self.n_logits, self.batch_size) < 1:
            raise ValueError(f"n_examples, n_bins, n_logits and batch_size must be >= 1, got {self}")


@torch.no_grad()
def feature_columns(
    sae, acts_RD: Float[Tensor, "rows d_in"], features: Sequence[int], batch_size: int = 4096
) -> Float[Tensor, "rows n_features"]:
    """Activations of the chosen SAE features on every row (float32, CPU)."""
    device = next(sae.parameters()).device
    idx = torch.as_tensor(list(features), dtype=torch.long, device=device)
    cols = [sae.encode(acts_RD[i: i + batch_size].to(device, sae.dtype))[:, idx].float().cpu()
            for i in range(0, acts_RD.shape[0], batch_size)]
    return torch.cat(cols) if cols else torch.zeros(0, len(idx))


def activation_histogram(values_R: Float[Tensor, " rows"], n_bins: int = 30) -> dict:
    """Histogram of the non-zero activations and the density (fraction of rows where the feature fires)."""
    active = values_R[values_R > 0].double()
    density = float(active.numel()) / max(values_R.numel(), 1)
    if active.numel() == 0:
        return {"edges": [], "counts": [], "density": 0.0, "n_rows": int(values_R.numel()), "max": 0.0}
    hi = float(active.max())
    counts = torch.histc(active, bins=n_bins, min=0.0, max=hi if hi > 0 else 1.0)
    edges = torch.linspace(0.0, hi if hi > 0 else 1.0, n_bins + 1)
    return {"edges": edges.tolist(), "counts": [int(c) for c in counts.tolist()], "density": density,
            "n_rows": int(values_R.numel()), "max": hi}


def redact_examples(pages: dict, labels: Sequence[str] = (HARMFUL,)) -> dict:
    """A copy of :func:`feature_pages`' result without the tokens of examples whose prompt has one of
    ``labels`` (their text is replaced by its id; activations and positions stay): safe to commit."""
    out = copy.deepcopy(pages)
    for page in out["features"].values():
        for ex in page["examples"]:
            if ex.get("label") in labels:
                ex["text_id"] = text_id("".join(ex["tokens"]))
                ex["tokens"] = None
    out["redacted"] = f"tokens of {list(labels)} examples removed; the full pages sit beside the store"
    return out


def top_examples(values_R: Float[Tensor, " rows"], meta: dict[str, Tensor], prompts: list[dict], k: int,
                 tokenizer=None) -> list[dict]:
    """The ``k`` prompts where the feature fires hardest, each with every stored token's activation."""
    order = torch.argsort(values_R, descending=True).tolist()
    out: list[dict] = []
    seen: set[int] = set()
    for r in order:
        if len(out) >= k or float(values_R[r]) <= 0:
            break
        p = int(meta["prompt_index"][r])
        if p in seen:
            continue
        seen.add(p)
        rows_T = torch.nonzero(meta["prompt_index"] == p).flatten()
        ids = meta["token_id"][rows_T].tolist()
        tokens = [tokenizer.decode([t]) for t in ids] if tokenizer is not None else [str(t) for t in ids]
        out.append({"activation": float(values_R[r]), "prompt_index": p, "position": int(meta["position"][r]),
                    "token_id": int(meta["token_id"][r]), "label": prompts[p].get("label"),
                    "tokens": tokens, "positions": meta["position"][rows_T].tolist(),
                    "token_activations": [round(float(v), 5) for v in values_R[rows_T].tolist()]})
    return out


@torch.no_grad()
def decoder_in_residual(model, sae, site: ActSite, features: Sequence[int]) -> Float[Tensor, "n_features d_model"]:
    """Each feature's decoder direction as it is written into the residual stream.

    A residual-width site is already there; a ``z`` site is mapped through the layer's output projection
    W_O (zero for the heads the SAE does not read).
    """
    W_dec_FD = sae.W_dec.detach()[list(features)].float().cpu()
    if site.site.kind != "z":
        return W_dec_FD
    spec = model.spec
    heads = site.head_list(spec)
    full_FHd = torch.zeros(len(features), spec.n_heads, spec.d_head)
    full_FHd[:, heads] = W_dec_FD.view(len(features), len(heads), spec.d_head)
    W_O_MZ = model.arch.attn_out_projection(model.hf, site.layer).out_in().detach().float().cpu()
    return full_FHd.flatten(1) @ W_O_MZ.T


@torch.no_grad()
def logit_effects(model, sae, site: ActSite, features: Sequence[int], k: int = 10) -> dict[int, dict]:
    """Top ``k`` promoted and suppressed tokens of each feature: W_U @ (its decoder direction in the
    residual stream), ignoring the final norm (the direct logit effect of SAE-Vis)."""
    dirs_FM = decoder_in_residual(model, sae, site, features)
    W_U_VM = model.arch.unembedding(model.hf).weight.detach().float().cpu()
    if W_U_VM.shape[1] != dirs_FM.shape[1]:
        raise InterpError(f"SAE at {site.key} decodes to width {dirs_FM.shape[1]}, the unembedding reads "
                          f"{W_U_VM.shape[1]}")
    effects_FV = dirs_FM @ W_U_VM.T
    tok = model.tokenizer
    out = {}
    for f, row in zip(features, effects_FV, strict=True):
        pos, neg = torch.topk(row, k), torch.topk(-row, k)
        out[int(f)] = {"positive": [[tok.decode([int(i)]), float(v)] for v, i in zip(*pos, strict=True)],
                       "negative": [[tok.decode([int(i)]), -float(v)] for v, i in zip(*neg, strict=True)]}
    return out


def feature_pages(sae, store, features: Sequence[int], tokenizer=None, model=None, site: ActSite | None = None,
                  cfg: FeaturePagesConfig = FeaturePagesConfig(), key: str | None = None) -> dict:
    """Histogram, density and top examples of each feature (and logit effects when ``model`` is given)."""
    features = [int(f) for f in dict.fromkeys(features)]
    if not features:
        raise InterpError("feature_pages needs at least one feature index")
    d_sae = sae.cfg.d_sae
    bad = [f for f in features if not 0 <= f < d_sae]
    if bad:
        raise InterpError(f"feature indices {bad} out of range for an SAE with {d_sae} features")
    data = store.read_with_meta(key, cfg.max_rows)
    vals_RF = feature_columns(sae, data.pop("acts"), features, cfg.batch_size)
    prompts = store.prompts()
    site = site or store.sites[store.key(key)]
    logits = logit_effects(model, sae, site, features, cfg.n_logits) if model is not None else {}
    pages = {}
    for j, f in enumerate(features):
        pages[str(f)] = {"histogram": activation_histogram(vals_RF[:, j], cfg.n_bins),
                         "examples": top_examples(vals_RF[:, j], data, prompts, cfg.n_examples, tokenizer),
                         "logit_effects": logits.get(f)}
    return {"features": pages, "site": site.to_dict(), "store": str(store.path), "config": asdict(cfg)}
