"""Keep credentials out of the server's logs.

Browsers cannot set headers on a websocket, so apps and the staff app may pass their token as ``?token=``;
uvicorn logs every request and websocket with its query string. This filter rewrites those lines before
any handler sees them: ``token=…`` (and ``key=…``) become ``token=[redacted]``.
"""

from __future__ import annotations

import logging
import re

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
