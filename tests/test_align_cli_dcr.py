"""``interp align`` passes the contrastive stage's settings to the DCR recipe's config (no training)."""

from __future__ import annotations

from dataclasses import fields

from interp.cli import build_parser
from interp.cli.align import config_from
from interp.train import ContrastiveConfig


def _config(*flags: str):
    return config_from(build_parser().parse_args(["align", "--recipe", "dcr", *flags]))


def test_dcr_flags_reach_the_contrastive_config():
    cfg = _config("--dcr-layer", "6", "--dcr-steps", "7", "--dcr-lr", "3e-5", "--dcr-margin", "0.4",
                  "--dcr-gamma", "32", "--dcr-pooling", "last", "--dcr-per-class", "4", "--seed", "3")
    assert cfg.recipe == "dcr"
    assert cfg.contrastive == ContrastiveConfig(layer=6, steps=7, lr=3e-5, margin=0.4, gamma=32.0, pooling="last",
                                                per_class=4, seed=3)


def test_dcr_flag_defaults_are_the_dataclass_defaults():
    con = _config().contrastive
    for f in fields(ContrastiveConfig):
        assert getattr(con, f.name) == getattr(ContrastiveConfig(), f.name), f.name
