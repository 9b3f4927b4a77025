"""Empirical neural tangent kernels of the first-token logits: exact (tiny models) and sketched."""

from interp.ntk.callback import KernelCallback, KernelRecord
from interp.ntk.config import NTKConfig
from interp.ntk.exact import exact_frobenius, jacobian
from interp.ntk.params import ParamSelection, select_parameters
from interp.ntk.similarity import (
    ClassStats,
    KernelMatrix,
    PairStat,
    kernel_frobenius,
    kernel_similarity,
    normalise,
    symmetric,
)
from interp.ntk.sketch import CountSketch, NTKSketcher, PromptSketch, frobenius_from_sketches
from interp.ntk.topk import topk_frobenius, topk_gram

__all__ = [
    "ClassStats", "CountSketch", "KernelCallback", "KernelMatrix", "KernelRecord", "NTKConfig", "NTKSketcher",
    "PairStat", "ParamSelection", "PromptSketch", "exact_frobenius", "frobenius_from_sketches", "jacobian",
    "kernel_frobenius", "kernel_similarity", "normalise", "select_parameters", "symmetric", "topk_frobenius",
    "topk_gram",
]
