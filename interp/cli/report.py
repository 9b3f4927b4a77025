"""``interp report``: regenerate every figure and table, stage by stage, into ``figures/``.

Each stage is one analysis script in ``analyses/`` (run from the repository root), so the report and
the paper figures are the same code. Stages that need a safety-aligned model reuse the cached
checkpoints under ``runs/align`` and train them only when missing.
"""

from __future__ import annotations

import argparse
import logging
import runpy
import sys
import time
from pathlib import Path

from interp.cli.common import add_device_args

log = logging.getLogger(__name__)

# stage name -> (analysis script, extra arguments, whether it reads benchmark data)
STAGES: dict[str, tuple[str, list[str], bool]] = {
    "foundation": ("foundation_eval.py", [], True),
    "align": ("align_table.py", [], True),
    "heads": ("heads_tradeoff.py", ["--model", "runs/align/stl/model"], True),
    "sae": ("sae_refusal_subspace.py", ["--model", "runs/align/stl/model"], False),
    "finetune": ("refusal_preserving_ft.py", ["--model", "runs/align/stl/model",
                                              "--subspaces", "figures/sae/subspaces"], True),
}


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="run the analyses and write figures/ (numbers beside every figure)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter, description=__doc__)
    p.add_argument("--data-dir", default=None, help="benchmark data directory (advbench/, xstest/, ...)")
    p.add_argument("--out", default="figures", help="figure root; each stage writes OUT/STAGE/")
    p.add_argument("--stages", nargs="+", choices=list(STAGES), default=list(STAGES))
    p.add_argument("--analyses-dir", default="analyses")
    add_device_args(p)  # passed on to every stage (each loads its models there, in that dtype)
    p.set_defaults(func=run)


def run_stage(script: Path, argv: list[str]) -> int:
    saved = sys.argv
    sys.argv = [str(script), *argv]
    try:
        namespace = runpy.run_path(str(script), run_name="interp_report")
        return int(namespace["main"](argv) or 0)
    finally:
        sys.argv = saved


def stage_argv(args, stage: str) -> list[str]:
    """The arguments ``interp report`` runs ``stage``'s script with: its output folder, the stage's own
    arguments, the data directory (stages that read benchmarks) and ``--device`` / ``--dtype``."""
    _, extra, reads_data = STAGES[stage]
    argv = ["--out", str(Path(args.out) / stage), *extra]
    if args.data_dir and reads_data:
        argv += ["--data-dir", args.data_dir]
    if getattr(args, "device", None):
        argv += ["--device", str(args.device)]
    if getattr(args, "dtype", None):
        argv += ["--dtype", args.dtype]
    return argv


def run(args) -> int:
    from interp.errors import InterpError

    analyses = Path(args.analyses_dir)
    if not analyses.is_dir():
        raise InterpError(f"analyses directory {analyses} not found; run `interp report` from the repository root")
    failed = []
    for stage in args.stages:
        script = STAGES[stage][0]
        argv = stage_argv(args, stage)
        start = time.time()
        print(f"== report stage {stage}: analyses/{script} {' '.join(argv)}", flush=True)
        rc = run_stage(analyses / script, argv)
        print(f"== stage {stage} finished in {time.time() - start:.0f} s (exit {rc})", flush=True)
        if rc:
            failed.append(stage)
    if failed:
        print(f"failed stages: {failed}", file=sys.stderr)
    return 1 if failed else 0
