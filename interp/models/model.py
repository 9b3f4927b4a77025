"""The hooked model handle every analysis receives."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.errors import HookNameError
from interp.hooks import HookFn, Site
from interp.io import atomic_dir
from interp.models.spec import ModelSpec


class _StopForward(Exception):
    """Raised by the hook :meth:`Model.run_hooks` adds at ``stop_after`` to end the forward early."""


def _raise_stop(act: Tensor, *, hook) -> None:
    raise _StopForward


@dataclass
class Encoding:
    """A left-padded batch of token ids (so the last position is every row's last real token)."""

    input_ids: Int[Tensor, "batch seq"]
    attention_mask: Int[Tensor, "batch seq"]

    @property
    def position_ids(self) -> Int[Tensor, "batch seq"]:
        return (self.attention_mask.long().cumsum(-1) - 1).clamp(min=0)

    def to(self, device) -> Encoding:
        return Encoding(self.input_ids.to(device), self.attention_mask.to(device))

    def __len__(self) -> int:
        return self.input_ids.shape[0]


@dataclass
class Model:
    """A transformer-lens ``TransformerBridge`` with its tokenizer, chat template and shape facts.

    The bridge wraps the Hugging Face modules in place, so hooks fire in ``self.hf(...)`` forward
    passes and in ``self.hf.generate`` (with its KV cache) alike.
    """

    bridge: object
    """The transformer-lens TransformerBridge (hook points ``blocks.L.attn.hook_z`` and friends)."""
    tokenizer: object
    """Hugging Face tokenizer with a chat template."""
    spec: ModelSpec
    """Layers, heads, widths."""
    name: str
    """Registry name, hub name or path the model was loaded from."""
    provenance: dict = field(default_factory=dict)
    """Where the weights came from (source, checkpoint path, training recipe, ...)."""

    @property
    def hf(self) -> torch.nn.Module:
        return self.bridge.original_model

    @property
    def device(self) -> torch.device:
        return next(self.hf.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Floating-point type of the weights (and so of the activations hooks see)."""
        return next(p for p in self.hf.parameters() if p.is_floating_point()).dtype

    @property
    def hook_names(self) -> set[str]:
        return set(self.bridge.hook_dict)

    @property
    def arch(self):
        """Module layout of this model's family (:class:`interp.models.arch.Architecture`)."""
        from interp.models.arch import architecture

        return architecture(self.hf.config)

    # ---- text ------------------------------------------------------------------------------------

    def chat(self, prompt: str, response: str | None = None, system: str | None = None) -> str:
        """Format one user turn (and optionally the assistant's reply) with the chat template."""
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        if response is None:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        messages.append({"role": "assistant", "content": response})
        return self.tokenizer.apply_chat_template(messages, tokenize=False)

    def encode(self, texts: Sequence[str], max_length: int | None = None) -> Encoding:
        """Tokenize already formatted texts, left-padded; special tokens come from the template only."""
        if isinstance(texts, str):
            raise TypeError("encode takes a sequence of strings, not one string")
        tok = self.tokenizer
        tok.padding_side = "left"
        out = tok(list(texts), return_tensors="pt", padding=True, add_special_tokens=False,
                  truncation=max_length is not None, max_length=max_length)
        return Encoding(out["input_ids"], out["attention_mask"]).to(self.device)

    def encode_chat(self, prompts: Sequence[str], system: str | None = None) -> Encoding:
        return self.encode([self.chat(p, system=system) for p in prompts])

    # ---- forward ---------------------------------------------------------------------------------

    def logits(self, enc: Encoding) -> Float[Tensor, "batch seq vocab"]:
        """Logits of a padded batch with correct positions for left padding (hooks fire)."""
        out = self.hf(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                      position_ids=enc.position_ids, use_cache=False)
        return out.logits

    def next_token_logits(self, enc: Encoding) -> Float[Tensor, "batch vocab"]:
        """Logits of the first generated token (last position; valid under left padding).

        ``logits_to_keep=1`` makes the model unembed the last position only, so no
        [batch, seq, vocab] tensor is formed (at a 150k vocabulary that is the largest tensor of the
        forward). Hooks fire as in :meth:`logits`.
        """
        out = self.hf(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                      position_ids=enc.position_ids, use_cache=False, logits_to_keep=1)
        return out.logits[:, -1, :]

    def run_hooks(self, enc: Encoding, stop_after: Site | str | None = None) -> None:
        """Run a forward only for its hooks' side effects: no logits are computed.

        The base model runs without the unembedding (unless a hook sits on it: then the full forward
        runs, so that hook still fires). ``stop_after``: end the forward as soon as that hook point
        has fired, so later layers are not computed (hooks attached earlier on the same point run
        first). Returns nothing; read what the hooks stored.
        """
        head_hooked = any(hp.has_hooks() for name, hp in self.bridge.hook_dict.items()
                          if name.startswith(("unembed.", "hook_unembed")))
        stop = [] if stop_after is None else [(self.resolve(stop_after), _raise_stop)]
        with self.bridge.hooks(fwd_hooks=stop):
            try:
                if head_hooked:
                    self.logits(enc)
                else:
                    self.hf.base_model(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                                       position_ids=enc.position_ids, use_cache=False)
            except _StopForward:
                pass

    # ---- hooks -----------------------------------------------------------------------------------

    def resolve(self, site: Site | str) -> str:
        """Hook name of a site, checked against the model (fails loudly, with suggestions)."""
        name = site.name if isinstance(site, Site) else site
        if isinstance(site, Site) and site.layer >= self.spec.n_layers:
            raise HookNameError(f"layer {site.layer} out of range: the model has {self.spec.n_layers} layers")
        if name not in self.bridge.hook_dict:
            close = difflib.get_close_matches(name, list(self.bridge.hook_dict), n=3)
            hint = f"; did you mean {close}?" if close else ""
            raise HookNameError(f"model {self.name!r} has no hook named {name!r}{hint}")
        return name

    @contextmanager
    def hooks(
        self,
        fwd: Sequence[tuple[Site | str, HookFn]] = (),
        bwd: Sequence[tuple[Site | str, HookFn]] = (),
    ) -> Iterator[Model]:
        """Attach hooks for the duration of the block; they are removed even if it raises."""
        fwd_named = [(self.resolve(s), fn) for s, fn in fwd]
        bwd_named = [(self.resolve(s), fn) for s, fn in bwd]
        with self.bridge.hooks(fwd_hooks=fwd_named, bwd_hooks=bwd_named):
            yield self

    def named_parameters(self) -> dict[str, torch.nn.Parameter]:
        """Parameters under their Hugging Face names (bridge wrappers stripped), tied tensors once."""
        from interp.models.params import named_parameters

        return named_parameters(self.hf)

    # ---- persistence -----------------------------------------------------------------------------

    def save(self, path: str | Path, extra: dict | None = None) -> Path:
        """Save weights, tokenizer and provenance atomically; :func:`load_model` reopens the folder."""
        import json

        from safetensors.torch import save_file

        from interp.models.params import hf_state_dict

        path = Path(path)
        with atomic_dir(path) as tmp:
            # save_pretrained would see the bridge's wrapper modules; write the plain HF layout instead.
            save_file(hf_state_dict(self.hf), tmp / "model.safetensors", metadata={"format": "pt"})
            self.hf.config.save_pretrained(tmp)
            self.hf.generation_config.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            (tmp / "interp.json").write_text(json.dumps({**self.provenance, **(extra or {})}, indent=2))
        return path
