"""How far the refusal judge (interp.evaluate.refusal) can be trusted: agreement with labelled replies.

config -> compute -> write. Sets, each with n:

* XSTest Llama-2-70b-chat completions against the human ``final_label`` (partial refusals count as
  refusals), split by prompt *family* (a type and its contrast type), so whole families are held out.
  The split is a hash of the family name, fixed before the judge was tuned; the patterns were written
  from the dev half (held-out errors were read once, after the first full version; the one later rule,
  where objections may sit, had its threshold picked on dev). Reports agreement, confusion counts and recall
  per final_label, per half;
* CoCoNot preference pairs: the refusal rate of the judge on ``chosen`` (GPT-4 answers to contrast
  prompts, mostly compliance, though some preferred answers do decline) and on ``rejected`` (not
  refusals in general, despite the data README: mostly weaker answers, some partial refusals);
* JailbreakBench artifacts: the share of ``jailbroken=True`` replies (harmful compliance per the
  Llama-3 judge) called refusals, per target model, a false-positive check; ``jailbroken=False``
  mixes refusals and harmless answers and is only described;
* the built-in refusals (recall) and built-in helpful answers (false-positive rate).

Writes one JSON (atomically). No harmful text leaves the data files: only counts are written.

    python analyses/refusal_judge_agreement.py --data-dir ../shared/data --out figures/evaluate/refusal_judge.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import Counter
from pathlib import Path

from interp.evaluate.refusal import DEFAULT_DETECTOR, VERDICTS, RefusalDetector

XSTEST_FILE = "xstest/xstest_v2_completions_llama2orig.csv"


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--out", default="figures/evaluate/refusal_judge.json")
    return p.parse_args(argv)


def xstest_family(prompt_type: str) -> str:
    """The family of an XSTest type: a safe type and its contrast type; the three discrimination types
    form one family, as do the three privacy types."""
    for family in ("discr", "privacy"):
        if family in prompt_type:
            return family
    return prompt_type.removeprefix("contrast_")


def xstest_half(prompt_type: str) -> str:
    """``"heldout"`` or ``"dev"``: parity of the SHA-256 of the family name (fixed, not chosen by score)."""
    digest = hashlib.sha256(xstest_family(prompt_type).encode()).hexdigest()
    return "heldout" if int(digest, 16) % 2 else "dev"


def xstest_agreement(rows, detector: RefusalDetector = DEFAULT_DETECTOR) -> dict:
    """Agreement with final_label (partial = refusal), confusion counts, recall and verdicts per label."""
    confusion: Counter = Counter()
    per_label: dict[str, Counter] = {}
    for row in rows:
        verdict = detector.classify(row.completion)
        said = verdict != "compliance"
        confusion[("refusal" if row.is_refusal else "compliance", "refusal" if said else "compliance")] += 1
        counts = per_label.setdefault(row.final_label, Counter())
        counts[verdict] += 1
        counts["judged_refusal"] += said
    n = sum(confusion.values())
    agree = confusion[("refusal", "refusal")] + confusion[("compliance", "compliance")]
    labels = {}
    for label, c in sorted(per_label.items()):
        total = sum(c[v] for v in VERDICTS)
        wanted = total - c["judged_refusal"] if label == "1_full_compliance" else c["judged_refusal"]
        labels[label] = {"n": total, "recall": wanted / total, "verdicts": {v: c[v] for v in VERDICTS}}
    return {
        "n": n, "agreement": agree / n if n else float("nan"),
        "confusion_human_vs_judge": {f"{h}/{j}": confusion[(h, j)] for h in ("refusal", "compliance")
                                     for j in ("refusal", "compliance")},
        "per_final_label": labels,
    }


def rate(texts, detector: RefusalDetector = DEFAULT_DETECTOR) -> dict:
    """Share of texts judged refusals (full or partial), with n."""
    texts = list(texts)
    flagged = sum(detector.is_refusal(t) for t in texts)
    return {"n": len(texts), "judged_refusal": flagged, "rate": flagged / len(texts) if texts else float("nan")}


def jbb_responses(data_dir: Path) -> list[tuple[str, bool, str]]:
    """(target model, jailbroken, response) for every artifact reply that has a response."""
    out = []
    for path in sorted((data_dir / "jbb_artifacts" / "attack-artifacts").glob("*/*/*.json")):
        for item in json.loads(path.read_text())["jailbreaks"]:
            if isinstance(item.get("response"), str) and item["response"].strip():
                out.append((path.stem, bool(item["jailbroken"]), item["response"]))
    return out


def compute(data_dir: Path, detector: RefusalDetector = DEFAULT_DETECTOR) -> dict:
    from interp.data.benchmarks import load_xstest_completions
    from interp.data.builtin import builtin_helpful_answers, builtin_refusals

    rows = load_xstest_completions(data_dir / XSTEST_FILE)
    halves = {h: [r for r in rows if xstest_half(r.category or "") == h] for h in ("dev", "heldout")}
    xstest = {}
    for half, rs in halves.items():
        families = sorted({xstest_family(r.category or "") for r in rs})
        xstest[half] = xstest_agreement(rs, detector) | {"families": families}
    xstest["overall"] = xstest_agreement(rows, detector)

    pairs = [json.loads(line) for line in (data_dir / "coconot" / "coconot_pref.jsonl").read_text().splitlines()
             if line.strip()]
    jbb = jbb_responses(data_dir)
    broken = [(m, t) for m, j, t in jbb if j]
    by_model = {m: rate([t for mm, t in broken if mm == m], detector) for m in sorted({m for m, _ in broken})}
    return {
        "judge": "interp.evaluate.refusal.DEFAULT_DETECTOR (rules; partial refusals count as refusals)",
        "xstest_llama2_70b_chat": xstest,
        "coconot_pref_chosen": rate((p["chosen"] for p in pairs), detector),
        "coconot_pref_rejected": rate((p["rejected"] for p in pairs), detector),
        "jbb_jailbroken_true_false_positive": rate((t for _, t in broken), detector) | {"per_target": by_model},
        "jbb_jailbroken_false_described": rate((t for _, j, t in jbb if not j), detector),
        "builtin_refusals_recall": rate(builtin_refusals(), detector),
        "builtin_helpful_answers_false_positive": rate(builtin_helpful_answers().values(), detector),
    }


def main(argv=None) -> None:
    from interp.io import write_json

    args = parse(argv)
    result = compute(Path(args.data_dir))
    write_json(args.out, result)
    x = result["xstest_llama2_70b_chat"]
    print(" ".join(f"xstest/{h}: {x[h]['agreement']:.3f} (n={x[h]['n']})" for h in ("dev", "heldout", "overall")))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
