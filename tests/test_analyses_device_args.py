"""Every analysis script that loads a model takes ``--device`` and ``--dtype``; ``interp report`` passes them on.

Only the argument parsers run here (no model is loaded): each script exposes ``parse(argv)``.
"""

import argparse
from pathlib import Path

import pytest
from helpers import ANALYSES
from helpers import load_analysis as analysis

from interp.cli.report import stage_argv
from interp.reporting.profiles import PROFILES, STAGES

PENDING: set[str] = set()  # scripts not yet given --device/--dtype
# arguments a script requires before it parses at all
REQUIRED = {"trace_shift": ["--run", "RUN", "--policy", "POLICY.toml"]}
MODEL_SCRIPTS = sorted(p.stem for p in ANALYSES.glob("*.py")
                       if "load_model(" in p.read_text() and p.stem not in PENDING)


def load_model_calls(source: str) -> list[str]:
    """The argument text of every ``load_model(...)`` call in ``source``."""
    calls = []
    for chunk in source.split("load_model(")[1:]:
        depth, end = 1, 0
        while depth:
            depth += {"(": 1, ")": -1}.get(chunk[end], 0)
            end += 1
        calls.append(chunk[:end - 1])
    return calls


def test_the_model_loading_scripts_are_found():
    assert {"align_table", "foundation_eval", "heads_tradeoff", "refusal_direction_layers",
            "refusal_preserving_ft", "sae_refusal_subspace"} <= set(MODEL_SCRIPTS)


@pytest.mark.parametrize("name", MODEL_SCRIPTS)
def test_script_parses_device_and_dtype(name):
    module = analysis(name)
    required = REQUIRED.get(name, [])
    args = module.parse([*required, "--device", "cpu", "--dtype", "bfloat16"])
    assert (args.device, args.dtype) == ("cpu", "bfloat16")
    default = module.parse(required)
    assert (default.device, default.dtype) == (None, "float32")
    with pytest.raises(SystemExit):
        module.parse([*required, "--dtype", "int8"])
    # every load_model call in the script is given the device and dtype
    source = (ANALYSES / f"{name}.py").read_text()
    calls = load_model_calls(source)
    assert calls and all("device=" in c and "dtype=" in c for c in calls), (name, calls)


def test_heads_tradeoff_config_records_device_and_dtype():
    module = analysis("heads_tradeoff")
    cfg = module.Config(device="cpu", dtype="bfloat16")
    from dataclasses import asdict

    assert asdict(cfg)["dtype"] == "bfloat16" and asdict(cfg)["device"] == "cpu"


def report_args(*argv: str) -> argparse.Namespace:
    from interp.cli import build_parser

    return build_parser().parse_args(["report", *argv])


def test_report_passes_device_and_dtype_to_every_stage():
    for profile in PROFILES.values():
        args = report_args("--profile", profile.name, "--device", "cuda", "--dtype", "bfloat16", "--data-dir", "DATA")
        for stage in profile.stages:
            argv = stage_argv(args, stage)
            if not STAGES[stage].loads_models:  # reads a finished run only
                assert "--device" not in argv and "--dtype" not in argv
                continue
            assert argv[argv.index("--device") + 1] == "cuda"
            assert argv[argv.index("--dtype") + 1] == "bfloat16"
            if STAGES[stage].runner == "script":
                assert argv[:2] == ["--out", str(Path(profile.out) / stage)]
        assert "--data-dir" in stage_argv(args, "heads") and "--data-dir" not in stage_argv(args, "sae")


def test_report_without_a_device_leaves_the_stages_default():
    args = report_args()
    for stage in STAGES:
        argv = stage_argv(args, stage)
        assert "--device" not in argv
        assert ("--dtype" in argv) == STAGES[stage].loads_models
        if STAGES[stage].loads_models:
            assert argv[argv.index("--dtype") + 1] == "float32"


@pytest.mark.parametrize("profile", list(PROFILES))
@pytest.mark.parametrize("stage", list(STAGES))
def test_every_report_stage_accepts_the_argv(stage, profile):
    """Every stage parses its argv at every profile's sizes (a renamed flag fails here, not an hour in)."""
    args = report_args("--profile", profile, "--device", "cpu", "--dtype", "float16", "--data-dir", "D")
    spec = STAGES[stage]
    if spec.runner == "interp":
        from interp.cli import build_parser

        parsed = build_parser().parse_args([spec.target, *stage_argv(args, stage)])
    else:
        parsed = analysis(Path(spec.target).stem).parse(stage_argv(args, stage))
    if spec.loads_models:
        assert (parsed.device, parsed.dtype) == ("cpu", "float16")
    else:
        assert not hasattr(parsed, "device")
