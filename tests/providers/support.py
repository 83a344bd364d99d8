"""What the vendor adapter tests share."""

import json
from typing import Any

from app.errors import DarkroomError


def checked_problem(
    exc: DarkroomError, slug: str, status: int | None = None, *, secret: str
) -> dict[str, Any]:
    """The error's problem object, checked for its type (and status, if given) and for never
    naming the vendor's key, neither in the problem nor in the exception's text."""
    problem = exc.to_problem()
    assert problem["type"].endswith(f"/{slug}"), problem
    if status is not None:
        assert problem["status"] == status
    assert secret not in json.dumps(problem)
    assert secret not in str(exc)
    return problem
