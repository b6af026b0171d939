"""The OpenAI error envelope: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

from starlette.responses import JSONResponse


class APIError(Exception):
    """An error that leaves the gateway as an OpenAI error envelope with an HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}  # sent with the envelope (e.g. an upstream's Retry-After)

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def invalid(message: str, *, param: str | None, code: str | None = "invalid_value") -> APIError:
    """A 400 ``invalid_request_error`` naming the offending field."""
    return APIError(400, message, param=param, code=code)


def unsupported(param: str, what: str | None = None) -> APIError:
    """A clean refusal of a feature this gateway does not implement (verdict ``unsupported``).

    ``what`` is a phrase that quotes its own values (``content part type 'input_image'``) and is
    used as it is; without it the parameter's name is quoted (``'top_logprobs'``)."""
    return APIError(
        400,
        f"{what if what is not None else repr(param)} is not supported by this gateway.",
        param=param,
        code="unsupported_parameter",
    )
