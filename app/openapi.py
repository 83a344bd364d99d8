"""The OpenAPI document, with every error response declared as problem+json."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.errors import PROBLEM_MEDIA_TYPE
from app.schemas.common import Problem

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
OPENAI_ERROR_REF = "#/components/schemas/OpenAIError"
FASTAPI_VALIDATION_ERROR = "Validation Error"
UNPARSABLE_BODY = {"description": "The body could not be parsed (not UTF-8, or malformed JSON)."}


def _links(parameter: str, *operation_ids: str) -> dict[str, Any]:
    """OpenAPI links from a response carrying an object's `id` to the operations taking it."""
    return {
        operation_id: {"operationId": operation_id, "parameters": {parameter: "$response.body#/id"}}
        for operation_id in operation_ids
    }


JOB_LINKS = _links("job_id", "get_job", "cancel_job", "list_job_webhook_deliveries")
ASSET_LINKS = _links(
    "asset_id",
    "get_asset",
    "get_asset_lineage",
    "get_asset_content",
    "head_asset_content",
    "create_asset_url",
)
ENDPOINT_LINKS = _links(
    "endpoint_id",
    "get_webhook_endpoint",
    "update_webhook_endpoint",
    "delete_webhook_endpoint",
    "list_webhook_deliveries",
)
KEY_LINKS = _links("key_id", "revoke_api_key", "rotate_api_key")
# Which success responses of which operations carry the id of an object other operations use,
# so a client (and a stateful test) can follow from the one to the other.
LINKS = {
    "generate_image": {"200": JOB_LINKS, "202": JOB_LINKS},
    "edit_image": {"200": JOB_LINKS, "202": JOB_LINKS},
    "create_variants": {"200": JOB_LINKS, "202": JOB_LINKS},
    "export_asset": {"200": JOB_LINKS, "202": JOB_LINKS},
    "upload_asset": {"201": ASSET_LINKS},
    "create_webhook_endpoint": {"201": ENDPOINT_LINKS},
    "create_api_key": {"201": KEY_LINKS},
}


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
            responses = operation.get("responses", {})
            fastapi_422 = responses.get("422", {}).get("description") == FASTAPI_VALIDATION_ERROR
            if fastapi_422 and any(_openai_error(r) for r in responses.values()):
                # Those routes answer invalid input with OpenAI's 400, never FastAPI's 422.
                responses.pop("422")
            for status, links in LINKS.get(operation["operationId"], {}).items():
                responses[status]["links"] = links
            if "requestBody" in operation:
                # Any body can be bytes no parser reads; FastAPI answers those 400.
                operation["responses"].setdefault("400", dict(UNPARSABLE_BODY))
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
