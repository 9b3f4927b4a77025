"""SafeMoE (issue 13): LoRA experts of unsafe knowledge per harm domain, combined by a learned safety router.

Modules: :mod:`~interp.safemoe.domains` (one harm taxonomy), :mod:`~interp.safemoe.data` (HarmfulQA,
JBB artifacts, the safe-informative set), :mod:`~interp.safemoe.corpora` (the model's own answers),
:mod:`~interp.safemoe.experts` (peft adapters), :mod:`~interp.safemoe.routing` (per-sample expert
weights inside any forward or ``generate``), :mod:`~interp.safemoe.router` (the router network),
:mod:`~interp.safemoe.moe` (the assembled system and its variants), :mod:`~interp.safemoe.judges`,
:mod:`~interp.safemoe.scoring`, :mod:`~interp.safemoe.isolation` (loss matrix) and
:mod:`~interp.safemoe.stages` (the resumable pipeline behind ``interp safemoe``).
"""
