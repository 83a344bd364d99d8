"""The OpenAPI document: stable operation ids, and every error declared as problem+json."""

from app.config import Settings
from app.main import create_app


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
            assert list(response["content"]) == ["application/problem+json"], (operation, status)
    assert "Problem" in schema["components"]["schemas"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_public_request_fields_are_described(tmp_path):
    schema = create_app(Settings(data_dir=tmp_path)).openapi()["components"]["schemas"][
        "GenerateRequest"
    ]

    for name, field in schema["properties"].items():
        assert field.get("description"), name
