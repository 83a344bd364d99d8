"""The prompt optimizer: brief -> structured, consistent, model-aware prompt."""

from app.prompts.edits import KEEP_RULES
from app.prompts.llm import optimize_prompt_llm
from app.prompts.optimizer import OptimizedPrompt, optimize_prompt
from app.prompts.presets import STYLE_PRESETS, StylePreset
from app.prompts.slots import PromptSlots

__all__ = [
    "KEEP_RULES",
    "STYLE_PRESETS",
    "OptimizedPrompt",
    "PromptSlots",
    "StylePreset",
    "optimize_prompt",
    "optimize_prompt_llm",
]
