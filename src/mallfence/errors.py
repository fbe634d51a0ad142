"""Domain errors and their HTTP mapping.

Services raise these; routers never build error responses by hand. Validation problems use the
same shape as FastAPI's own 422s (``detail: [{loc, msg, type}]``) so clients parse one format.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


@dataclass(frozen=True, slots=True)
class Issue:
    loc: tuple[str | int, ...]
    msg: str
    type: str = "value_error"

    def as_dict(self) -> dict[str, object]:
        return {"loc": list(self.loc), "msg": self.msg, "type": self.type}


class DomainError(Exception):
    status_code = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, object]:
        return {"detail": self.message}


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class Unauthorized(DomainError):
    status_code = 401


class Forbidden(DomainError):
    """Authenticated, but this caller may not do this (another venue's code, another store's staff)."""

    status_code = 403


class Gone(DomainError):
    """It existed and is used up or expired (a one-time code scanned twice)."""

    status_code = 410


class PayloadTooLarge(DomainError):
    status_code = 413


class Invalid(DomainError):
    """One or more problems with the input; nothing was stored."""

    status_code = 422

    def __init__(self, issues: Sequence[Issue] | Issue):
        self.issues = [issues] if isinstance(issues, Issue) else list(issues)
        super().__init__("; ".join(f"{'.'.join(map(str, i.loc))}: {i.msg}" for i in self.issues))

    def body(self) -> dict[str, object]:
        return {"detail": [i.as_dict() for i in self.issues]}

    def prefixed(self, *prefix: str | int) -> Invalid:
        return Invalid([Issue((*prefix, *i.loc), i.msg, i.type) for i in self.issues])


def collect(errors: Iterable[Invalid]) -> Invalid | None:
    """All issues of several Invalid errors as one, or None when there were none."""
    issues = [i for e in errors for i in e.issues]
    return Invalid(issues) if issues else None


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)
