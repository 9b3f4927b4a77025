"""``interp report``: run every analysis stage at a profile's sizes, then write one offline HTML report.

Each stage is one analysis script in ``analyses/`` (run from the repository root) or one ``interp``
subcommand, so the report and the paper figures are the same code. ``--profile quick`` runs every stage
at small size (its own checkpoints under runs/report/quick); ``--profile full`` at the sizes behind the
README's numbers. Both resume: a stage whose folder holds a stamp with the same command is skipped.
The HTML report (OUT/report.html) inlines every figure and table under OUT with its provenance.
"""

from __future__ import annotations

import argparse
import logging
import re
import runpy
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from interp.cli.common import add_device_args
from interp.models import DEFAULT_MODEL
from interp.reporting.profiles import PROFILES, STAGES, Profile

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="run the analyses (quick or full sizes) and write one HTML report",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter, description=__doc__)
    p.add_argument("--profile", choices=list(PROFILES), default="quick",
                   help="; ".join(f"{p.name}: {p.description}" for p in PROFILES.values()))
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="base model of every stage (another than the default gets its own runs/report/ folder)")
    p.add_argument("--data-dir", default=None, help="benchmark data directory (advbench/, xstest/, ...)")
    p.add_argument("--out", default=None, help="figure root; each stage writes OUT/STAGE/ (default: the profile's)")
    p.add_argument("--runs", default=None, help="root of checkpoints and caches (default: the profile's)")
    p.add_argument("--stages", nargs="+", choices=list(STAGES), default=None,
                   help="run only these (default: the profile's stages)")
    p.add_argument("--stage-args", nargs=2, action="append", default=[], metavar=("STAGE", "ARGS"),
                   help="extra arguments for one stage, after the profile's (repeatable), e.g. "
                        "--stage-args sae '--layer 1' for a 2-layer model; they are part of its stamped command")
    p.add_argument("--force", action="store_true", help="rerun stages even when their stamp matches")
    p.add_argument("--html", default=None, help="path of the HTML report (default: OUT/report.html)")
    p.add_argument("--html-only", action="store_true", help="only rebuild the HTML report from OUT")
    p.add_argument("--analyses-dir", default="analyses")
    add_device_args(p)  # passed on to every stage (each loads its models there, in that dtype)
    p.set_defaults(func=run)


def _slug(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model.strip("/")).strip("_")[-60:] or "model"


def roots(args) -> tuple[str, str]:
    """Figure root and runs root: the options when given, else the profile's; a non-default model gets
    a folder of its own so its checkpoints are never mistaken for the default model's."""
    profile = PROFILES[args.profile]
    own = None if args.model == DEFAULT_MODEL else f"runs/report/{profile.name}-{_slug(args.model)}"
    runs = args.runs or (f"{own}/runs" if own else profile.runs)
    out = args.out or (f"{own}/figures" if own else profile.out)
    return out, runs


_PLURAL = {"listed": "listed only"}
"""Item kinds whose plural is not KIND + 's' in the summary line."""


def stage_argv(args, stage: str) -> list[str]:
    """The arguments ``interp report`` runs ``stage`` with: its own (output folder first), the profile's
    sizes, the data directory (stages that read benchmarks) and ``--device`` / ``--dtype``."""
    profile: Profile = PROFILES[args.profile]
    out, runs = roots(args)
    extra = [a for name, text in getattr(args, "stage_args", []) if name == stage for a in shlex.split(text)]
    return STAGES[stage].argv(out=str(Path(out) / stage), figures=out, runs=runs, model=args.model,
                              sizes=(*profile.sizes.get(stage, ()), *extra), data_dir=args.data_dir,
                              device=getattr(args, "device", None), dtype=getattr(args, "dtype", None))


def run_stage(script: Path, argv: list[str]) -> int:
    saved = sys.argv
    sys.argv = [str(script), *argv]
    try:
        namespace = runpy.run_path(str(script), run_name="interp_report")
        return int(namespace["main"](argv) or 0)
    finally:
        sys.argv = saved


def _run_one(args, stage: str, argv: list[str]) -> int:
    spec = STAGES[stage]
    if spec.runner == "interp":
        from interp.cli import main

        return main([spec.target, *argv])
    return run_stage(Path(args.analyses_dir) / spec.target, argv)


def run(args) -> int:
    from interp.errors import InterpError
    from interp.reporting.html import write_report
    from interp.reporting.stamps import StageStamp, is_done, read_stamp, write_stamp

    profile = PROFILES[args.profile]
    out, _ = roots(args)
    stages = args.stages or list(profile.stages)
    unknown = sorted({name for name, _ in args.stage_args} - set(STAGES))
    if unknown:
        raise InterpError(f"--stage-args names unknown stage(s) {unknown}; stages are {list(STAGES)}")
    if not args.html_only and not Path(args.analyses_dir).is_dir():
        raise InterpError(f"analyses directory {args.analyses_dir} not found; run `interp report` from the "
                          "repository root")
    failed = []
    for stage in [] if args.html_only else stages:
        argv = stage_argv(args, stage)
        command = STAGES[stage].command(argv)
        folder = Path(out) / stage
        if not args.force and is_done(folder, command):
            print(f"== stage {stage}: done earlier with the same command ({read_stamp(folder).seconds:.0f} s); "
                  "skipped (--force reruns it)", flush=True)
            continue
        print(f"== report stage {stage}: {' '.join(command)}", flush=True)
        start = time.time()
        try:
            rc = _run_one(args, stage, argv)
        except Exception:  # one broken stage must not cost the others (or the HTML report)
            log.exception("stage %s failed", stage)
            rc = 1
        seconds = time.time() - start
        print(f"== stage {stage} finished in {seconds:.0f} s (exit {rc})", flush=True)
        if rc:
            failed.append(stage)
            continue
        write_stamp(folder, StageStamp(stage, profile.name, command, seconds,
                                       datetime.now(UTC).isoformat(timespec="seconds")))
    times = {s: read_stamp(Path(out) / s) for s in STAGES if (Path(out) / s).is_dir()}
    header = {"profile": f"{profile.name}: {profile.description}", "model": args.model, "figure root": out}
    header |= {f"stage {s}": f"{t.seconds:.0f} s, {' '.join(t.command)}" for s, t in times.items() if t}
    result = write_report(out, args.html, title=f"interp report ({profile.name})", header=header)
    kinds = ", ".join(f"{n} {_PLURAL.get(kind, kind + 's')}" for kind, n in sorted(result.counts.items()))
    print(f"wrote {result.path}: {result.n_plots} plots, {kinds} ({result.bytes / 1e6:.1f} MB)")
    if failed:
        print(f"failed stages: {failed}", file=sys.stderr)
    return 1 if failed else 0
