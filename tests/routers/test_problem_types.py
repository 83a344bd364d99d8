"""GET /problems/{slug}: every problem type the code can produce has a page, and every problem
names its page by a URI relative to the server that answered."""

import ast
import importlib
import pkgutil
from pathlib import Path

import app as app_package
from app.errors import HTTP_ERROR_SLUG, HTTP_SLUGS, DarkroomError
from tests.support import embedded_only

APP_DIRECTORY = Path(app_package.__file__).parent


def produced_slugs() -> set[str]:
    """Every slug the code can put in a problem: each error class's, each literal passed to
    `problem(...)`, and those of FastAPI's and Starlette's HTTP errors."""
    return error_class_slugs() | problem_call_slugs() | set(HTTP_SLUGS.values()) | {HTTP_ERROR_SLUG}


def error_class_slugs() -> set[str]:
    for module in pkgutil.walk_packages(app_package.__path__, "app."):
        importlib.import_module(module.name)
    slugs, classes = set(), [DarkroomError]
    while classes:
        error = classes.pop()
        slugs.add(error.slug)
        classes.extend(error.__subclasses__())
    return slugs


def problem_call_slugs() -> set[str]:
    slugs = set()
    for source in APP_DIRECTORY.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if _calls_problem(node) and isinstance(node.args[1], ast.Constant):
                slugs.add(node.args[1].value)
    return slugs


def _calls_problem(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "problem"
        and len(node.args) >= 2
    )


def test_the_slugs_are_collected_from_every_place_that_makes_a_problem():
    slugs = produced_slugs()

    # One of each: an error class outside app.errors, a `problem(...)` call in a task body, an
    # HTTP error of Starlette's.
    assert {"url-refused", "worker-lost", "job-timeout", "method-not-allowed"} <= slugs


@embedded_only()
async def test_every_problem_type_the_code_can_produce_has_a_page(client):
    for slug in sorted(produced_slugs()):
        response = await client.get(f"/problems/{slug}")

        assert response.status_code == 200, slug
        assert response.headers["content-type"].startswith("text/plain")
        page = response.text
        assert page.startswith(f"/problems/{slug}\n")
        assert "What it means: " in page and "What to do: " in page


async def test_a_problem_type_uri_is_relative_to_the_server_and_resolves_to_its_page(client, auth):
    missing = await client.get("/v1/jobs/job_01JD7Z8Q3N5X2W1V0T9S8R7Q6P", headers=auth)

    assert missing.status_code == 404
    problem_type = missing.json()["type"]
    assert problem_type == "/problems/not-found"
    page = await client.get(problem_type)
    assert page.status_code == 200
    assert "No such object for this API key's tenant" in page.text


@embedded_only()
async def test_an_unknown_problem_type_is_404_problem(client):
    response = await client.get("/problems/no-such-problem")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/not-found"
