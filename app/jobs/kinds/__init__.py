"""Job kinds: each turns a job's normalized request into outputs, one index at a time."""

from app.jobs.kinds.base import KindRunner
from app.jobs.kinds.edit import EditRunner
from app.jobs.kinds.export import ExportRunner
from app.jobs.kinds.generate import GenerateRunner
from app.models import JobKind

KINDS: dict[JobKind, type[KindRunner]] = {
    JobKind.GENERATE: GenerateRunner,
    JobKind.EDIT: EditRunner,
    JobKind.VARIANTS: EditRunner,
    JobKind.EXPORT: ExportRunner,
}
