"""The OpenAPI document: stable operation ids, examples, and every error declared as
problem+json (OpenAI's error object on the OpenAI-compatible routes)."""

import json
import re
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from app.config import Settings
from app.errors import PROBLEM_BASE, PROBLEM_TYPES
from app.main import create_app
from app.schemas.common import Brief

OPENAI_TAG = "openai-compatible"
OPENAI_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/OpenAIError"}}}


def resolve(schema: dict[str, Any], components: dict[str, Any]) -> list[dict[str, Any]]:
    """A schema and, through `$ref` and anyOf/oneOf/allOf, the schemas it stands for."""
    if "$ref" in schema:
        return resolve(components[schema["$ref"].rsplit("/", 1)[-1]], components)
    found = [schema]
    for key in ("anyOf", "oneOf", "allOf"):
        for member in schema.get(key, []):
            found += resolve(member, components)
    return found


def has_example(media: dict[str, Any], components: dict[str, Any]) -> bool:
    """Whether a media type or parameter carries an example, itself or on its schema."""
    if "example" in media or "examples" in media:
        return True
    schemas = resolve(media.get("schema", {}), components)
    return any("example" in schema or "examples" in schema for schema in schemas)


def operation_examples(operation: dict[str, Any], components: dict[str, Any]) -> bool:
    """Whether the request body, a parameter or a success response shows an example."""
    candidates = list(operation.get("requestBody", {}).get("content", {}).values())
    candidates += operation.get("parameters", [])
    for status, response in operation["responses"].items():
        if status.startswith("2"):
            candidates += response.get("content", {}).values()
    return any(has_example(candidate, components) for candidate in candidates)


def test_every_operation_is_named_tagged_and_declares_problem_errors(tmp_path):
    schema = create_app(Settings(data_dir=tmp_path)).openapi()

    operations = [op for ops in schema["paths"].values() for op in ops.values()]
    assert {op["operationId"] for op in operations} >= {
        "generate_image",
        "get_job",
        "list_jobs",
        "cancel_job",
        "upload_asset",
        "get_asset",
        "get_asset_content",
        "list_models",
    }
    for operation in operations:
        assert operation["summary"] and operation["tags"], operation["operationId"]
        errors = {s: r for s, r in operation["responses"].items() if s[0] in "45"}
        for status, response in errors.items():
            # The size limit's 413 and the idempotency layer's 422 are problem+json everywhere.
            if OPENAI_TAG in operation["tags"] and status not in ("413", "422"):
                assert response["content"] == OPENAI_ERROR, (operation["operationId"], status)
            else:
                media_types = list(response["content"])
                assert media_types == ["application/problem+json"], (operation, status)
    assert "Problem" in schema["components"]["schemas"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_every_json_body_declares_the_415_of_another_media_type(tmp_path):
    schema = create_app(Settings(data_dir=tmp_path)).openapi()

    undeclared = [
        operation["operationId"]
        for operations in schema["paths"].values()
        for operation in operations.values()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
        and OPENAI_TAG not in operation["tags"]
        and "415" not in operation["responses"]
    ]

    assert undeclared == []


def test_public_request_fields_are_described(tmp_path):
    schema = create_app(Settings(data_dir=tmp_path)).openapi()["components"]["schemas"][
        "GenerateRequest"
    ]

    for name, field in schema["properties"].items():
        assert field.get("description"), name


def test_every_operation_has_an_example(tmp_path):
    schema = create_app(Settings(data_dir=tmp_path)).openapi()
    components = schema["components"]["schemas"]

    missing = [
        f"{method.upper()} {path} ({operation['operationId']})"
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if not operation_examples(operation, components)
    ]

    assert missing == [], f"add an example to the request or response schema of {missing}"


def test_openai_compatible_routes_document_openai_shapes(tmp_path):
    schema = create_app(Settings(data_dir=tmp_path)).openapi()
    paths = schema["paths"]

    generate = paths["/v1/images/generations"]["post"]
    assert generate["operationId"] == "create_image"
    # Invalid input is OpenAI's 400; the one 422 is the idempotency layer's, in problem+json.
    assert generate["responses"]["422"]["content"] == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
    }
    assert generate["responses"]["400"]["content"] == OPENAI_ERROR
    body = generate["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ImageGenerationRequest"}
    for path, required in (("/v1/images/edits", "image"), ("/v1/images/variations", "image")):
        operation = paths[path]["post"]
        multipart = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert required in multipart["required"], path
        assert operation["responses"]["401"]["content"] == OPENAI_ERROR, path
    edit = paths["/v1/images/edits"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert {"image", "mask", "prompt", "n", "size"} <= set(edit["schema"]["properties"])
    error = schema["components"]["schemas"]["OpenAIErrorBody"]
    assert set(error["properties"]) == {"message", "type", "param", "code"}


def test_every_problem_type_the_document_and_readme_show_is_one_darkroom_has(tmp_path):
    document = json.dumps(create_app(Settings(data_dir=tmp_path)).openapi())
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    shown = set(re.findall(r'"type":\s*"([^"]*problems/[^"]*)"', document))
    shown |= set(re.findall(r'"([^"\s]*/problems/[^"]*)"', readme))

    assert shown, "no example names a problem type"
    assert {url for url in shown if url.removeprefix(PROBLEM_BASE) not in PROBLEM_TYPES} == set()


def test_the_briefs_pattern_and_its_validator_take_the_same_text():
    # The document's pattern is read as ECMAScript, whose white space is not Python's.
    texts = ["a", " ", "\t\n", "\u3000x", "\ufeff", "\x1c", "\x85", "\u2028", "a\x00"]
    pattern = re.compile(TypeAdapter(Brief).json_schema()["pattern"])

    def validator_takes(text: str) -> bool:
        try:
            TypeAdapter(Brief).validate_python(text)
        except ValidationError:
            return False
        return True

    taken = {text: validator_takes(text) for text in texts}
    assert taken == {text: bool(pattern.match(text)) for text in texts}
    assert [text for text, ok in taken.items() if ok] == ["a", "\u3000x", "\x1c", "\x85"]
