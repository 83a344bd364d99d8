"""How a Darkroom process logs: as text or as one JSON object a line, each line carrying the
ids of the request or job it belongs to (kept in context variables, so concurrent requests and
jobs never mix them up), and never a credential: the signature of a signed URL, a key or token
passed in a query string, is redacted from every line before it is written, the access log
included."""

import contextvars
import copy
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

# Query parameters whose value is a secret: Darkroom's own signed URLs (`signature`), presigned
# object-store URLs, and keys a careless client puts in a URL.
SECRET_PARAMETERS = re.compile(
    r"(?P<name>[?&;](?:signature|sig|token|access_token|api_key|key|x-amz-signature|"
    r"x-amz-credential|x-amz-security-token)=)[^&;\s\"']*",
    re.IGNORECASE,
)
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """`text` with the value of every secret query parameter replaced."""
    return SECRET_PARAMETERS.sub(rf"\g<name>{REDACTED}", text)


def _redact_value(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class RedactSecrets(logging.Filter):
    """Redacts secret query parameters in a record's message and arguments. The arguments stay
    a tuple of the same length, because formatters such as uvicorn's access log read them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_value(value) for value in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _redact_value(value) for key, value in record.args.items()}
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with the redacting filter on both of its handlers."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact_secrets": {"()": f"{__name__}.RedactSecrets"}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact_secrets"]
    return config


# The ids a line belongs to: the request's (set by the request middleware) and, inside a task
# body, the job's. A context variable follows an asyncio task, so each request and job sees its
# own, and a job the in-process runner starts keeps the id of the request that queued it.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
job_fields: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "job_fields", default=None
)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# What every LogRecord has; anything else on a record came from a call's `extra`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's coloured copy of the message
}


@contextmanager
def job_context(**fields: Any) -> Iterator[None]:
    """Tag every line logged inside with a job's fields (job_id, tenant_id, kind, attempt)."""
    token = job_fields.set((job_fields.get() or {}) | fields)
    try:
        yield
    finally:
        job_fields.reset(token)


def context_fields() -> dict[str, Any]:
    """The ids of the request and job the current code runs for."""
    current = request_id.get()
    fields = {"request_id": current} if current else {}
    return fields | (job_fields.get() or {})


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the request and job ids, the
    call's `extra` fields, and a traceback when there is one. The finished line is redacted
    as a whole, so a secret in an extra field is caught too."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line |= context_fields()
        line |= {key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(line, default=str, ensure_ascii=False))


def configure_logging(log_format: str = "text", level: str = "INFO") -> None:
    """Write the root logger's lines to stderr in `log_format` (text or json) from `level` up,
    with secrets redacted; uvicorn's and arq's loggers write through it too."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
