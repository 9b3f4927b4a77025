"""``interp explore``: serve the interactive head and feature explorer over a figures folder on 127.0.0.1."""

from __future__ import annotations

import argparse
import logging

from interp.cli.common import add_device_args

log = logging.getLogger(__name__)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``explore`` subcommand."""
    p = subparsers.add_parser(
        "explore", help="interactive explorer of head and SAE-feature results in the browser (local only)",
        description="Serve a local web app over the results in --figures: Overview (provenance, SAE quality, "
                    "overlap), Heads (heatmaps, per-head panel, attention, ablation), Interventions (saved "
                    "trade-offs; live ablate/steer), SAE features (scatter, feature pages) and a Prompt lab. "
                    "The model loads on the first live action.",
    )
    p.add_argument("--figures", required=True, help="figures folder written by interp heads / interp sae ...")
    p.add_argument("--model", default=None,
                   help="model for live actions (default: the one the results name, else the embedded model)")
    p.add_argument("--sae", default=None, help="SAE folder for the Prompt lab's features (default: the one the "
                                               "feature attribution names)")
    add_device_args(p)
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind (non-loopback is refused)")
    p.add_argument("--port", type=int, default=8050, help="port (0: a free one)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from interp.explore import LiveRunner, build_app, load_results
    from interp.explore.serve import make
    from interp.models import DEFAULT_MODEL, load_model

    results = load_results(args.figures)
    model = args.model or results.model_name or DEFAULT_MODEL
    sae = args.sae or (results.features.sae_path if results.features else None)

    def loader(name):
        return load_model(name, device=args.device, dtype=args.dtype)

    runner = LiveRunner(model, sae, base=results.root, loader=loader)
    served = make(build_app(results, runner), args.host, args.port)
    print(f"interp explore: {len(results.files)} results from {results.root}; live model {model} (loads on "
          f"first use)\nserving on {served.url}  (Ctrl-C to stop)", flush=True)
    try:
        served.server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0
