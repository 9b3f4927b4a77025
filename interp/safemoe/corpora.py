"""Per-domain corpora: the untrained model's own greedy answers to harmful prompts, cached as JSONL.

The embedded model complies with most harmful prompts, so its answers are exactly its unsafe
knowledge, domain by domain. They are generated once into a cache folder (put it under the gitignored
``runs/``: the text is harmful and must never be committed or plotted) and read back by the expert
and evaluation stages. A finished file is reused; a killed run regenerates only the missing files.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from interp.data.prompts import PromptSet
from interp.errors import DataFormatError
from interp.io import write_text
from interp.safemoe.domains import domain_of
from interp.train.examples import SFTExample


@dataclass(frozen=True)
class CorpusRow:
    """One prompt with the model's reply."""

    uid: str
    source: str
    category: str | None
    domain: str | None
    prompt: str
    response: str

    def example(self, kind: str) -> SFTExample:
        return SFTExample(self.prompt, self.response, kind)


def write_corpus(path: Path, rows: list[CorpusRow]) -> Path:
    return write_text(path, "".join(json.dumps(asdict(r)) + "\n" for r in rows))


def read_corpus(path: str | Path) -> list[CorpusRow]:
    path = Path(path)
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append(CorpusRow(**json.loads(line)))
            except (json.JSONDecodeError, TypeError) as e:
                raise DataFormatError(f"{path}, line {i}: not a corpus row ({e})") from e
    return out


def build_corpus(model, prompts: PromptSet, path: str | Path, max_new_tokens: int = 96,
                 batch_size: int = 16) -> list[CorpusRow]:
    """Generate (or reuse) the model's greedy replies to ``prompts`` at ``path``; empty replies are dropped."""
    from interp.evaluate.generate import generate

    path = Path(path)
    if path.exists():
        return read_corpus(path)
    replies = generate(model, prompts.texts, max_new_tokens, batch_size, progress=False)
    rows = [CorpusRow(p.uid, p.source, p.category, domain_of(p), p.text, r.strip())
            for p, r in zip(prompts, replies, strict=True) if r.strip()]
    write_corpus(path, rows)
    return rows
