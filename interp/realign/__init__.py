"""TRACE: re-align a model to a changed policy by triaging preference pairs and weighting them by impact.

policy.py (rules as data) -> triage.py (INVERT / PUNISH / RETAIN) -> gold.py (disjoint gold batch) ->
plan.py (training items per variant) -> impact.py (first-order influence weights) -> hybrid.py +
objective.py (DPO/IPO, NPO, KL) -> trainer.py (exact resume). pipeline.py runs the stages in order.
"""

from interp.realign.config import VARIANTS, RealignConfig
from interp.realign.impact import ImpactScores, score_impact
from interp.realign.pipeline import RealignPlan, prepare
from interp.realign.policy import Policy, PolicyError, Rule, load_policy, policy_from_dict
from interp.realign.trainer import RealignResult, train_realign
from interp.realign.triage import Action, TriageResult, triage

__all__ = [
    "VARIANTS", "Action", "ImpactScores", "Policy", "PolicyError", "RealignConfig", "RealignPlan", "RealignResult",
    "Rule", "TriageResult", "load_policy", "policy_from_dict", "prepare", "score_impact", "train_realign", "triage",
]
