"""Domain errors and their HTTP mapping.

Services raise these; routers never build error responses by hand. Validation problems use the
same shape as FastAPI's own 422s (``detail: [{loc, msg, type}]``) so clients parse one format.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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


INT64 = 2**63 - 1


def out_of_range(path: Mapping[str, Any], query: Mapping[str, Any]) -> list[dict[str, object]]:
    """The 422 issues for a number too large to store or look up, at its place when the URL has it."""
    issues = [Issue((where, name), f"{value} is out of range (ids and counts are at most {INT64})").as_dict()
              for where, params in (("path", path), ("query", query)) for name, value in params.items()
              if isinstance(value, str) and value.lstrip("-").isdigit() and abs(int(value)) > INT64]
    return issues or [Issue(("body",), "a number is out of range for what it is stored as").as_dict()]


# Every operation may answer with these; the schema says so, so clients (and the fuzz test) can rely on it.
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["detail"],
    "properties": {"detail": {"anyOf": [
        {"type": "string", "description": "what went wrong, in words"},
        {"type": "array", "description": "the problems with the input, each at its place",
         "items": {"type": "object", "required": ["loc", "msg", "type"],
                   "properties": {"loc": {"type": "array", "items": {"anyOf": [{"type": "string"},
                                                                               {"type": "integer"}]}},
                                  "msg": {"type": "string"}, "type": {"type": "string"}}}},
    ]}},
}
ERROR_RESPONSES = {
    "4XX": "refused: 400 bad request, 401 no or wrong credentials, 403 not allowed, 404 not found, 409 conflict, "
           "410 used up or expired, 413 too large, 422 invalid input (detail lists each problem), 429 too many "
           "requests (Retry-After says when to retry)",
    "503": "a dependency is unavailable; retry",
}


def document(app: FastAPI) -> None:
    """Add the error responses every operation can give to the OpenAPI schema."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for code, description in ERROR_RESPONSES.items():
                    operation.setdefault("responses", {}).setdefault(code, {"description": description,
                                                                            "content": content})
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    document(app)
    @app.exception_handler(DomainError)
    async def _domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        retry_after = getattr(exc, "retry_after", None)  # TooManyRequests (ratelimit) and 503s that know
        if retry_after is not None:
            headers = {"Retry-After": str(retry_after)}
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)
