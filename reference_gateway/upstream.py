"""The chat-completions upstream, reached with one reused ``httpx.AsyncClient``.

Failures become ``APIError``: a 4xx from the upstream keeps its status and OpenAI envelope (it
is the client's mistake, e.g. an unknown model); anything else is 502 ``upstream_error``, and a
missed deadline is 504 ``upstream_timeout``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import orjson

from reference_gateway.config import GatewayConfig
from reference_gateway.errors import APIError

# Bound on one SSE line from the upstream: a chunk carrying one token is ~300 bytes.
MAX_UPSTREAM_LINE = 1024 * 1024


def _bad_gateway(message: str) -> APIError:
    return APIError(502, f"Upstream error: {message}", type="server_error", code="upstream_error")


def _timeout() -> APIError:
    return APIError(504, "The upstream did not answer in time.", type="server_error", code="upstream_timeout")


async def _raise_for_status(response: httpx.Response) -> None:
    if response.is_success:
        return
    await response.aread()
    try:
        error = response.json()["error"]
        message = str(error.get("message") or "")
    except (ValueError, KeyError, TypeError, AttributeError):
        error, message = {}, response.text[:200]
    if 400 <= response.status_code < 500:
        raise APIError(
            response.status_code,
            message or f"upstream returned {response.status_code}",
            type=str(error.get("type") or "invalid_request_error"),
            param=error.get("param") if isinstance(error.get("param"), str) else None,
            code=error.get("code") if isinstance(error.get("code"), str) else None,
        )
    raise _bad_gateway(f"status {response.status_code}: {message}")


# Concurrent upstream streams per gateway process (vLLM's own default max_num_seqs is 256;
# twice that leaves room for non-streamed calls and background work).
UPSTREAM_MAX_CONNECTIONS = 512


class Upstream:
    def __init__(self, config: GatewayConfig) -> None:
        headers = {"Authorization": f"Bearer {config.upstream_api_key}"} if config.upstream_api_key else {}
        self._deadline = config.request_timeout_s
        self._client = httpx.AsyncClient(
            base_url=config.upstream_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(config.request_timeout_s, connect=config.connect_timeout_s),
            # httpx's default pool (100 connections, 20 kept alive) queues streams beyond 100
            # and reconnects beyond 20: a gateway in front of a GPU server carries hundreds.
            limits=httpx.Limits(max_connections=UPSTREAM_MAX_CONNECTIONS,
                                max_keepalive_connections=UPSTREAM_MAX_CONNECTIONS),
        )

    async def _json(self, method: str, path: str, what: str, body: dict | None = None) -> object:
        """One non-streamed exchange under one deadline; errors mapped to 502/504 envelopes."""
        try:
            async with asyncio.timeout(self._deadline):
                response = await self._client.request(method, path, json=body)
                await _raise_for_status(response)
                return response.json()
        except (TimeoutError, httpx.TimeoutException):
            raise _timeout() from None
        except httpx.HTTPError as exc:
            raise _bad_gateway(str(exc) or type(exc).__name__) from None
        except ValueError:
            raise _bad_gateway(f"{what} is not JSON") from None

    async def complete(self, body: dict) -> dict:
        """A non-streamed chat completion, under one deadline for the whole exchange."""
        completion = await self._json("POST", "/chat/completions", "the answer", body)
        if not isinstance(completion, dict) or not isinstance(completion.get("choices"), list):
            raise _bad_gateway("the answer is not a chat completion")
        return completion

    async def open_stream(self, body: dict) -> httpx.Response:
        """Send a streamed request and check its status before the caller commits to a 200."""
        request = self._client.build_request("POST", "/chat/completions", json=body)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TimeoutException:
            raise _timeout() from None
        except httpx.HTTPError as exc:
            raise _bad_gateway(str(exc) or type(exc).__name__) from None
        try:
            await _raise_for_status(response)
        except BaseException:
            await response.aclose()
            raise
        return response

    @staticmethod
    async def chunks(response: httpx.Response) -> AsyncIterator[dict]:
        """Chat chunks from an open SSE response, until ``data: [DONE]`` or the end of the body.

        Each read has the client's read deadline; errors surface as ``APIError``.
        """
        try:
            async for line in response.aiter_lines():
                if len(line) > MAX_UPSTREAM_LINE:
                    raise _bad_gateway("an SSE line exceeds the size cap")
                if not line.startswith("data:"):
                    continue  # comments, event:, id:, blank separators
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    chunk = orjson.loads(data)
                except ValueError:
                    raise _bad_gateway("a streamed chunk is not JSON") from None
                if isinstance(chunk, dict) and "error" in chunk:
                    raise _bad_gateway(str((chunk["error"] or {}).get("message", chunk["error"])))
                yield chunk
        except httpx.TimeoutException:
            raise _timeout() from None
        except httpx.HTTPError as exc:
            raise _bad_gateway(str(exc) or type(exc).__name__) from None

    async def models(self) -> dict:
        return await self._json("GET", "/models", "the model list")

    async def aclose(self) -> None:
        await self._client.aclose()
