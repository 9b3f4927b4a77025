"""LoRA fine-tuning through the trainer on tiny models: loss falls, only adapters train, PEFT-compatible
adapter files, merged save and reload, exact resume."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from helpers import Kill

from interp.models import TinyConfig, load_model
from interp.train import SFTConfig, SFTExample, train_sft
from interp.train.lora import LoRAConfig, adapter_config, adapter_state_dict, apply_lora, merge_lora

EXAMPLES = [SFTExample(f"question {i}?", f"answer number {i}.", "general") for i in range(12)]
LORA = LoRAConfig(rank=4, alpha=8.0)
CFG = SFTConfig(lr=1e-2, epochs=3, batch_size=4, max_length=96, warmup_steps=1, checkpoint_every=1,
                callback_every=100, lora=LORA)


def _tiny():
    return load_model("tiny", device="cpu", tiny=TinyConfig(n_layers=2, seed=4))


def _real_logits(model_or_hf, enc):
    """Logits at real (non-pad) positions: what two implementations must agree on under left padding."""
    hf = getattr(model_or_hf, "hf", model_or_hf)
    with torch.no_grad():
        out = hf(input_ids=enc.input_ids, attention_mask=enc.attention_mask, position_ids=enc.position_ids).logits
    return out[enc.attention_mask.bool()]


def test_lora_training_lowers_loss_and_changes_only_the_targets(tmp_path):
    model = _tiny()
    before = {k: v.detach().clone() for k, v in model.named_parameters().items()}
    targets = ("q_proj", "v_proj", "down_proj")
    result = train_sft(model, EXAMPLES, replace(CFG, lora=LoRAConfig(rank=8, targets=targets)), tmp_path / "run")
    # adapters on the random tiny model's q, v and down projections (embeddings frozen): 5.62 -> ~5.2
    assert result.losses[-1][1] < result.losses[0][1] * 0.95
    after = model.named_parameters()
    assert after.keys() == before.keys(), "adapters must be merged away after training"
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {f"model.layers.{i}.{'mlp' if m == 'down_proj' else 'self_attn'}.{m}.weight"
                       for i in range(2) for m in targets}
    saved = json.loads((tmp_path / "run" / "train.json").read_text())
    assert saved["recipe_config"]["lora"]["rank"] == 8
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").exists()


def test_adapter_file_loads_into_plain_peft_and_merged_model_reloads(tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = _tiny()
    model.save(tmp_path / "base")
    enc = model.encode_chat(["hi there", "what is it"])
    apply_lora(model, LORA, seed=0)
    with torch.no_grad():  # B starts at zero (a no-op adapter): give it weights so the check means something
        for name, p in model.hf.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3, generator=torch.Generator().manual_seed(len(name)))
    adapted = _real_logits(model, enc)
    fired = []
    with model.hooks(fwd=[("blocks.1.attn.hook_z", lambda act, hook: fired.append(act.shape))]):
        hooked = _real_logits(model, enc)
    assert fired and torch.equal(hooked, adapted), "bridge hooks must keep firing with adapters"
    from interp.train.lora import save_adapter

    save_adapter(model, LORA, tmp_path / "adapter")
    assert adapter_config(tmp_path / "adapter") == LORA  # the record a reader rebuilds the adapter from
    keys = set(adapter_state_dict(model.hf))
    assert "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" in keys
    assert not any("_original_component" in k or ".default." in k for k in keys)
    plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tmp_path / "base"), tmp_path / "adapter")
    base = _real_logits(load_model(str(tmp_path / "base"), device="cpu"), enc)
    assert (adapted - base).abs().max() > 1e-2, "the adapter changes nothing"
    torch.testing.assert_close(_real_logits(plain, enc), adapted, atol=1e-5, rtol=1e-5)

    assert merge_lora(model) == 4
    torch.testing.assert_close(_real_logits(model, enc), adapted, atol=1e-5, rtol=1e-5)
    model.save(tmp_path / "merged")
    reloaded = load_model(str(tmp_path / "merged"), device="cpu")
    assert torch.equal(_real_logits(reloaded, enc), _real_logits(model, enc))


def test_lora_resume_is_exact(tmp_path):
    cfg = replace(CFG, callback_every=1)
    straight = _tiny()
    train_sft(straight, EXAMPLES, cfg, tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        train_sft(_tiny(), EXAMPLES, cfg, tmp_path / "b", callbacks=[Kill(4)])
    assert (tmp_path / "b" / "checkpoint" / "state.json").exists()
    resumed = _tiny()
    train_sft(resumed, EXAMPLES, cfg, tmp_path / "b")
    for (n, a), (_, b) in zip(straight.named_parameters().items(), resumed.named_parameters().items(), strict=True):
        assert torch.equal(a, b), f"{n} differs after resume"
    a, b = (json.loads((tmp_path / d / "train.json").read_text())["losses"] for d in ("a", "b"))
    assert a == b


def test_lora_config_rejects_bad_values_and_unknown_targets():
    with pytest.raises((ValueError, TypeError), match="LoRAConfig"):
        LoRAConfig(rank=0)
    with pytest.raises((ValueError, TypeError), match="targets"):
        LoRAConfig(targets="q_proj")
    with pytest.raises(ValueError, match="nope"):
        apply_lora(_tiny(), LoRAConfig(targets=("nope",)))
    with pytest.raises(ValueError, match=r"save_model=False\) needs lora"):
        SFTConfig(save_model=False)


def test_adapter_state_dict_names_one_adapter_and_fails_on_a_missing_one():
    model = _tiny()
    apply_lora(model, LORA)
    keys = set(adapter_state_dict(model.hf))
    assert keys == set(adapter_state_dict(model.hf, "default")) and keys
    assert all(k.startswith("base_model.model.") and ".default." not in k for k in keys)
    with pytest.raises(ValueError, match="no LoRA adapter named 'other'"):
        adapter_state_dict(model.hf, "other")


def test_adapter_config_names_a_folder_that_is_no_interp_adapter(tmp_path):
    from interp.errors import DataFormatError

    with pytest.raises(DataFormatError, match="no interp.json"):
        adapter_config(tmp_path)
    (tmp_path / "interp.json").write_text('{"name": "a model, not an adapter"}')
    with pytest.raises(DataFormatError, match="not an interp adapter record"):
        adapter_config(tmp_path)
