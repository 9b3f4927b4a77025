"""Whole-model residual constraint: per-stream refusal bases (user tokens) and every writer kept off them."""

from __future__ import annotations

import pytest
import torch
from helpers import train_with_constraint

from interp.models import load_model
from interp.models.chat_spans import user_token_mask
from interp.train.constraints_residual import ResidualWriterConstraint
from interp.train.residual_subspaces import (
    ResidualSubspaceConfig,
    ResidualSubspaces,
    residual_refusal_subspaces,
    stream_site,
)

HARMFUL = [f"tell me how to hurt someone, case {i}" for i in range(6)]
HARMLESS = [f"tell me how to bake a loaf, case {i}" for i in range(6)]
TEXTS = ["the cat sat on the mat", "refuse harmful requests politely", "paris is in france"]


def _train(model, constraint, steps=2, lr=3e-2):
    train_with_constraint(model, constraint, TEXTS, steps, lr)


def _user_mean(model, prompts, stream):
    from interp.hooks import capture

    got: dict = {}
    enc = model.encode_chat(prompts)
    with torch.no_grad(), model.hooks(fwd=[(stream_site(stream), capture(got, "a"))]):
        model.logits(enc)
    mask = user_token_mask(model, prompts).double()
    return (torch.einsum("bs,bsd->bd", mask, got["a"].double()) / mask.sum(1, keepdim=True)).mean(0)


def test_row_zero_is_the_user_token_difference_of_means():
    model = load_model("tiny")
    sub = residual_refusal_subspaces(model, HARMFUL, HARMLESS, ResidualSubspaceConfig(rank=3, batch_size=4))
    assert sub.n_streams == model.spec.n_layers + 1 and all(b.shape == (3, 64) for b in sub.bases)
    for s in range(sub.n_streams):
        dom = _user_mean(model, HARMFUL, s) - _user_mean(model, HARMLESS, s)
        assert torch.allclose(sub.bases[s][0].double(), dom / dom.norm(), atol=1e-5), s
    with pytest.raises(ValueError, match="orthonormal"):
        ResidualSubspaces([torch.ones(2, 64)])


@pytest.mark.parametrize("name", ["tiny", "tiny-gpt2"])
@pytest.mark.parametrize("constrained", [True, False])
def test_every_writer_keeps_the_components_of_every_stream_it_reaches(name, constrained):
    model = load_model(name)
    sub = residual_refusal_subspaces(model, HARMFUL, HARMLESS, ResidualSubspaceConfig(rank=2))
    arch, hf, n = model.arch, model.hf, model.spec.n_layers
    writers = [(arch.attn_out_projection(hf, i), i + 1) for i in range(n)]
    writers += [(arch.mlp_out_projection(hf, i), i + 1) for i in range(n)]
    before = {w.short: w.out_in().detach().clone() for w, _ in writers}
    emb = arch.residual_embeddings(hf)[0][1]
    emb_before = emb.detach().clone()
    con = ResidualWriterConstraint(model, sub) if constrained else None
    for p in hf.parameters():  # nothing frozen: the embedding trains too
        p.requires_grad_(True)
    _train(model, con)
    x = torch.randn(5, max(w.out_in().shape[1] for w, _ in writers))
    for w, stream in writers:
        q = sub.span(list(range(stream, n + 1)))  # downstream reach: this stream and every later one
        new, old = w.out_in(), before[w.short]
        assert (new - old).abs().max() > 1e-3, w.short  # the writer was trained
        xi = x[:, : new.shape[1]].T
        drift = (q @ (new @ xi) - q @ (old @ xi)).abs().max() / (q @ (old @ xi)).abs().max()
        assert (drift < 1e-5) if constrained else (drift > 1e-3), (w.short, float(drift))
    q0 = sub.span(list(range(n + 1)))
    drift_e = ((emb - emb_before) @ q0.T).abs().max()
    assert (emb - emb_before).abs().max() > 1e-3
    assert (drift_e < 1e-5) if constrained else (drift_e > 1e-3)
    if constrained:
        assert con.violation() < 1e-5


def test_own_reach_constrains_against_the_written_stream_only():
    model = load_model("tiny")
    sub = residual_refusal_subspaces(model, HARMFUL, HARMLESS, ResidualSubspaceConfig(rank=1))
    own = ResidualWriterConstraint(model, sub, reach="own")
    down = ResidualWriterConstraint(model, sub)
    ranks_own = [len(t.q) for t in own._terms]
    ranks_down = [len(t.q) for t in down._terms]
    assert ranks_own == [1] * len(ranks_own)
    assert ranks_down == [3, 2, 2, 1, 1]  # embedding: 3 streams; block 0: streams 1-2; block 1: stream 2
    with pytest.raises((ValueError, TypeError)):  # jaxtyping checks the Literal first
        ResidualWriterConstraint(model, sub, reach="all")
