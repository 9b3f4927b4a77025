"""Loaders for public refusal / over-refusal / truthfulness benchmarks, one per file format.

Every loader takes a *source*: the path of the benchmark file as distributed, or, when that is not an
existing path, a Hugging Face dataset name (``owner/name``, optionally ``owner/name#config@split``)
read through ``datasets.load_dataset``. Column names of the common hub copies are accepted as aliases.
A malformed file fails with :class:`~interp.errors.DataFormatError` naming the file, the row and the
problem; nothing is silently skipped unless a loader documents a filter.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from interp.data.prompts import Label, Prompt, PromptSet
from interp.data.records import Record, Source, hub_records, local_path, read_json, records
from interp.errors import DataFormatError

logger = logging.getLogger(__name__)

def _prompt_set(name: str, prompts: Iterable[Prompt], source: Source) -> PromptSet:
    out = PromptSet(name, tuple(prompts))
    logger.info("loaded %d %s prompts from %s", len(out), name, source)
    return out


# --------------------------------------------------------------------------------------------------
# Over-refusal and harmful-request benchmarks.


def load_xstest(source: Source) -> PromptSet:
    """XSTest v2: ``safe`` prompts -> seemingly_harmful, ``unsafe`` contrasts -> harmful; category = type."""
    labels: dict[str, Label] = {"safe": "seemingly_harmful", "unsafe": "harmful"}
    out = []
    for r in records(source, "csv"):
        label = labels[r.choice(tuple(labels), "label")]
        out.append(Prompt(r.text("prompt"), label, "xstest", category=r.optional_text("type")))
    return _prompt_set("xstest", out, source)


XSTEST_FINAL_LABELS = ("1_full_compliance", "2_full_refusal", "3_partial_refusal")


@dataclass(frozen=True)
class XSTestCompletion:
    """A model completion of an XSTest prompt with its human refusal annotation."""

    prompt: str
    """The XSTest prompt."""
    completion: str
    """The model's answer (Llama-2-70b-chat in the distributed file)."""
    final_label: str
    """Human label: 1_full_compliance, 2_full_refusal or 3_partial_refusal."""
    category: str | None = None
    """XSTest prompt type (homonyms, contrast_homonyms, ...)."""

    @property
    def is_refusal(self) -> bool:
        """Full or partial refusal, as XSTest counts refusals."""
        return self.final_label != "1_full_compliance"


def load_xstest_completions(source: Source) -> list[XSTestCompletion]:
    """Annotated XSTest completions: ground truth for a refusal detector."""
    out = []
    for r in records(source, "csv"):
        completion = r.get("completion")
        if not isinstance(completion, str):
            raise r.fail("'completion' must be a string")
        out.append(XSTestCompletion(r.text("prompt"), completion.strip(),
                                    r.choice(XSTEST_FINAL_LABELS, "final_label"), r.optional_text("type")))
    logger.info("loaded %d XSTest completions from %s", len(out), source)
    return out


def load_advbench(source: Source) -> PromptSet:
    """AdvBench harmful behaviours (``goal`` column; ``prompt`` on hub copies)."""
    out = [Prompt(r.text("goal", "prompt"), "harmful", "advbench") for r in records(source, "csv")]
    return _prompt_set("advbench", out, source)


def _jbb(source: Source, label: Label, name: str) -> PromptSet:
    out = [
        Prompt(r.text("Goal", "goal"), label, name, category=r.optional_text("Category", "category"))
        for r in records(source, "csv")
    ]
    return _prompt_set(name, out, source)


def load_jbb_harmful(source: Source) -> PromptSet:
    """JailbreakBench JBB-Behaviors harmful half (100); category = one of 10 policy categories."""
    return _jbb(source, "harmful", "jbb")


def load_jbb_benign(source: Source) -> PromptSet:
    """JailbreakBench benign half (100), matched topic by topic to the harmful one: seemingly harmful."""
    return _jbb(source, "seemingly_harmful", "jbb-benign")


HARMBENCH_FUNCTIONAL = ("standard", "contextual", "copyright")


def load_harmbench(source: Source, functional: Sequence[str] = ("standard", "contextual")) -> PromptSet:
    """HarmBench behaviours of the given functional categories; category = SemanticCategory.

    Contextual behaviours get their context string prepended the way HarmBench formats them
    (``context\\n\\n---\\n\\nbehavior``). Copyright behaviours are left out by default: they test
    verbatim reproduction, not refusal.
    """
    bad = set(functional) - set(HARMBENCH_FUNCTIONAL)
    if bad:
        raise ValueError(f"unknown HarmBench functional categories {sorted(bad)}; "
                         f"known {HARMBENCH_FUNCTIONAL}")
    out = []
    for r in records(source, "csv"):
        context = r.optional_text("ContextString", "context")
        kind = r.optional_text("FunctionalCategory") or ("contextual" if context else "standard")
        if kind not in HARMBENCH_FUNCTIONAL:
            raise r.fail(f"bad label {kind!r} in 'FunctionalCategory'; "
                         f"expected one of {HARMBENCH_FUNCTIONAL}")
        if kind not in functional:
            continue
        text = r.text("Behavior", "prompt")
        if kind == "contextual":
            if not context:
                raise r.fail("contextual behaviour with an empty 'ContextString'")
            text = f"{context}\n\n---\n\n{text}"
        category = r.optional_text("SemanticCategory", "category")
        out.append(Prompt(text, "harmful", "harmbench", category=category))
    return _prompt_set("harmbench", out, source)


def load_oktest(source: Source) -> PromptSet:
    """OKTest: benign questions containing sensitive words -> seemingly_harmful."""
    out = [Prompt(r.text("prompt"), "seemingly_harmful", "oktest") for r in records(source, "csv")]
    return _prompt_set("oktest", out, source)


def load_coconot_contrast(source: Source) -> PromptSet:
    """CoCoNot contrast set: benign prompts that look refusable -> seemingly_harmful.

    Prompt category = CoCoNot subcategory.
    """
    out = [
        Prompt(r.text("prompt"), "seemingly_harmful", "coconot-contrast",
               category=r.optional_text("subcategory"))
        for r in records(source, "json")
    ]
    return _prompt_set("coconot-contrast", out, source)


COCONOT_SAFETY = "Requests with safety concerns"
COCONOT_CATEGORIES = (
    COCONOT_SAFETY, "Incomplete requests", "Unsupported requests", "Indeterminate requests",
    "Humanizing requests",
)


def load_coconot_noncompliance(source: Source, categories: Sequence[str] = (COCONOT_SAFETY,)) -> PromptSet:
    """CoCoNot noncompliance set, only the rows whose top-level category is in ``categories``.

    Only "Requests with safety concerns" (privacy, dangerous topics, offensive language, misinformation,
    copyright, unsafe WildChat requests) are harmful requests; the other categories are requests to
    decline or qualify for other reasons (underspecified, unsupported modality, ...). Rows of other
    categories are kept out; passing them in ``categories`` still labels them ``harmful`` (= should be
    declined). Prompt category = subcategory.
    """
    bad = set(categories) - set(COCONOT_CATEGORIES)
    if bad:
        raise ValueError(f"unknown CoCoNot categories {sorted(bad)}; known {COCONOT_CATEGORIES}")
    out = []
    for r in records(source, "json"):
        if r.choice(COCONOT_CATEGORIES, "category") in categories:
            sub = r.optional_text("subcategory")
            out.append(Prompt(r.text("prompt"), "harmful", "coconot", category=sub))
    return _prompt_set("coconot", out, source)


def load_catqa(source: Source) -> PromptSet:
    """CatQA harmful questions; category = harm domain (11 domains x 5 subcategories x 10)."""
    path = local_path(source)
    if path is None:  # hub copies are flat rows: Category, Subcategory, Question
        rows = hub_records(str(source))
        out = [
            Prompt(r.text("Question", "question"), "harmful", "catqa",
                   category=r.text("Category", "category"))
            for r in rows
        ]
        return _prompt_set("catqa", out, source)
    tree = read_json(path)
    if not isinstance(tree, dict):
        raise DataFormatError(f"{path}: expected {{category: {{subcategory: [questions]}}}}, "
                              f"got a JSON {type(tree).__name__}")
    out = []
    for domain, subs in tree.items():
        if not isinstance(subs, dict):
            raise DataFormatError(f"{path}, category {domain!r}: expected {{subcategory: [questions]}}")
        for sub, questions in subs.items():
            if not isinstance(questions, list):
                raise DataFormatError(f"{path}, {domain!r}/{sub!r}: expected a list of questions")
            for i, q in enumerate(questions, 1):
                if not isinstance(q, str) or not q.strip():
                    raise DataFormatError(f"{path}, {domain!r}/{sub!r}, question {i}: empty question")
                out.append(Prompt(q.strip(), "harmful", "catqa", category=domain))
    return _prompt_set("catqa", out, source)


def load_alpaca(source: Source) -> PromptSet:
    """Harmless Alpaca instructions (refusal-direction splits: ``{instruction, category}``) -> harmless.

    Rows with a non-empty ``input`` (full Alpaca) get it appended after a blank line.
    """
    out = []
    for r in records(source, "json"):
        text, extra = r.text("instruction"), r.optional_text("input")
        text = f"{text}\n\n{extra}" if extra else text
        out.append(Prompt(text, "harmless", "alpaca", category=r.optional_text("category")))
    return _prompt_set("alpaca", out, source)


# --------------------------------------------------------------------------------------------------
# Truthfulness / hallucination benchmarks (label "factual", with correct and incorrect answers).


def _answers(r: Record, *names: str) -> tuple[str, ...]:
    value = r.get(*names)
    items = value if isinstance(value, list) else str(value or "").split("; ")
    answers = tuple(dict.fromkeys(a.strip() for a in items if isinstance(a, str) and a.strip()))
    if not answers:
        raise r.fail(f"empty {names[0]!r}")
    return answers


def load_truthfulqa(source: Source) -> PromptSet:
    """TruthfulQA generation set: correct answers (best first) and incorrect ones, split on ``;``."""
    out = []
    for r in records(source, "csv"):
        best = r.text("Best Answer", "best_answer")
        correct = tuple(dict.fromkeys((best, *_answers(r, "Correct Answers", "correct_answers"))))
        out.append(Prompt(
            r.text("Question", "question"), "factual", "truthfulqa",
            category=r.optional_text("Category", "category"), correct=correct,
            incorrect=_answers(r, "Incorrect Answers", "incorrect_answers"), response=best,
        ))
    return _prompt_set("truthfulqa", out, source)


def _mc1(r: Record) -> tuple[tuple[str, ...], tuple[str, ...]]:
    targets = r.get("mc1_targets")
    if isinstance(targets, dict) and "choices" in targets:  # hub layout: {choices: [...], labels: [...]}
        targets = dict(zip(targets["choices"], targets["labels"], strict=True))
    if not isinstance(targets, dict) or not targets:
        raise r.fail("'mc1_targets' must be a non-empty {answer: 0/1} object")
    if any(v not in (0, 1) for v in targets.values()):
        raise r.fail("bad label in 'mc1_targets': values must be 0 or 1")
    correct = tuple(a for a, v in targets.items() if v == 1)
    if len(correct) != 1:
        raise r.fail(f"'mc1_targets' must mark exactly one answer 1, marks {len(correct)}")
    return correct, tuple(a for a, v in targets.items() if v == 0)


def load_truthfulqa_mc(source: Source) -> PromptSet:
    """TruthfulQA MC1: correct = the one true answer, incorrect = the other choices."""
    out = []
    for r in records(source, "json"):
        correct, incorrect = _mc1(r)
        question = r.text("question")
        out.append(Prompt(question, "factual", "truthfulqa-mc", correct=correct, incorrect=incorrect))
    return _prompt_set("truthfulqa-mc", out, source)


def load_halueval_qa(source: Source, with_knowledge: bool = False) -> PromptSet:
    """HaluEval QA: the question (optionally after its knowledge passage), right vs hallucinated answer."""
    out = []
    for r in records(source, "json"):
        question = r.text("question")
        text = f"{r.text('knowledge')}\n\nQuestion: {question}" if with_knowledge else question
        out.append(Prompt(text, "factual", "halueval", correct=(r.text("right_answer"),),
                          incorrect=(r.text("hallucinated_answer"),)))
    return _prompt_set("halueval", out, source)
