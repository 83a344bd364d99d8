"""Log lines never carry a credential: the signature of a signed URL, a key or token passed in a
query string, is redacted from every line before it is written, the access log included."""

import copy
import logging
import re
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


def install_redaction() -> None:
    """Redact on every handler the root logger writes through (call after configuring it)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactSecrets())


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with the redacting filter on both of its handlers."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact_secrets": {"()": f"{__name__}.RedactSecrets"}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact_secrets"]
    return config
