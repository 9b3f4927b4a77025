"""Read a figures folder (what ``interp heads``, ``interp sae`` and the analyses wrote) for the explorer.

Files are recognised by name wherever they sit under the folder; when a kind occurs in several
subfolders, the shallowest (then alphabetically first) folder wins and the Overview lists them all.
Nothing is computed here: the explorer shows what the pipeline saved.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from interp.errors import DataFormatError, InterpError
from interp.heads.scores import HeadScores

log = logging.getLogger(__name__)

HEAD_MAPS = {"refusal": "refusal_heads.json", "truthfulness": "truth_heads.json", "probes": "probe_heads.json"}
"""Head-score maps the Heads page shows, and their file names."""
_SKIP_DIRS = {"explorer"}


@dataclass(frozen=True)
class ResultFile:
    """One result JSON (or CSV) found under the figures folder."""

    path: str
    """Path relative to the figures folder."""
    kind: str
    """What it holds (its file name without suffix, or ``direction`` for a direction folder)."""
    provenance: dict
    """Its provenance/config block (model, data, settings), ``{}`` when it has none."""


@dataclass(frozen=True)
class HeadResults:
    """Head-score maps of one head study and its overlap statistics."""

    folder: str
    """Folder they were read from (relative)."""
    maps: dict[str, HeadScores]
    """Map name (``refusal``, ``truthfulness``, ``probes``) -> scores."""
    overlap: dict | None = None
    """``overlap.json`` (Jaccard@k, p-values, Spearman, shared top-k heads, config)."""
    candidates: dict | None = None
    """``candidate_patching.json`` (exact patching of attribution's top candidates), if written."""

    @property
    def ks(self) -> list[int]:
        """Top-k sizes of the overlap (falls back to 5 and 10 without one)."""
        if self.overlap and self.overlap.get("shared"):
            return sorted(int(k) for k in self.overlap["shared"])
        return [5, 10]

    def shared(self, k: int) -> list[tuple[int, int]]:
        """Heads in both maps' top-k (as saved by the overlap)."""
        got = (self.overlap or {}).get("shared", {}).get(str(k), [])
        return [(int(la), int(h)) for la, h in got]

    @property
    def rank_by(self) -> str:
        return (self.overlap or {}).get("rank_by") or (self.overlap or {}).get("config", {}).get(
            "rank_by", "signed")


@dataclass(frozen=True)
class FeatureResults:
    """SAE feature attribution, quality and feature pages of one SAE."""

    folder: str
    """Folder they were read from (relative)."""
    records: list[dict]
    """Per feature: ``feature``, ``refusal``, ``truthfulness``, normalised scores, ``class``."""
    summary: dict
    """Counts, top features per class, ablation checks, thresholds, provenance."""
    pages: dict[str, dict] = field(default_factory=dict)
    """``feature_pages.json``: feature -> histogram, examples (per-token activations), logit effects."""
    top_prompts: dict[str, list] = field(default_factory=dict)
    """``top_prompts.json`` of older runs (text, position, token only): the fallback for examples."""
    quality: dict | None = None
    """``sae_quality.json`` / ``quality.json``: reconstruction, sparsity, spliced loss."""

    def record(self, feature: int) -> dict:
        if not 0 <= feature < len(self.records):
            raise InterpError(f"feature {feature} out of range: the SAE has {len(self.records)} features")
        return self.records[feature]

    @property
    def sae_path(self) -> str | None:
        """The SAE folder the attribution names (may be relative to the working directory)."""
        return self.summary.get("provenance", {}).get("sae")


@dataclass(frozen=True)
class Results:
    """Everything the explorer found under one figures folder."""

    root: Path
    """The figures folder."""
    files: list[ResultFile]
    """Every result file, for the Overview's provenance table."""
    heads: HeadResults | None = None
    """The head study, if any."""
    features: FeatureResults | None = None
    """The SAE feature attribution, if any."""
    tables: dict[str, list[dict]] = field(default_factory=dict)
    """Trade-off and ablation tables (``tradeoff``, ``head_ablations``), as rows."""
    directions: dict[str, str] = field(default_factory=dict)
    """Direction folders (``direction.json`` + safetensors): relative path -> absolute path."""

    @property
    def model_name(self) -> str | None:
        """The model the results were computed with (from their provenance), if recorded."""
        sources = [*(s.provenance for s in (self.heads.maps.values() if self.heads else ())),
                   (self.features.summary.get("provenance", {}) if self.features else {})]
        for prov in sources:
            if prov.get("model"):
                return str(prov["model"])
        return None


def _read_json(path: Path) -> dict | list:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path} is not valid JSON: {exc}") from exc


def _pick(found: dict[str, list[Path]], name: str) -> Path | None:
    paths = found.get(name, [])
    return min(paths, key=lambda p: (len(p.parts), str(p))) if paths else None


def _provenance(data) -> dict:
    if not isinstance(data, dict):
        return {}
    prov = data.get("provenance") or data.get("config") or {}
    return prov if isinstance(prov, dict) else {}


def _scan(root: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part in _SKIP_DIRS or part.startswith(".") for part in rel.parts[:-1]):
            continue
        if p.is_file() and p.suffix in (".json", ".csv"):
            found.setdefault(p.name, []).append(rel)
    return found


def _heads(root: Path, found: dict[str, list[Path]]) -> HeadResults | None:
    first = next((p for p in (_pick(found, f) for f in HEAD_MAPS.values()) if p is not None), None)
    if first is None:
        return None
    folder = first.parent
    maps = {name: HeadScores.from_json(root / folder / f) for name, f in HEAD_MAPS.items()
            if (root / folder / f).exists()}
    extra = {n: _read_json(root / folder / f) if (root / folder / f).exists() else None
             for n, f in (("overlap", "overlap.json"), ("candidates", "candidate_patching.json"))}
    return HeadResults(str(folder), maps, extra["overlap"], extra["candidates"])


def _features(root: Path, found: dict[str, list[Path]]) -> FeatureResults | None:
    path = _pick(found, "feature_attribution.json")
    if path is None:
        return None
    folder = root / path.parent
    data = _read_json(root / path)
    if not isinstance(data, dict) or "features" not in data:
        raise DataFormatError(f"{root / path} has no 'features' list: not written by interp sae attribute")
    summary = {k: v for k, v in data.items() if k != "features"}
    pages = _read_json(folder / "feature_pages.json") if (folder / "feature_pages.json").exists() else {}
    full = Path(pages.get("store", "")) / "feature_pages.json" if pages.get("redacted") else None
    if full is not None and full.is_file():  # the unredacted pages beside the store, on this machine only
        pages = _read_json(full)
    top = _read_json(folder / "top_prompts.json") if (folder / "top_prompts.json").exists() else {}
    qpath = next((folder / n for n in ("sae_quality.json", "quality.json") if (folder / n).exists()), None)
    if qpath is None and _pick(found, "sae_quality.json") is not None:
        qpath = root / _pick(found, "sae_quality.json")
    quality = _read_json(qpath) if qpath is not None else None
    return FeatureResults(str(path.parent), data["features"], summary, pages.get("features", {}), top, quality)


def _tables(root: Path, found: dict[str, list[Path]]) -> dict[str, list[dict]]:
    out = {}
    tradeoff = _pick(found, "tradeoff.json")
    if tradeoff is not None:
        out["tradeoff"] = list(_read_json(root / tradeoff).get("rows", []))
    ablations = _pick(found, "head_ablations.csv")
    if ablations is not None:
        with open(root / ablations, newline="") as f:
            out["head_ablations"] = list(csv.DictReader(f))
    return out


def load_results(root: str | Path) -> Results:
    """Read every result the explorer knows under ``root`` (fails if the folder does not exist)."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise InterpError(f"figures folder {root} does not exist (pass --figures DIR, e.g. figures/)")
    found = _scan(root)
    files = []
    for name, paths in found.items():
        for rel in paths:
            data = _read_json(root / rel) if name.endswith(".json") else {}
            kind = "direction" if name == "direction.json" else Path(name).stem
            files.append(ResultFile(str(rel), kind, _provenance(data)))
    files.sort(key=lambda f: f.path)
    directions = {str(p.parent): str(root / p.parent) for p in found.get("direction.json", [])}
    results = Results(root, files, _heads(root, found), _features(root, found), _tables(root, found), directions)
    log.info("explorer: %d result files under %s", len(files), root)
    return results
