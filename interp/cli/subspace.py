"""``interp subspace export|show``: build a refusal subspace from SAE features and export it (versioned)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from interp.cli.common import add_data_args, add_model_args, add_sampling_args


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("subspace", help="export / inspect refusal subspaces")
    sub = p.add_subparsers(dest="subspace_command", required=True)
    e = sub.add_parser("export", help="refusal features' decoder directions minus hallucination features'")
    add_model_args(e)
    add_data_args(e)
    e.add_argument("--sae", required=True, help="SAE folder written by 'interp sae train'")
    e.add_argument("--attribution", required=True, help="feature_attribution.json of 'interp sae attribute'")
    e.add_argument("--n-features", type=int, default=8, help="refusal features kept (strongest first)")
    e.add_argument("--include-shared", action="store_true", help="also keep shared features")
    e.add_argument("--dom", action="store_true", help="add the difference-of-means refusal direction")
    add_sampling_args(e, 32, 0, "prompts per class for the difference of means (--dom)")
    e.add_argument("--name", default="refusal_subspace")
    e.add_argument("--out", required=True, help="folder that receives <name>_v<N>/")
    s = sub.add_parser("show", help="print an export's metadata")
    s.add_argument("path")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.subspace_command == "show":
        from interp.subspace import load_subspace

        sub = load_subspace(args.path)
        print(json.dumps(sub.to_meta(), indent=2, default=str))
        return 0
    return _export(args)


def _export(args) -> int:
    from interp.cli.common import load_data_from, load_model_from
    from interp.sae.pipeline import difference_of_means
    from interp.sae.train import load_sae
    from interp.subspace import export_subspace, subspace_from_sae

    attr = json.loads(Path(args.attribution).read_text())
    classes = ["refusal", "shared"] if args.include_shared else ["refusal"]
    ranked = sorted((r for r in attr["features"] if r["class"] in classes), key=lambda r: -r["refusal_norm"])
    keep = [r["feature"] for r in ranked[: args.n_features]]
    remove = [r["feature"] for r in attr["features"] if r["class"] == "hallucination"]
    model = load_model_from(args)
    trained = load_sae(args.sae, device="cpu")
    extra = None
    if args.dom:
        prompts = load_data_from(args)
        extra = difference_of_means(model, trained.site,
                                    prompts.by_label("harmful").sample(args.per_class, args.seed).texts,
                                    prompts.by_label("harmless").sample(args.per_class, args.seed).texts)[None]
    if not keep and extra is None:
        print("no refusal features in the attribution; nothing to export")
        return 1
    shape = model.spec.to_dict()
    sub = subspace_from_sae(trained.sae, trained.site, keep, remove, extra, shape,
                            {"model": model.name, "sae": str(args.sae), "attribution": str(args.attribution),
                             "sae_provenance": trained.provenance})
    path = export_subspace(sub, args.out, args.name)
    print(json.dumps({"path": str(path), "k": sub.k, "d": sub.d, "version": sub.version}))
    return 0
