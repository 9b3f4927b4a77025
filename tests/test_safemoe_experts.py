"""SafeMoE experts: trained with the workbench trainer, saved as plain peft adapters, many on one model."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from interp.models import load_model
from interp.safemoe.experts import ExpertSpec, add_random_experts, load_experts, train_expert
from interp.safemoe.routing import fixed_weights
from interp.train import SFTConfig, SFTExample
from interp.train.lora import ADAPTER_FILE, LoRAConfig, adapter_state_dict, save_adapter

LORA = LoRAConfig(rank=4, alpha=8.0)
SFT = SFTConfig(lr=3e-2, epochs=2, batch_size=4, max_length=160, warmup_steps=0, checkpoint_every=1000, lora=LORA)


def _tiny():
    return load_model("tiny", device="cpu")


@torch.no_grad()
def _logits(model_or_hf, enc):
    """Logits at real (non-pad) positions, for the interp Model or a plain HF / peft model."""
    hf = getattr(model_or_hf, "hf", model_or_hf)
    out = hf(input_ids=enc.input_ids, attention_mask=enc.attention_mask, position_ids=enc.position_ids).logits
    return out[enc.attention_mask.bool()]


def _examples(tag: str) -> list[SFTExample]:
    return [SFTExample(f"topic {tag} question {i}", f"{tag} {tag} {tag} answer {i}") for i in range(8)]


def test_experts_train_save_and_load_into_plain_peft_and_the_routed_model(tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    paths = {t: train_expert(_tiny, _examples(t), SFT, tmp_path / t) for t in ("aa", "bb")}
    for t, path in paths.items():
        keys = set(load_file(path / ADAPTER_FILE))
        assert "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" in keys
        assert not any("_original_component" in k or ".default." in k for k in keys)
        assert not (tmp_path / t / "model").exists()  # only the adapter is kept
    # Resuming a finished expert trains nothing.
    assert train_expert(lambda: (_ for _ in ()).throw(AssertionError("retrained")), [], SFT, tmp_path / "aa")

    base = _tiny()
    base.save(tmp_path / "base")
    enc = base.encode_chat(["topic aa question 1", "hello"])
    base_logits = _logits(base, enc)
    moe = _tiny()
    load_experts(moe, [ExpertSpec(t, p) for t, p in paths.items()])
    for i, path in enumerate(paths.values()):
        plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tmp_path / "base"), path)
        w = torch.zeros(2)
        w[i] = 1.0
        with fixed_weights(moe, list(paths), w):
            routed = _logits(moe, enc)
        assert (routed - base_logits).abs().max() > 1e-2
        torch.testing.assert_close(_logits(plain, enc), routed, atol=1e-5, rtol=1e-5)


def test_named_adapters_round_trip_bitwise(tmp_path):
    a = _tiny()
    cfg = LORA
    from interp.safemoe.experts import _add_adapter

    tuner = _add_adapter(a, None, "x", cfg, seed=0)
    add_random_experts(a, tuner, {"rand": "x"}, seed=5)  # B of "x" is 0: give "x" weights first
    with torch.no_grad():
        for n, p in a.hf.named_parameters():
            if ".x." in n:
                p.normal_(0, 0.2, generator=torch.Generator().manual_seed(len(n)))
    add_random_experts(a, tuner, {"rand2": "x"}, seed=7)
    saved = {n: save_adapter(a, cfg, tmp_path / n, adapter_name=n) for n in ("x", "rand2")}
    b = _tiny()
    load_experts(b, [ExpertSpec(n, p) for n, p in saved.items()])
    for n in saved:
        sa, sb = adapter_state_dict(a.hf, n), adapter_state_dict(b.hf, n)
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    # Random controls are norm-matched to their template, not copies of it.
    ra, x = adapter_state_dict(a.hf, "rand2"), adapter_state_dict(a.hf, "x")
    for k in x:
        torch.testing.assert_close(ra[k].norm(), x[k].norm(), rtol=1e-4, atol=1e-6)
        assert not torch.allclose(ra[k], x[k])
