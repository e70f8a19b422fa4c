"""The error the emulator answers with, shaped like Picsart's `Error` schema."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

# Reason phrases as Picsart's spec names them; fixed here because Python's own change between
# versions (413 became "Content Too Large" in 3.13).
REASONS: dict[int, str] = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def reason(status: int) -> str:
    """The reason phrase used in error bodies."""
    return REASONS.get(status) or HTTPStatus(status).phrase


class ApiError(Exception):
    """An error answer: ``{"code": N, "message": "<reason phrase>", "detail": "..."}``.

    ``body`` replaces the standard shape where Picsart's gateway answers differently
    (the spike-arrest 429 has a ``{"fault": ...}`` body).
    """

    def __init__(self, status: int, detail: str, *, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.body: dict[str, Any] = (
            body if body is not None else {"code": status, "message": reason(status), "detail": detail}
        )
