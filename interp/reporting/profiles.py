"""The stages of ``interp report`` and the profiles that size them (``quick`` and ``full``), as data.

A stage is one analysis script (or one ``interp`` subcommand) with its arguments as templates: ``{out}``
is the stage's figure folder, ``{figures}`` the figure root, ``{runs}`` the root of checkpoints and caches,
``{model}`` the base model. A profile says which stages run and appends each one's size arguments, so a
stage's size is a parameter of the profile and never a second code path in the script.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal


@dataclass(frozen=True)
class Stage:
    """One step of the report."""

    runner: Literal["script", "interp"]
    """``script``: ``analyses/TARGET`` (run in this process); ``interp``: the ``interp TARGET`` subcommand."""
    target: str
    """Script file name under ``analyses/`` or subcommand name."""
    args: tuple[str, ...]
    """Arguments as templates over ``{out}``, ``{figures}``, ``{runs}`` and ``{model}``."""
    reads_data: bool
    """Whether it takes ``--data-dir`` (the benchmark data folder)."""
    loads_models: bool = True
    """Whether it takes ``--device`` / ``--dtype`` (False for scripts that only read finished runs)."""

    def argv(self, *, out: str, figures: str, runs: str, model: str, sizes: tuple[str, ...] = (),
             data_dir: str | None = None, device: str | None = None, dtype: str | None = None) -> list[str]:
        """The stage's arguments: its own (filled in), the profile's sizes, data directory, device, dtype."""
        argv = [a.format(out=out, figures=figures, runs=runs, model=model) for a in self.args] + list(sizes)
        if data_dir and self.reads_data:
            argv += ["--data-dir", str(data_dir)]
        if device and self.loads_models:
            argv += ["--device", str(device)]
        if dtype and self.loads_models:
            argv += ["--dtype", dtype]
        return argv

    def command(self, argv: list[str]) -> tuple[str, ...]:
        """The command line a person would type to run this stage by hand (recorded as provenance)."""
        head = ("python", f"analyses/{self.target}") if self.runner == "script" else ("interp", self.target)
        return (*head, *argv)


_STL = "{runs}/align/stl/model"
_LOOSEN = "analyses/policies/loosen_educational.toml"
_TRACE_PROMPTS = ("--prompts", "builtin:seemingly_harmful", "--prompts", "builtin:harmless", "--prompts", "xstest")

STAGES: Mapping[str, Stage] = MappingProxyType({
    "foundation": Stage("script", "foundation_eval.py", ("--out", "{out}", "--model", "{model}"), True),
    # quick only: a small STL checkpoint for the stages below (the full table trains its own recipes)
    "stl": Stage("interp", "align", ("--recipe", "stl", "--model", "{model}", "--out", "{runs}/align/stl"), True),
    # DCR (issue 11): the contrastive stage alone, diagnosed on held-out prompts over a (layer, lr) sweep,
    # then the full recipe (contrastive stage + STL) for the alignment table
    "dcr_diagnostic": Stage("script", "dcr_diagnostic.py", ("--out", "{out}", "--model", "{model}",
                                                            "--runs", "{runs}/dcr_diagnostic"), True),
    "dcr": Stage("interp", "align", ("--recipe", "dcr", "--model", "{model}", "--out", "{runs}/align/dcr"), True),
    "align": Stage("script", "align_table.py", ("--out", "{out}", "--base", "{model}", "--runs", "{runs}/align"),
                   True),
    "heads": Stage("script", "heads_tradeoff.py", ("--out", "{out}", "--model", _STL), True),
    "sae": Stage("script", "sae_refusal_subspace.py", ("--out", "{out}", "--model", _STL, "--work", "{runs}/sae"),
                 False),
    "finetune": Stage("script", "refusal_preserving_ft.py",
                      ("--out", "{out}", "--model", _STL, "--subspaces", "{figures}/sae/subspaces",
                       "--runs", "{runs}/finetune"), True),
    # TRACE (issue 14): re-align the STL model to the loosened policy, then agreement before/after
    "realign": Stage("interp", "realign", ("--model", _STL, "--answer-model", "{model}", "--policy", _LOOSEN,
                                           "--gold-scope", "conflicts", "--gold-fraction", "0.3",
                                           "--out", "{runs}/realign/loosen/trace"), True),
    "trace": Stage("script", "trace_shift.py", ("--out", "{out}", "--base", _STL, "--policy", _LOOSEN,
                                                "--run", "trace={runs}/realign/loosen/trace",
                                                "--cache", "{runs}/trace_shift"), True),
    # SafeMoE (issue 13): corpora -> experts -> router -> losses -> eval (harmful text stays under runs/),
    # then the comparison table, zero-shot routing and the heatmaps (numbers only) into the figures
    "safemoe": Stage("interp", "safemoe", ("--model", "{model}", "--stl-model", _STL, "--out", "{runs}/safemoe"),
                     True),
    "safemoe_eval": Stage("script", "safemoe_eval.py", ("--out", "{out}", "--run", "{runs}/safemoe"), True,
                          loads_models=False),
})
"""Every stage, in the order they run (later ones read earlier ones' checkpoints and exports)."""


@dataclass(frozen=True)
class Profile:
    """Which stages run, at which sizes, and where their outputs go."""

    name: str
    """``quick`` or ``full``."""
    description: str
    """One line for ``--help`` and the report's header."""
    stages: tuple[str, ...]
    """Stages in running order (names of :data:`STAGES`)."""
    sizes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per stage, arguments appended after its own (prompt counts, training rows, ...); absent: script defaults."""
    runs: str = "runs"
    """Root of checkpoints, activation stores and cached evaluations."""
    out: str = "figures"
    """Figure root (each stage writes OUT/STAGE/; the HTML report goes to OUT/report.html)."""

    def __post_init__(self) -> None:
        unknown = [s for s in (*self.stages, *self.sizes) if s not in STAGES]
        if unknown:
            raise ValueError(f"profile {self.name!r}: unknown stage(s) {unknown}; stages are {list(STAGES)}")
        order = list(STAGES)
        if list(self.stages) != sorted(self.stages, key=order.index):
            raise ValueError(f"profile {self.name!r}: stages {self.stages} are not in running order {order}")


_QUICK_MIXTURE = ("--n-refusal", "24", "--n-general", "24", "--distill-tokens", "24")
"""The quick STL mixture, shared by the STL and DCR checkpoints (so DCR reuses STL's distilled answers)."""

QUICK = Profile(
    name="quick",
    description="every stage at small size from an empty cache (under 30 min on 2 CPU cores; see README)",
    stages=("foundation", "stl", "dcr_diagnostic", "dcr", "align", "heads", "sae", "finetune", "realign", "trace",
            "safemoe", "safemoe_eval"),
    # Generation dominates on CPU (the long HarmBench / jailbreak prompts' prefill): evaluation sets are a
    # prompt or two per source. These sizes check that everything runs and give rough numbers, nothing more.
    sizes=MappingProxyType({
        "foundation": ("--per-class", "4", "--max-new-tokens", "12"),
        "stl": _QUICK_MIXTURE,
        "dcr_diagnostic": ("--layers", "12", "--lrs", "2e-5", "--steps", "2", "--every", "2", "--per-class", "6",
                           "--batch-per-class", "4", "--kernel-per-class", "0"),
        "dcr": (*_QUICK_MIXTURE, "--dcr-steps", "2", "--dcr-per-class", "4", "--track", "none"),
        "align": ("--recipes", "stl", "dcr", "--compare-to", "stl", "--no-train", "--per-source", "1",
                  "--harmless-per-source", "2", "--kernel-per-class", "0", "--max-new-tokens", "12"),
        "heads": ("--per-class", "4", "--eval-per-class", "3", "--max-new-tokens", "12", "--alphas", "0", "10",
                  "--scales", "0", "2", "--candidate-k", "5", "--permutations", "200", "--direction-layer-stride", "2"),
        "sae": ("--d-sae", "256", "--rows", "10000", "--corpus-prompts", "32", "--per-class", "6"),
        "finetune": ("--n-train", "16", "--per-source", "1", "--max-new-tokens", "12",
                     "--variants", "unconstrained", "constrained"),
        "realign": ("--per-class", "8", "--answer-tokens", "16", "--max-retain", "8", "--steps", "4",
                    "--batch-size", "4"),
        "trace": ("--per-class", "4", "--advbench", "4", "--mc", "4", "--max-new-tokens", "12"),
        "safemoe": ("--domains", "cyber", "fraud", "violence", "--zero-shot-holdout", "violence",
                    "--train-per-domain", "4", "--heldout-per-domain", "2", "--harmless-train", "4",
                    "--eval-per-source", "1", "--corpus-tokens", "24", "--eval-tokens", "12", "--expert-epochs", "1",
                    "--router-steps", "2", "--batch-size", "8",
                    "--variants", "base", "safe_data_lora", "router:main", "router:zeroshot"),  # + stl
    }),
    runs="runs/report/quick",
    out="runs/report/quick/figures",
)

FULL = Profile(
    name="full",
    description="the sizes behind the README's numbers (hours on 2 CPU cores; trains every missing recipe)",
    stages=("foundation", "dcr_diagnostic", "align", "heads", "sae", "finetune", "realign", "trace", "safemoe",
            "safemoe_eval"),
    sizes=MappingProxyType({
        # the sweep: layer x lr of the contrastive stage alone, with the paper code's kernel
        "dcr_diagnostic": ("--layers", "6", "12", "18", "24", "--lrs", "5e-6", "2e-5", "1e-4"),
        "align": ("--harmless-per-source", "250"),
        # the settings of the README's TRACE numbers
        "realign": (*_TRACE_PROMPTS, "--labels", "seemingly_harmful,harmless", "--max-retain", "60",
                    "--batch-size", "8", "--epochs", "3", "--answer-tokens", "48"),
        "trace": (*_TRACE_PROMPTS, "--labels", "seemingly_harmful,harmless"),
    }),
)

PROFILES: Mapping[str, Profile] = MappingProxyType({p.name: p for p in (QUICK, FULL)})
