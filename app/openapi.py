"""The OpenAPI document, with every error response declared as problem+json."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.errors import PROBLEM_MEDIA_TYPE
from app.schemas.common import Problem

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
OPENAI_ERROR_REF = "#/components/schemas/OpenAIError"


def install_openapi(app: FastAPI) -> None:
    """Replace the app's OpenAPI generator with one that documents errors as problem+json."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _problem_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _problem_openapi(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if any(_openai_error(r) for r in operation.get("responses", {}).values()):
                # Those routes answer invalid input with OpenAI's 400, never FastAPI's 422.
                operation["responses"].pop("422", None)
            for status, response in operation.get("responses", {}).items():
                if status[0] in "45" and not _openai_error(response):
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def _openai_error(response: dict[str, Any]) -> bool:
    # The OpenAI-compatible routes answer errors in OpenAI's shape, which their clients parse.
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("$ref") == OPENAI_ERROR_REF
