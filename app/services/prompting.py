"""The prompt a job sends: the caller's brief, expanded by the optimizer for the target model
unless the caller turned it off. The job's request records the brief, the plan (slots given
and filled, use case, mode) and the final prompt and negative prompt."""

from collections.abc import Sequence
from typing import Any

from app.config import Settings
from app.errors import InvalidInput
from app.imaging.geometry import parse_aspect_ratio
from app.prompts import KEEP_RULES, OptimizedPrompt, optimize_prompt, optimize_prompt_llm
from app.providers.base import ModelSpec
from app.schemas.prompts import OptimizedPromptView, OptimizePromptRequest

# What a compared model's own rendering of the brief consists of.
MODEL_PROMPT_FIELDS = ("prompt", "negative_prompt", "prompt_plan", "prompt_options")


def plan_prompt(
    brief: str,
    spec: ModelSpec,
    *,
    optimize: str,
    style: str | None,
    aspect_ratio: tuple[int, int] | None,
    keep: Sequence[str],
    references: Sequence[str],
    negative_prompt: str | None,
    is_edit: bool,
) -> dict[str, Any]:
    """The prompt fields of a job's request; `references` are the roles of an edit's reference
    images. `llm` is planned by the rules here and asked of the LLM when the job runs (see
    `replan_with_llm`), so a slow LLM never holds a request."""
    options = {
        "style": style,
        "aspect_ratio": list(aspect_ratio) if aspect_ratio else None,
        "keep": list(keep),
        "references": list(references),
        "negative_prompt": negative_prompt,
        "is_edit": is_edit,
        "rendering": spec.capabilities.prompt_style,
        "max_chars": spec.capabilities.max_prompt_chars,
    }
    # A blank brief (an edit that only inpaints its mask) has nothing to optimize.
    optimize = optimize if brief.strip() else "off"
    fields: dict[str, Any] = {"brief": brief, "optimize": optimize, "prompt_options": options}
    if optimize == "off":
        return fields | {
            "prompt": _with_keep(brief, keep),
            "negative_prompt": negative_prompt,
            "prompt_plan": None,
        }
    try:
        plan = optimize_prompt(
            brief,
            rendering=options["rendering"],
            max_chars=options["max_chars"],
            aspect_ratio=aspect_ratio,
            style=style,
            keep=keep,
            references=references,
            negative_prompt=negative_prompt,
            is_edit=is_edit,
        )
    except ValueError as exc:
        raise InvalidInput(f"{exc}.", field=_field_of(str(exc))) from exc
    return fields | _plan_fields(plan)


def plan_prompts(brief: str, specs: Sequence[ModelSpec], **options: Any) -> dict[str, Any]:
    """The prompt fields of a job's request for its first model (as `plan_prompt` gives them)
    and, for a job comparing several models, `model_prompts`: each model's own prompt,
    negative prompt, plan and options, rendered for that model."""
    fields = plan_prompt(brief, specs[0], **options)
    if len(specs) == 1:
        return fields
    own = {}
    for spec in specs:
        planned = plan_prompt(brief, spec, **options)
        own[spec.id] = {name: planned[name] for name in MODEL_PROMPT_FIELDS}
    return fields | {"model_prompts": own}


def prompt_for(request: dict[str, Any], model_id: str) -> dict[str, Any]:
    """The prompt fields a job's request holds for one of its models: the model's own where the
    job compares several, else the request's."""
    return request.get("model_prompts", {}).get(model_id, request)


async def replan_with_llm(settings: Settings, request: dict[str, Any]) -> dict[str, Any]:
    """The prompt fields for `optimize: llm`: the LLM's slots, or the rules with the reason
    the LLM could not be used."""
    options = request["prompt_options"]
    aspect = tuple(options["aspect_ratio"]) if options.get("aspect_ratio") else None
    common = {
        "rendering": options["rendering"],
        "max_chars": options["max_chars"],
        "aspect_ratio": aspect,
        "style": options["style"],
        "keep": options["keep"],
        # Jobs planned before reference roles were recorded have none.
        "references": options.get("references", []),
        "negative_prompt": options["negative_prompt"],
        "is_edit": options["is_edit"],
    }
    if not settings.prompt_llm_base_url:
        plan = optimize_prompt(request["brief"], **common)
        plan.fallback_reason = "No LLM is configured (DARKROOM_PROMPT_LLM_BASE_URL)."
        return _plan_fields(plan)
    api_key = settings.prompt_llm_api_key
    plan = await optimize_prompt_llm(
        request["brief"],
        base_url=settings.prompt_llm_base_url,
        model=settings.prompt_llm_model,
        api_key=api_key.get_secret_value() if api_key else None,
        timeout_seconds=settings.prompt_llm_timeout_seconds,
        **common,
    )
    return _plan_fields(plan)


def _field_of(message: str) -> str:
    """The request field a ValueError from the optimizer is about."""
    if "preset" in message:
        return "style"
    return "keep" if "keep" in message else "prompt"


def _plan_fields(plan: OptimizedPrompt) -> dict[str, Any]:
    return {
        "prompt": plan.prompt,
        "negative_prompt": plan.negative_prompt,
        "prompt_plan": {
            "use_case": plan.use_case,
            "given": plan.given,
            "filled": plan.filled,
            "slots": plan.slots.model_dump(mode="json"),
            "rendering": plan.rendering,
            "mode": plan.mode,
            "fallback_reason": plan.fallback_reason,
        },
    }


def _with_keep(brief: str, keep: Sequence[str]) -> str:
    """The brief as written, followed by the keep instructions (edits must still say them)."""
    sentences = [KEEP_RULES[item].sentence + "." for item in keep if item in KEEP_RULES]
    return " ".join(part for part in (brief.strip(), *sentences) if part)


async def optimize(
    settings: Settings, spec: ModelSpec, body: OptimizePromptRequest
) -> OptimizedPromptView:
    """POST /v1/prompts/optimize: the plan a job for `spec` would send."""
    aspect = parse_aspect_ratio(body.aspect_ratio) if body.aspect_ratio else None
    fields = plan_prompt(
        body.prompt,
        spec,
        optimize="auto",
        style=body.style,
        aspect_ratio=aspect,
        keep=body.keep,
        references=(),
        negative_prompt=None,
        is_edit=bool(body.keep),
    )
    if body.mode == "llm":
        fields |= await replan_with_llm(settings, fields)
    plan = fields["prompt_plan"]
    return OptimizedPromptView(
        model=spec.id,
        brief=body.prompt,
        use_case=plan["use_case"],
        slots=plan["slots"],
        given=plan["given"],
        filled=plan["filled"],
        prompt=fields["prompt"],
        negative_prompt=fields["negative_prompt"],
        rendering=plan["rendering"],
        mode=plan["mode"],
        fallback_reason=plan["fallback_reason"],
    )
