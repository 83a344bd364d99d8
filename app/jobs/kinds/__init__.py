"""Job kinds: each turns a job's normalized request into outputs, one index at a time."""

from app.jobs.kinds.base import KindRunner
from app.jobs.kinds.generate import GenerateRunner

KINDS: dict[str, type[KindRunner]] = {
    "generate": GenerateRunner,
}
