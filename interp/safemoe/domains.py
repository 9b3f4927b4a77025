"""One set of harm domains, and the table that maps every benchmark's own taxonomy onto it.

CatQA (11 categories), JailbreakBench (10 categories), HarmBench (semantic categories) and the
built-in harmful prompts (10 categories) name harms; HarmfulQA names *academic topics* (its harmful
questions are phrased inside a subject, "How can I use statistics to ..."), so its rows map to the
harm most of a topic's questions ask about, by reading a sample: that mapping is approximate and the
README table marks it. AdvBench has no categories and gets no domain (it is only evaluated).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from interp.data.prompts import Prompt, PromptSet
from interp.errors import InterpError

DOMAINS: tuple[str, ...] = ("cyber", "fraud", "violence", "drugs_illegal", "hate", "sexual", "privacy",
                            "misinformation")
"""The harm domains: one LoRA expert each."""

TAXONOMY: dict[str, dict[str, str]] = {
    "catqa": {
        "Malware Viruses": "cyber",
        "Fraud/Deception": "fraud",
        "Economic Harm": "fraud",
        "Tailored Financial Advice": "fraud",
        "Physical Harm": "violence",
        "Illegal Activity": "drugs_illegal",
        "Hate/Harass/Violence": "hate",
        "Adult Content": "sexual",
        "Child Abuse": "sexual",
        "Privacy Violation Activity": "privacy",
        "Political Campaigning": "misinformation",
    },
    "jbb": {
        "Malware/Hacking": "cyber",
        "Fraud/Deception": "fraud",
        "Economic harm": "fraud",
        "Physical harm": "violence",
        "Expert advice": "drugs_illegal",
        "Harassment/Discrimination": "hate",
        "Sexual/Adult content": "sexual",
        "Privacy": "privacy",
        "Disinformation": "misinformation",
        "Government decision-making": "misinformation",
    },
    "harmbench": {
        "cybercrime_intrusion": "cyber",
        "chemical_biological": "violence",
        "harmful": "violence",
        "illegal": "drugs_illegal",
        "harassment_bullying": "hate",
        "misinformation_disinformation": "misinformation",
    },
    "builtin": {
        "cybercrime": "cyber",
        "fraud": "fraud",
        "weapons": "violence",
        "violence": "violence",
        "self_harm": "violence",
        "drugs": "drugs_illegal",
        "hate_harassment": "hate",
        "sexual_exploitation_nonexplicit": "sexual",
        "privacy": "privacy",
        "misinformation": "misinformation",
    },
    # Approximate: HarmfulQA topics are subjects, not harms (see the module docstring).
    "harmfulqa": {
        "Science and Technology": "cyber",
        "Mathematics and Logic": "fraud",
        "Business and Economics": "fraud",
        "Education and Pedagogy": "fraud",
        "Health and Medicine": "drugs_illegal",
        "Geography and Environmental Studies": "misinformation",
        "Literature and Language": "misinformation",
        "Social Sciences": "hate",
        "Philosophy and Ethics": "hate",
        "History and Culture": "hate",
    },
}
"""Prompt source -> its category -> harm domain. Every category a source has must be listed."""

APPROXIMATE_SOURCES: frozenset[str] = frozenset({"harmfulqa"})
"""Sources whose categories are topics rather than harms (their domain is the dominant harm)."""


def _check_table() -> None:
    for source, table in TAXONOMY.items():
        bad = sorted(set(table.values()) - set(DOMAINS))
        if bad:
            raise AssertionError(f"TAXONOMY[{source!r}] maps onto unknown domains {bad}")


_check_table()


def domain_of(prompt: Prompt) -> str | None:
    """The harm domain of a harmful prompt; None for other classes and sources without categories (AdvBench).

    A source in the table with a category missing from it fails loudly: a silent None would drop the
    prompt from its domain's corpus.
    """
    table = TAXONOMY.get(prompt.source)
    if table is None or prompt.label != "harmful":
        return None
    if prompt.category not in table:
        raise InterpError(f"{prompt.source} category {prompt.category!r} has no harm domain in "
                          f"interp.safemoe.domains.TAXONOMY; known: {sorted(table)}")
    return table[prompt.category]


def by_domain(prompts: Iterable[Prompt], domains: Iterable[str] = DOMAINS) -> dict[str, PromptSet]:
    """Prompts grouped by harm domain (only ``domains``; prompts without a domain are left out)."""
    wanted = tuple(domains)
    unknown = sorted(set(wanted) - set(DOMAINS))
    if unknown:
        raise InterpError(f"unknown harm domains {unknown}; known: {list(DOMAINS)}")
    groups: dict[str, list[Prompt]] = defaultdict(list)
    for p in prompts:
        d = domain_of(p)
        if d in wanted:
            groups[d].append(p)
    return {d: PromptSet(f"domain:{d}", tuple(groups[d])) for d in wanted}


def table_rows() -> list[dict]:
    """The mapping as rows ``{source, category, domain, approximate}`` (for the README and reports)."""
    return [{"source": s, "category": c, "domain": d, "approximate": s in APPROXIMATE_SOURCES}
            for s, table in TAXONOMY.items() for c, d in table.items()]
