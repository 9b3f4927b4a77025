"""Refusal subspaces: orthonormal bases at a hook site, built from SAE decoder directions; export/load.

An export is a folder ``<name>_v<N>/`` holding ``basis.safetensors`` (the [k, d] basis) and
``subspace.json`` (site, layer, heads, dimension, model shape, provenance). Versions are never
overwritten: each export takes the next free version number, and the folder appears atomically.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from jaxtyping import Float
from safetensors.torch import load_file, save_file
from torch import Tensor

from interp.errors import DataFormatError, ShapeMismatchError
from interp.hooks import orthonormalize
from interp.sae.site import ActSite

FORMAT = "interp-subspace"


@dataclass
class Subspace:
    """An orthonormal basis of directions in the activation space of one site."""

    basis: Float[Tensor, "k d"]
    """Orthonormal rows."""
    site: ActSite
    """Hook site (and heads of a ``z`` site) the directions live in."""
    model_shape: dict = field(default_factory=dict)
    """n_layers, n_heads, d_head, d_model of the model it was built on."""
    provenance: dict = field(default_factory=dict)
    """Model, SAE, features, data, settings."""
    version: int | None = None
    """Export version (set by :func:`export_subspace` / :func:`load_subspace`)."""

    def __post_init__(self) -> None:
        if self.basis.ndim != 2:
            raise ShapeMismatchError(f"a subspace basis is [k, d], got shape {tuple(self.basis.shape)}")
        gram = self.basis.double() @ self.basis.double().T
        if not torch.allclose(gram, torch.eye(len(gram), dtype=gram.dtype, device=gram.device), atol=1e-4):
            raise ValueError("subspace basis rows are not orthonormal")

    @property
    def k(self) -> int:
        return int(self.basis.shape[0])

    @property
    def d(self) -> int:
        return int(self.basis.shape[1])

    @property
    def hook_name(self) -> str:
        return self.site.site.name

    @property
    def layer(self) -> int:
        return self.site.layer

    @property
    def heads(self) -> tuple[int, ...] | None:
        return self.site.heads

    def project(self, x: Float[Tensor, "*batch d"]) -> Float[Tensor, "*batch k"]:
        """Coordinates of ``x`` in the basis."""
        return x @ self.basis.to(x.device, x.dtype).T

    def check(self, model) -> None:
        """Raise :class:`ShapeMismatchError` naming both shapes if this subspace does not fit ``model``."""
        spec = model.spec
        want = self.site.width(spec) if self.site.layer < spec.n_layers else None
        theirs = {"n_layers": spec.n_layers, "n_heads": spec.n_heads, "d_head": spec.d_head,
                  "d_model": spec.d_model}
        problems = []
        if self.layer >= spec.n_layers:
            problems.append(f"layer {self.layer} but the model has {spec.n_layers} layers")
        if self.heads is not None and max(self.heads) >= spec.n_heads:
            problems.append(f"heads {list(self.heads)} but the model has {spec.n_heads} heads per layer")
        if not problems and want != self.d:
            problems.append(f"dimension d={self.d} but the site is {want}-dimensional in the model")
        if problems:
            raise ShapeMismatchError(
                f"subspace at {self.hook_name} (built on a model with {self.model_shape}) does not fit model "
                f"{getattr(model, 'name', '?')!r} with {theirs}: " + "; ".join(problems))

    def to_meta(self) -> dict:
        return {"format": FORMAT, "version": self.version, "k": self.k, "d": self.d, **self.site.to_dict(),
                "model_shape": self.model_shape, "provenance": self.provenance}


def build_subspace(
    site: ActSite,
    keep: Float[Tensor, "m d"],
    remove: Float[Tensor, "n d"] | None = None,
    model_shape: dict | None = None,
    provenance: dict | None = None,
    eps: float = 1e-4,
) -> Subspace:
    """Span of ``keep`` (e.g. refusal features' decoder rows, plus a difference-of-means direction)
    orthogonalised against the span of ``remove`` (hallucination features' decoder rows).

    Directions that lie (almost) inside ``remove``'s span vanish; the result may have fewer than m rows.
    """
    keep = keep.detach().double()
    keep = keep / keep.norm(dim=1, keepdim=True).clamp(min=1e-30)
    if remove is not None and len(remove):
        q = orthonormalize(remove.detach().double())
        keep = keep - (keep @ q.T) @ q
    norms = keep.norm(dim=1)
    keep = keep[norms > eps]
    if not len(keep):
        raise ValueError("nothing left of the kept directions after removing the other span")
    basis = orthonormalize(keep, eps=eps).float()
    return Subspace(basis, site, dict(model_shape or {}), dict(provenance or {}))


def subspace_from_sae(
    sae, site: ActSite, refusal_features: Sequence[int], hallucination_features: Sequence[int] = (),
    extra: Float[Tensor, "m d"] | None = None, model_shape: dict | None = None,
    provenance: dict | None = None, validation=None,
) -> Subspace:
    """Refusal subspace from an SAE's decoder rows (see :func:`build_subspace`).

    ``validation``: the :class:`interp.sae.attribution.FeatureValidation` of exactly
    ``refusal_features`` (ablated together, one by one, and against random sets of as many features);
    it is recorded in the provenance (``validation``, ``validated``), so the export says which
    features form it and what ablating them measured. A validation of other features is refused.
    """
    if validation is not None and sorted(validation.features) != sorted(int(f) for f in refusal_features):
        raise ValueError(f"the validation checked features {list(validation.features)}, but the subspace is built "
                         f"from {list(refusal_features)}; validate exactly the subspace's features")
    w = sae.W_dec.detach().float().cpu()
    keep = w[list(refusal_features)]
    if extra is not None:
        keep = torch.cat([keep, extra.float().cpu().reshape(-1, w.shape[1])])
    remove = w[list(hallucination_features)] if hallucination_features else None
    prov = {"refusal_features": list(refusal_features),
            "hallucination_features": list(hallucination_features),
            "extra_directions": 0 if extra is None else int(extra.reshape(-1, w.shape[1]).shape[0]),
            "validated": None if validation is None else validation.passed,
            "validation": None if validation is None else validation.to_dict(),
            **(provenance or {})}
    return build_subspace(site, keep, remove, model_shape, prov)


def _versions(out_dir: Path, name: str) -> list[int]:
    pat = re.compile(rf"{re.escape(name)}_v(\d+)")
    return sorted(int(m.group(1)) for p in out_dir.glob(f"{name}_v*") if (m := pat.fullmatch(p.name)))


def export_subspace(subspace: Subspace, out_dir: str | Path, name: str = "refusal_subspace") -> Path:
    """Write ``<out_dir>/<name>_v<N>/`` with the next free N; returns that folder. Never overwrites."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=out_dir))
    try:
        for _ in range(100):
            version = (_versions(out_dir, name) or [0])[-1] + 1
            subspace.version = version
            save_file({"basis": subspace.basis.detach().cpu().contiguous()}, str(tmp / "basis.safetensors"),
                      metadata={"hook_name": subspace.hook_name, "version": str(version)})
            (tmp / "subspace.json").write_text(json.dumps(subspace.to_meta(), indent=2, default=str))
            final = out_dir / f"{name}_v{version}"
            try:
                os.rename(tmp, final)  # atomic; fails if another export took this version meanwhile
                return final
            except OSError:
                if not final.exists():
                    raise
        raise RuntimeError(f"could not find a free version for {name} in {out_dir}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def latest_version(out_dir: str | Path, name: str = "refusal_subspace") -> Path:
    """Folder of the newest export ``<name>_v<N>`` in ``out_dir``."""
    versions = _versions(Path(out_dir), name)
    if not versions:
        raise FileNotFoundError(f"no {name}_v<N> export in {out_dir}")
    return Path(out_dir) / f"{name}_v{versions[-1]}"


def load_subspace(path: str | Path, model=None) -> Subspace:
    """Load an export folder; with ``model``, check that it fits (else :class:`ShapeMismatchError`)."""
    path = Path(path)
    meta_path = path / "subspace.json"
    if not meta_path.exists():
        raise DataFormatError(f"{path} is not a subspace export (no subspace.json)")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise DataFormatError(f"{meta_path} is not an {FORMAT} file")
    basis = load_file(str(path / "basis.safetensors"))["basis"]
    if tuple(basis.shape) != (meta["k"], meta["d"]):
        raise DataFormatError(
            f"{path}: basis has shape {tuple(basis.shape)}, metadata says ({meta['k']}, {meta['d']})")
    sub = Subspace(basis, ActSite.from_dict(meta), meta.get("model_shape", {}), meta.get("provenance", {}),
                   meta.get("version"))
    if model is not None:
        sub.check(model)
        sub.basis = sub.basis.to(model.device)
    return sub
