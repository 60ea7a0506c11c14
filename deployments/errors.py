"""How the service answers failures: one JSON shape, a 4xx for what the client did wrong, never a traceback.

Every error body is ``{"error": {"code": "<machine-readable>", "message": "<names the input and the problem>"}}``.
:func:`error_response` maps any exception to that body and its status:

    RequestError (and subclasses)         its own status and code (422 by default)
    Starlette HTTPException (4xx)         its status, code from the status phrase (not_found, bad_request...)
    kgi ImageError / PoseError / LandmarkError   422 invalid_image / invalid_pose / invalid_garment
    any other ValueError                  422 invalid_input (the package raises ValueError for bad user input)
    BackPressureError (a full queue)      503 overloaded, with Retry-After
    DeploymentUnavailableError            503 unavailable, with Retry-After
    RayActorError (a replica died)        503 unavailable, with Retry-After (Serve replaces the replica)
    anything else                         500 internal: logged with its traceback, answered without it

Exceptions raised inside another deployment reach the caller wrapped in ``RayTaskError``; the original
exception (``.cause``) is what gets classified.

:func:`error_responses` writes the OpenAPI entries of those answers (:class:`ErrorBody`, the headers that come
with them) for the routes' ``responses=``, so the API document lists every status a route answers with.
"""

from __future__ import annotations

import logging
import uuid
from http import HTTPStatus

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from ray.exceptions import RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from starlette.exceptions import HTTPException

from kgi.data.images import ImageError
from kgi.data.pose import PoseError
from kgi.landmarks import LandmarkError

logger = logging.getLogger("ray.serve")

RETRY_AFTER_S = 1  # what a 503 tells the client to wait before retrying


class RequestError(ValueError):
    """A request the service refuses; the message names the offending input (a form field, a header).

    Args:
        message: what is wrong and, where it helps, what to send instead.
        status: the HTTP status (4xx).
        code: the machine-readable ``error.code``; defaults to the class's ``code``.
        headers: extra response headers (``WWW-Authenticate`` for 401).
    """

    status: int = 422
    code: str = "invalid_input"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status or type(self).status
        self.code = code or type(self).code
        self.headers = headers or {}

    def __reduce__(self):  # keep status, code and headers across process boundaries (pickling)
        return _rebuild_request_error, (type(self), str(self), self.status, self.code, self.headers)


def _rebuild_request_error(cls, message, status, code, headers):
    return cls(message, status=status, code=code, headers=headers)


class MissingInputError(RequestError):
    """A required input is absent; the message says what to send."""

    code = "missing_input"


class UnknownVersionError(RequestError):
    """The request asks for a model version the service does not serve."""

    code = "unknown_version"


# (exception type, HTTP status, error code) for exceptions that are not RequestErrors, most specific first.
_CLIENT_ERRORS: tuple[tuple[type[Exception], int, str], ...] = (
    (ImageError, 422, "invalid_image"),
    (PoseError, 422, "invalid_pose"),
    (LandmarkError, 422, "invalid_garment"),
    (ValueError, 422, "invalid_input"),
)


def error_body(code: str, message: str) -> dict:
    """The JSON body of every error response (:class:`ErrorBody`)."""
    return {"error": {"code": code, "message": message}}


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable: invalid_image, payload_too_large, overloaded...")
    message: str = Field(description="the input and the problem, in words; never a traceback")


class ErrorBody(BaseModel):
    """What every error answer of the service carries."""

    error: ErrorDetail


# Status -> what it means wherever it is answered (the routes' docstrings say when), for the OpenAPI document.
ERROR_DESCRIPTIONS = {
    400: "bad_request: the body cannot be parsed (not the multipart form, or not the JSON, the route reads).",
    401: "unauthorized: no valid 'Authorization: Bearer <token>'.",
    403: "admin_disabled: the service has no admin token set.",
    404: "Not found: unknown_request (feedback for a request id the service never answered), not_found.",
    413: "payload_too_large: a file or the whole body is over the limit.",
    415: "unsupported_media_type: the body is not multipart/form-data.",
    422: "The input named in the message is not acceptable: invalid_input, invalid_image, invalid_pose, "
         "invalid_garment, missing_input, unknown_field, unknown_version, invalid_weights.",
    500: "internal: a bug; the message's incident id finds the traceback in the service logs (a failure outside "
         "the routes' error handling is answered in plain text).",
    503: "overloaded (a queue is full) or unavailable (a stage is restarting): retry after Retry-After seconds; "
         "config_unavailable: an experiment change could not be written through Serve. The proxy answers a full "
         "ingress queue itself, in plain text.",
}
_HEADERS = {
    401: {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    503: {"Retry-After": {"description": "seconds to wait before retrying (overloaded, unavailable)",
                          "schema": {"type": "integer"}}},
}
_PLAIN_TEXT_TOO = {500, 503}  # answered in plain text too: by Starlette (500) or Serve's proxy (503)


def error_responses(*statuses: int) -> dict[int, dict]:
    """The FastAPI ``responses=`` entries of error ``statuses``: each with :class:`ErrorBody` (and plain text where
    Serve's proxy answers too), its description and headers."""
    responses = {}
    for status in statuses:
        entry: dict = {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[status]}
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        if status in _PLAIN_TEXT_TOO:
            entry["content"] = {"text/plain": {"schema": {"type": "string"}}}
        responses[status] = entry
    return responses


def error_response(exc: BaseException) -> JSONResponse:
    """The JSON response for ``exc`` (see the module docstring); logs server-side failures with their traceback."""
    if isinstance(exc, RayTaskError) and exc.cause is not None:
        exc = exc.cause
    if isinstance(exc, RequestError):
        return JSONResponse(error_body(exc.code, str(exc)), status_code=exc.status, headers=exc.headers)
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=exc.headers)
    for kind, status, code in _CLIENT_ERRORS:
        if isinstance(exc, kind):
            return JSONResponse(error_body(code, str(exc)), status_code=status)
    retry = {"Retry-After": str(RETRY_AFTER_S)}
    if isinstance(exc, BackPressureError):
        return JSONResponse(error_body("overloaded", "the service is at capacity; retry shortly"),
                            status_code=503, headers=retry)
    if isinstance(exc, (DeploymentUnavailableError, RayActorError)):
        return JSONResponse(error_body("unavailable", "a stage of the service is unavailable; retry shortly"),
                            status_code=503, headers=retry)
    incident = uuid.uuid4().hex[:12]
    logger.error("internal error %s", incident, exc_info=(type(exc), exc, exc.__traceback__))
    return JSONResponse(error_body("internal", f"internal error (incident {incident}); the service logs have "
                                               "the details"), status_code=500)
