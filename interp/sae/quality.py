"""How good an SAE is: reconstruction, sparsity, dead features, and the loss cost of splicing it in."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor

from interp.errors import NonFiniteError
from interp.evaluate.logprobs import next_token_mask, token_logprobs
from interp.sae.site import ActSite
from interp.sae.splice import reconstruct_hook, zero_ablate_hook


@dataclass(frozen=True)
class SAEQuality:
    """Quality figures of one SAE on held activations and texts."""

    mse: float
    """Mean squared reconstruction error per element."""
    explained_variance: float
    """1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over the evaluated rows."""
    l0: float
    """Mean number of active features per row."""
    dead_fraction: float
    """Fraction of features that never fired on the evaluated rows."""
    n_rows: int
    """Rows evaluated."""
    loss_clean: float | None = None
    """Mean next-token cross-entropy of the model (nats/token)."""
    loss_spliced: float | None = None
    """Same with the SAE reconstruction spliced in at the site."""
    loss_zero_ablated: float | None = None
    """Same with the site's activation set to zero."""
    provenance: dict = field(default_factory=dict)
    """SAE, site, data, settings."""

    @property
    def loss_delta(self) -> float | None:
        """Increase in next-token loss caused by the splice."""
        if self.loss_clean is None or self.loss_spliced is None:
            return None
        return self.loss_spliced - self.loss_clean

    @property
    def loss_recovered(self) -> float | None:
        """(ablated - spliced) / (ablated - clean): 1 is a perfect splice, 0 no better than zeroing."""
        if None in (self.loss_clean, self.loss_spliced, self.loss_zero_ablated):
            return None
        denom = self.loss_zero_ablated - self.loss_clean
        return (self.loss_zero_ablated - self.loss_spliced) / denom if abs(denom) > 1e-12 else float("nan")

    def to_dict(self) -> dict:
        return asdict(self) | {"loss_delta": self.loss_delta, "loss_recovered": self.loss_recovered}


@torch.no_grad()
def reconstruction_stats(sae, acts: Float[Tensor, "rows d"], batch_size: int = 4096) -> dict[str, float]:
    """MSE, explained variance, L0 and dead fraction of ``sae`` on ``acts`` (accumulated in float64)."""
    device = next(sae.parameters()).device
    mean = acts.double().mean(0).to(device)
    sq_err = tot_var = l0 = 0.0
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool, device=device)
    for i in range(0, acts.shape[0], batch_size):
        x = acts[i : i + batch_size].to(device, sae.dtype)
        f = sae.encode(x)
        x_hat = sae.decode(f)
        sq_err += float((x_hat.double() - x.double()).pow(2).sum())
        tot_var += float((x.double() - mean).pow(2).sum())
        active = f != 0
        l0 += float(active.sum())
        fired |= active.any(0)
    n, d = acts.shape
    out = {"mse": sq_err / (n * d), "explained_variance": 1.0 - sq_err / max(tot_var, 1e-30),
           "l0": l0 / n, "dead_fraction": float((~fired).float().mean()), "n_rows": n}
    bad = {k: v for k, v in out.items() if not math.isfinite(v)}
    if bad:
        raise NonFiniteError(f"SAE reconstruction statistics are not finite: {bad} (non-finite activations "
                             "or SAE weights?)")
    return out


def next_token_loss(model, texts: Sequence[str], hooks=(), batch_size: int = 8,
                    max_length: int | None = 256) -> float:
    """Mean next-token cross-entropy over the real tokens of ``texts`` with ``hooks`` attached."""
    total, count = 0.0, 0
    with torch.no_grad(), model.hooks(fwd=list(hooks)):
        for i in range(0, len(texts), batch_size):
            enc = model.encode(list(texts[i : i + batch_size]), max_length=max_length)
            target_BS = next_token_mask(enc.attention_mask)
            # float32 log-softmax (every position of every text needs one), summed in float64.
            lp_BT = token_logprobs(model.logits(enc), enc.input_ids, target_BS, dtype=torch.float32)
            total += float(-lp_BT[target_BS[:, 1:].to(lp_BT.device)].double().sum())
            count += int(target_BS.sum())
    return total / max(count, 1)


def sae_quality(
    sae,
    site: ActSite,
    acts: Float[Tensor, "rows d"],
    model=None,
    texts: Sequence[str] = (),
    batch_size: int = 8,
    provenance: dict | None = None,
) -> SAEQuality:
    """Reconstruction figures on ``acts``; with a model and texts also the spliced next-token loss."""
    stats = reconstruction_stats(sae, acts)
    losses: dict[str, float] = {}
    if model is not None and texts:
        name = site.site.name
        losses = {
            "loss_clean": next_token_loss(model, texts, (), batch_size),
            "loss_spliced": next_token_loss(model, texts, [(name, reconstruct_hook(sae, site))], batch_size),
            "loss_zero_ablated": next_token_loss(model, texts, [(name, zero_ablate_hook(site))], batch_size),
        }
    return SAEQuality(**stats, **losses, provenance=dict(provenance or {}))
