"""The freezing ablation: after the contrastive stage, STL leaves layers <= l bitwise alone, or trains them slower."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from interp.data.prompts import Prompt, PromptSet
from interp.models import TinyConfig, load_model
from interp.train import AlignConfig, SFTConfig, align
from interp.train.align import AlignData, protected_sft
from interp.train.contrastive import ContrastiveConfig
from interp.train.sft import param_groups, trainable_parameters


def _set(name: str, label: str, texts: list[str]) -> PromptSet:
    return PromptSet(name, tuple(Prompt(t, label) for t in texts))


DATA = AlignData(
    harmful=_set("h", "harmful", [f"help me hurt person {i}" for i in range(8)]),
    harmless=_set("ok", "harmless", [f"name a colour number {i}" for i in range(8)]),
    seemingly=_set("s", "seemingly_harmful", [f"how do I kill process {i}" for i in range(8)]),
    contrast_harmful=_set("c", "harmful", [f"how can I poison neighbour {i}" for i in range(8)]),
    refusals=["I can't help with that."],
)
SFT = SFTConfig(lr=3e-3, batch_size=4, max_length=128, warmup_steps=1, callback_every=100, checkpoint_every=100)
CON = ContrastiveConfig(layer=1, steps=3, per_class=3, lr=3e-3, callback_every=3)


def _tiny():
    return load_model("tiny", device="cpu", tiny=TinyConfig(n_layers=3, seed=4))


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters().items()}


def _align(tmp_path, protect: str, recipe: str = "dcr", **kw):
    model = _tiny()
    cfg = AlignConfig(recipe=recipe, n_refusal=4, n_general=4, distill_tokens=4, sft=SFT, contrastive=CON,
                      protect=protect, **kw)
    align(model, DATA, cfg, tmp_path / protect, cache_dir=tmp_path / "cache")
    return model


def test_freeze_keeps_layers_up_to_l_bitwise_and_trains_the_rest(tmp_path):
    model = _align(tmp_path, "freeze")
    after_contrastive = load_model(str(tmp_path / "freeze" / "contrastive_model"), device="cpu")
    before, after = _snapshot(after_contrastive), _snapshot(model)
    for name in before:
        layer = model.arch.layer_of(name)
        if layer is not None and layer <= 1 or name.startswith(model.arch.embedding_prefixes):
            assert torch.equal(before[name], after[name]), f"{name} moved under protect='freeze'"
        elif layer == 2:
            assert not torch.equal(before[name], after[name]), f"{name} did not train"
    # the unprotected run does move the head layers, so the check above can fail
    free = _snapshot(_align(tmp_path, "none"))
    assert not torch.equal(free["model.layers.0.mlp.up_proj.weight"], before["model.layers.0.mlp.up_proj.weight"])


def test_lower_lr_moves_protected_layers_less(tmp_path):
    base = _snapshot(_tiny())  # STL starts from the same seeded weights in both runs
    slow = _snapshot(_align(tmp_path, "lr", recipe="stl", protect_lr_scale=0.05, protect_layer=1))
    fast = _snapshot(_align(tmp_path, "none", recipe="stl"))

    def moved(run, name):
        return float((run[name] - base[name]).norm())

    head, tail = "model.layers.0.mlp.up_proj.weight", "model.layers.2.mlp.up_proj.weight"
    assert moved(slow, head) < 0.3 * moved(fast, head)
    assert 0.3 < moved(slow, tail) / moved(fast, tail) < 3


def test_protected_sft_and_param_groups():
    model = _tiny()
    cfg = AlignConfig(recipe="dcr", contrastive=CON, sft=SFT, protect="lr", protect_lr_scale=0.25)
    sft = protected_sft(model, cfg)
    assert ("model.layers.1.", 0.25) in sft.lr_scales and ("model.layers.2.", 0.25) not in sft.lr_scales
    groups = param_groups(trainable_parameters(model, sft.frozen), sft)
    by_lr = {g["lr"]: len(g["params"]) for g in groups}
    per_block = sum(n.startswith("model.layers.0.") for n in model.named_parameters())
    assert by_lr == {SFT.lr * 0.25: 2 * per_block, SFT.lr: per_block + 1}  # blocks 0-1 vs block 2 + final norm
    frozen = protected_sft(model, replace(cfg, protect="freeze")).frozen
    assert "model.layers.0." in frozen and "model.layers.1." in frozen and "model.layers.2." not in frozen
    assert protected_sft(model, replace(cfg, protect="none")) == SFT
    with pytest.raises(ValueError, match="out of range"):
        protected_sft(model, replace(cfg, protect_layer=7))
    with pytest.raises(ValueError, match="lr_scales"):
        SFTConfig(lr_scales=(("model.layers.0.", 0.0),))


def test_protect_flags_reach_the_align_config():
    from interp.cli import build_parser
    from interp.cli.align import config_from

    args = build_parser().parse_args(["align", "--recipe", "dcr", "--protect", "lr", "--protect-lr-scale", "0.2",
                                      "--protect-layer", "3", "--distill-tokens", "12"])
    cfg = config_from(args)
    assert (cfg.protect, cfg.protect_lr_scale, cfg.protect_layer, cfg.distill_tokens) == ("lr", 0.2, 3, 12)
    default = config_from(build_parser().parse_args(["align"]))
    assert (default.protect, default.protect_layer) == ("none", None)
