"""Keep credentials out of the server's logs.

Browsers cannot set headers on a websocket, so apps and the staff app may pass their token as ``?token=``;
uvicorn logs every request and websocket with its query string. This filter rewrites those lines before
any handler sees them: ``token=…`` (and ``key=…``) become ``token=[redacted]``.

Structured logs (``MALLFENCE_LOG_FORMAT=json``): one JSON object per line with the request id (the
caller's ``X-Request-Id`` or a new one, echoed in the response) and the device id once a device
authenticated; ``mallfence.access`` logs one line per request (route, status, duration) in place of
uvicorn's access line.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

_SECRET = re.compile(r"(?i)\b(token|key|access_token)=[^&\s\"']+")
LOGGERS = ("uvicorn.access", "uvicorn.error")


def redact(text: str) -> str:
    return _SECRET.sub(lambda m: f"{m.group(1)}=[redacted]", text)


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install() -> None:
    """Attach the filter to uvicorn's loggers (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())


# -- structured logs -------------------------------------------------------------------------------------
# The request being served (HTTP or websocket): its id, and the device once authenticated. A mutable dict
# in a context variable: dependencies run in worker threads on a copy of the context, and what they set in
# the dict is still seen by the request's middleware and by every log line of the request.
_context: ContextVar[dict[str, str] | None] = ContextVar("mallfence_request", default=None)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
FIELDS = ("request_id", "device_id")


def request_context() -> dict[str, str] | None:
    return _context.get()


def bind(**values: str) -> None:
    """Attach ``values`` (device_id) to the current request's log lines; outside a request, nothing."""
    ctx = _context.get()
    if ctx is not None:
        ctx.update(values)


def incoming_request_id(value: str | None) -> str:
    """The caller's ``X-Request-Id`` when it is a sane token, else a fresh one."""
    if value and _REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class ContextFilter(logging.Filter):
    """Give every record the current request's ``request_id`` and ``device_id`` (None outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = _context.get() or {}
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, ctx.get(name))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, request_id, device_id, extra fields, exc."""

    RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "msg": redact(record.getMessage()),
        }
        ctx = _context.get() or {}
        for name in FIELDS:
            value = getattr(record, name, None) or ctx.get(name)
            if value:
                line[name] = value
        for key, value in record.__dict__.items():
            if key not in self.RESERVED and key not in line and key not in FIELDS:
                line[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            line["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, default=str, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def config(log_format: str, level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` (uvicorn's ``log_config``) for the server: mallfence's and uvicorn's
    loggers to stderr, as JSON lines or text, with the request id; secrets redacted either way."""
    level = level.upper()
    formatter: dict[str, Any] = ({"()": f"{__name__}.JsonFormatter"} if log_format == "json"
                                 else {"format": TEXT_FORMAT})
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "main",
               "filters": ["context", "redact"]}
    return {
        "version": 1, "disable_existing_loggers": False,
        "filters": {"context": {"()": f"{__name__}.ContextFilter"}, "redact": {"()": f"{__name__}.RedactSecrets"}},
        "formatters": {"main": formatter},
        "handlers": {"main": handler},
        "loggers": {name: {"handlers": ["main"], "level": level, "propagate": False}
                    for name in ("mallfence", "uvicorn", "uvicorn.error", "uvicorn.access")},
    }
