"""Job kinds: each turns a job's normalized request into outputs, one index at a time."""

from app.jobs.kinds.base import KindRunner
from app.jobs.kinds.edit import EditRunner, VariantsRunner
from app.jobs.kinds.export import ExportRunner
from app.jobs.kinds.generate import GenerateRunner

KINDS: dict[str, type[KindRunner]] = {
    "generate": GenerateRunner,
    "edit": EditRunner,
    "variants": VariantsRunner,
    "export": ExportRunner,
}
