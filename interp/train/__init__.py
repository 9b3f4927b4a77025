"""Fine-tuning recipes: supervised fine-tuning with exact resume, STL / STL-aug / DCR safety alignment.

Designed to host later recipes (LoRA experts via peft for SafeMoE, preference optimisation for TRACE):
a recipe builds examples or a data stream, and the trainer owns checkpointing, callbacks and constraints.
"""

from interp.train.align import RECIPES, AlignConfig, AlignData, align
from interp.train.contrastive import ContrastiveConfig, contrastive_refine
from interp.train.examples import SFTExample
from interp.train.lora import LoRAConfig
from interp.train.sft import SFTConfig, TrainResult, train_sft

__all__ = [
    "RECIPES", "AlignConfig", "AlignData", "ContrastiveConfig", "LoRAConfig", "SFTConfig", "SFTExample", "TrainResult",
    "align", "contrastive_refine", "train_sft",
]
