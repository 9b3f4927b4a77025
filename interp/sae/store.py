"""A disk-backed activation store: stream hook activations of a prompt corpus into safetensors shards.

Layout of a store directory::

    manifest.json           sites, settings, corpus fingerprint, completed shards (rewritten after each)
    prompts.json            the formatted texts (and labels) the rows point into
    shard_00000.safetensors acts.<site key> [rows, width], prompt_index, position, token_id  (one per shard)

Memory: at most ``shard_rows + batch_size * max_length`` rows are held before they are flushed, whatever
the corpus size. Each shard is written atomically, then the manifest; a run that is killed resumes at the
first prompt after the last shard that the manifest lists (re-running with the same arguments).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from jaxtyping import Float
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor
from tqdm.auto import tqdm

from interp.errors import DataFormatError, InterpError
from interp.io import write_json, write_with
from interp.sae.site import ActSite

log = logging.getLogger(__name__)

FORMAT = "interp-activation-store"
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Order in which hook points fire inside one block (to know when every site has been seen).
_ORDER = {"resid_pre": 0, "z": 1, "attn_out": 2, "resid_mid": 3, "mlp_out": 4, "resid_post": 5}


@dataclass(frozen=True)
class CollectConfig:
    """How activations are collected."""

    batch_size: int = 8
    """Prompts per forward pass."""
    positions: Literal["all", "last"] = "all"
    """Every real (unpadded) token position, or only the last one (the first generated token's context)."""
    drop_first: bool = True
    """Skip each sequence's first token (an attention sink with outlier norms); only with ``all``."""
    max_length: int | None = 256
    """Truncate texts to this many tokens (``all`` only; bounds the rows a batch adds)."""
    shard_rows: int = 65536
    """Rows per shard; also the in-memory buffer bound."""
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    """Storage dtype of the activations."""
    stop_early: bool = True
    """Stop each forward pass once every site has been captured (later layers are not run)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.shard_rows < 1:
            raise ValueError("batch_size and shard_rows must be positive")
        if self.positions not in ("all", "last"):
            raise ValueError(f"positions must be 'all' or 'last', got {self.positions!r}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {list(_DTYPES)}, got {self.dtype!r}")


class _StopForward(Exception):
    """Raised inside a hook to end a forward pass once everything needed has been captured."""


def _fingerprint(model_name: str, texts: Sequence[str], sites: Sequence[ActSite], cfg: CollectConfig) -> str:
    h = hashlib.sha1()
    h.update(model_name.encode())
    h.update(json.dumps([s.to_dict() for s in sites]).encode())
    h.update(json.dumps(asdict(cfg), sort_keys=True).encode())
    for t in texts:
        h.update(t.encode())
        h.update(b"\x00")
    return h.hexdigest()


def _row_mask(enc, cfg: CollectConfig) -> Tensor:
    """Boolean [batch, seq] mask of the positions whose activations are kept."""
    mask = enc.attention_mask.bool()
    if cfg.positions == "last":
        keep = torch.zeros_like(mask)
        keep[:, -1] = True
        return keep
    if cfg.drop_first:
        mask = mask & (enc.position_ids > 0)
    return mask


def _capture_batch(model, enc, sites: Sequence[ActSite], stop_early: bool) -> dict[str, Tensor]:
    captured: dict[str, Tensor] = {}
    names = {s.site.name for s in sites}

    def make(name: str):
        def hook(act: Tensor, *, hook) -> None:
            captured[name] = act.detach()
            if stop_early and names <= captured.keys():
                raise _StopForward

        return hook

    with torch.no_grad(), model.hooks(fwd=[(name, make(name)) for name in sorted(names)]):
        try:
            model.run_hooks(enc)  # no unembedding: only the hooked activations are wanted
        except _StopForward:
            pass
    return {s.key: s.extract(captured[s.site.name]) for s in sites}


def _write_shard(path: Path, tensors: dict[str, Tensor]) -> None:
    write_with(path, lambda tmp: save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp)))


def collect_activations(
    model,
    texts: Sequence[str],
    sites: Sequence[ActSite],
    out_dir: str | Path,
    cfg: CollectConfig = CollectConfig(),
    labels: Sequence[str] | None = None,
    provenance: dict | None = None,
) -> ActivationStore:
    """Run ``model`` over already formatted ``texts`` and store the activations at ``sites``.

    Resumes a partial store in ``out_dir`` made with the same model, texts, sites and settings; fails
    if ``out_dir`` holds a store made with different ones.
    """
    if isinstance(texts, str) or not texts:
        raise InterpError("collect_activations needs a non-empty sequence of texts")
    if labels is not None and len(labels) != len(texts):
        raise InterpError(f"{len(labels)} labels for {len(texts)} texts")
    for s in sites:
        s.check(model.spec)
        model.resolve(s.site)
    out = Path(out_dir)
    fp = _fingerprint(model.name, texts, sites, cfg)
    manifest = _start_or_resume(out, fp, model, texts, sites, cfg, labels, provenance)
    if manifest["complete"]:
        return ActivationStore(out)
    dtype = _DTYPES[cfg.dtype]
    buf: list[dict[str, Tensor]] = []
    buf_rows = 0
    shard_start = manifest["prompts_done"]
    stop_early = cfg.stop_early
    max_length = cfg.max_length if cfg.positions == "all" else None
    bar = tqdm(total=len(texts), initial=shard_start, desc="collecting activations", unit="prompt")
    for b0 in range(shard_start, len(texts), cfg.batch_size):
        batch = list(texts[b0 : b0 + cfg.batch_size])
        enc = model.encode(batch, max_length=max_length)
        acts = _capture_batch(model, enc, sites, stop_early)
        keep = _row_mask(enc, cfg)
        rows = {f"acts.{k}": v[keep].to("cpu", dtype) for k, v in acts.items()}
        pidx = torch.arange(b0, b0 + len(batch), device=keep.device)[:, None].expand_as(keep)
        rows["prompt_index"] = pidx[keep].to("cpu", torch.int64)
        rows["position"] = enc.position_ids[keep].to("cpu", torch.int64)
        rows["token_id"] = enc.input_ids[keep].to("cpu", torch.int64)
        buf.append(rows)
        buf_rows += int(keep.sum())
        bar.update(len(batch))
        last = b0 + cfg.batch_size >= len(texts)
        if buf_rows >= cfg.shard_rows or last:
            _flush(out, manifest, buf, shard_start, min(b0 + cfg.batch_size, len(texts)))
            shard_start = manifest["prompts_done"]
            buf, buf_rows = [], 0
    bar.close()
    manifest["complete"] = True
    write_json(out / "manifest.json", manifest)
    log.info("activation store %s: %d rows in %d shards", out, manifest["n_rows"], len(manifest["shards"]))
    return ActivationStore(out)


def _start_or_resume(out: Path, fp: str, model, texts, sites, cfg, labels, provenance) -> dict:
    mpath = out / "manifest.json"
    if mpath.exists():
        manifest = json.loads(mpath.read_text())
        if manifest.get("fingerprint") != fp:
            raise InterpError(
                f"{out} already holds an activation store made from a different model, corpus, sites or "
                "settings; choose another directory or delete it"
            )
        if not manifest["complete"]:
            log.info("resuming activation store %s at prompt %d", out, manifest["prompts_done"])
        return manifest
    prompts = [{"text": t, "label": labels[i] if labels is not None else None} for i, t in enumerate(texts)]
    write_json(out / "prompts.json", prompts)
    manifest = {
        "format": FORMAT, "version": 1, "fingerprint": fp, "model": model.name,
        "sites": [s.to_dict() | {"width": s.width(model.spec)} for s in sites],
        "config": asdict(cfg), "n_prompts": len(texts), "prompts_done": 0, "n_rows": 0,
        "shards": [], "complete": False, "provenance": {**model.provenance, **(provenance or {})},
    }
    write_json(mpath, manifest)
    return manifest


def _flush(out: Path, manifest: dict, buf: list[dict[str, Tensor]], p_start: int, p_end: int) -> None:
    tensors = {k: torch.cat([b[k] for b in buf]) for k in buf[0]}
    n = int(tensors["prompt_index"].shape[0])
    name = f"shard_{len(manifest['shards']):05d}.safetensors"
    _write_shard(out / name, tensors)
    manifest["shards"].append({"file": name, "rows": n, "prompt_start": p_start, "prompt_end": p_end})
    manifest["prompts_done"] = p_end
    manifest["n_rows"] += n
    write_json(out / "manifest.json", manifest)


def write_store(
    out_dir: str | Path,
    acts: Float[Tensor, "rows width"],
    site: ActSite,
    shard_rows: int = 65536,
    model_name: str = "synthetic",
    provenance: dict | None = None,
) -> ActivationStore:
    """A store from activations already in memory (synthetic data, benchmarks); one prompt per row."""
    out = Path(out_dir)
    if (out / "manifest.json").exists():
        raise InterpError(f"{out} already holds an activation store")
    n = acts.shape[0]
    write_json(out / "prompts.json", [{"text": f"row {i}", "label": None} for i in range(n)])
    manifest = {
        "format": FORMAT, "version": 1, "fingerprint": None, "model": model_name,
        "sites": [site.to_dict() | {"width": int(acts.shape[1])}], "config": {"shard_rows": shard_rows},
        "n_prompts": n, "prompts_done": 0, "n_rows": 0, "shards": [], "complete": False,
        "provenance": dict(provenance or {}),
    }
    for i in range(0, n, shard_rows):
        idx = torch.arange(i, min(i + shard_rows, n))
        rows = {f"acts.{site.key}": acts[i : i + shard_rows].cpu(), "prompt_index": idx,
                "position": torch.zeros_like(idx), "token_id": torch.zeros_like(idx)}
        _flush(out, manifest, [rows], i, int(idx[-1]) + 1)
    manifest["complete"] = True
    write_json(out / "manifest.json", manifest)
    return ActivationStore(out)


class ActivationStore:
    """Read access to a store written by :func:`collect_activations`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        mpath = self.path / "manifest.json"
        if not mpath.exists():
            raise DataFormatError(f"{self.path} is not an activation store (no manifest.json)")
        self.manifest = json.loads(mpath.read_text())
        if self.manifest.get("format") != FORMAT:
            raise DataFormatError(f"{mpath} is not an {FORMAT} manifest")
        self.sites = {d["key"]: ActSite.from_dict(d) for d in self.manifest["sites"]}
        self._widths = {d["key"]: d["width"] for d in self.manifest["sites"]}

    @property
    def keys(self) -> list[str]:
        return list(self.sites)

    @property
    def n_rows(self) -> int:
        return int(self.manifest["n_rows"])

    @property
    def complete(self) -> bool:
        return bool(self.manifest["complete"])

    def key(self, key: str | None = None) -> str:
        """Validate a site key; ``None`` picks the only one."""
        if key is None:
            if len(self.sites) != 1:
                raise InterpError(f"store {self.path} holds several sites {self.keys}; name one")
            return self.keys[0]
        if key not in self.sites:
            raise InterpError(f"store {self.path} has no site {key!r}; it has {self.keys}")
        return key

    def width(self, key: str | None = None) -> int:
        return self._widths[self.key(key)]

    def prompts(self) -> list[dict]:
        return json.loads((self.path / "prompts.json").read_text())

    def _read(self, shard: dict, names: Sequence[str]) -> dict[str, Tensor]:
        with safe_open(str(self.path / shard["file"]), framework="pt") as f:
            return {n: f.get_tensor(n) for n in names}

    def read(self, key: str | None = None, max_rows: int | None = None) -> Float[Tensor, "rows width"]:
        """The first ``max_rows`` rows of one site (all when ``None``), as float32 on the CPU."""
        return self.read_with_meta(key, max_rows)["acts"]

    def read_with_meta(self, key: str | None = None, max_rows: int | None = None) -> dict[str, Tensor]:
        """``acts`` plus ``prompt_index``, ``position`` and ``token_id`` of the first ``max_rows`` rows."""
        name = f"acts.{self.key(key)}"
        parts: list[dict[str, Tensor]] = []
        got = 0
        for shard in self.manifest["shards"]:
            if max_rows is not None and got >= max_rows:
                break
            parts.append(self._read(shard, [name, "prompt_index", "position", "token_id"]))
            got += shard["rows"]
        if not parts:
            raise InterpError(f"activation store {self.path} has no rows")
        out = {k: torch.cat([p[k] for p in parts])[:max_rows] for k in parts[0]}
        out["acts"] = out.pop(name).float()
        return out

    def batches(
        self,
        batch_size: int,
        key: str | None = None,
        *,
        buffer_rows: int = 65536,
        seed: int = 0,
        epochs: int | None = None,
        device: str | torch.device | None = None,
        skip_batches: int = 0,
    ) -> Iterator[Float[Tensor, "batch width"]]:
        """Shuffled training batches: shards in random order, rows mixed within a buffer.

        ``epochs=None`` cycles forever (what the sae-lens trainer wants). Memory holds at most
        ``buffer_rows`` plus one shard. ``skip_batches`` replays and drops the first batches, so a resumed
        training run sees the data it would have seen.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        name = f"acts.{self.key(key)}"
        shards = self.manifest["shards"]
        if not shards:
            raise InterpError(f"activation store {self.path} has no rows")
        emitted = 0
        carry: Tensor | None = None
        epoch = 0
        while epochs is None or epoch < epochs:
            gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            buf: list[Tensor] = [] if carry is None else [carry]
            n_buf = 0 if carry is None else carry.shape[0]
            for si in torch.randperm(len(shards), generator=gen).tolist():
                x = self._read(shards[si], [name])[name]
                buf.append(x)
                n_buf += x.shape[0]
                if n_buf >= buffer_rows:
                    mixed = torch.cat(buf)[torch.randperm(n_buf, generator=gen)]
                    n_out = (n_buf // 2) // batch_size * batch_size
                    for i in range(0, n_out, batch_size):
                        if emitted >= skip_batches:
                            yield mixed[i : i + batch_size].to(device=device, dtype=torch.float32)
                        emitted += 1
                    buf, n_buf = [mixed[n_out:]], n_buf - n_out
            rest = torch.cat(buf)[torch.randperm(n_buf, generator=gen)] if n_buf else None
            n_out = n_buf // batch_size * batch_size
            for i in range(0, n_out, batch_size):
                if emitted >= skip_batches:
                    yield rest[i : i + batch_size].to(device=device, dtype=torch.float32)
                emitted += 1
            carry = rest[n_out:] if rest is not None and n_out < n_buf else None
            epoch += 1
