"""The OpenAI-compatible HTTP API: /v1/models, /v1/chat/completions, /v1/completions (FastAPI).

Requests are read as plain JSON and checked here rather than through pydantic models, so every bad
field gets OpenAI's error body (``{"error": {"message", "type", "param", "code"}}``) naming the field,
which is what OpenAI clients show their users; FastAPI's own 422 list would not be understood by them.
Streaming uses server-sent events written directly (``data: {json}\\n\\n`` ... ``data: [DONE]``): two
lines of code, not worth a dependency.
"""

# no `from __future__ import annotations`: FastAPI must see the Request annotations as classes

import hmac
import json
import time
import uuid

from tunesmith.core.errors import UserError
from tunesmith.core.serve.backends import Outcome, Params

MAX_STOP_WORDS = 4  # as OpenAI
IGNORED_FIELDS = {"user", "stream_options", "logit_bias", "store", "metadata", "service_tier", "parallel_tool_calls"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type_: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type_

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _user_error(exc: UserError) -> ApiError:
    code = "context_length_exceeded" if "context" in exc.message else None
    return ApiError(400, str(exc), param=exc.field, code=code)


# ---- request parsing --------------------------------------------------------------------------

def _number(body: dict, name: str, kind, low=None, high=None):
    value = body.get(name)
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        ok = ok and float(value).is_integer()
    if not ok or (low is not None and value < low) or (high is not None and value > high):
        span = f" between {low} and {high}" if high is not None else (f" >= {low}" if low is not None else "")
        raise ApiError(400, f"'{name}' must be a {'whole number' if kind is int else 'number'}{span}, got {value!r}.",
                       param=name, code="invalid_value")
    return kind(value)


def parse_params(body: dict) -> Params:
    """The sampling fields of a request (OpenAI names, plus top_k and repetition_penalty as in vLLM)."""
    max_tokens = _number(body, "max_completion_tokens", int, 1) or _number(body, "max_tokens", int, 1)
    n = _number(body, "n", int, 1)
    if n not in (None, 1):
        raise ApiError(400, "only n=1 is supported: one answer per request.", param="n", code="unsupported_value")
    for name in ("frequency_penalty", "presence_penalty"):
        if _number(body, name, float, -2, 2) not in (None, 0):
            raise ApiError(400, f"'{name}' is not supported; use repetition_penalty (1.0 = off) instead.",
                           param=name, code="unsupported_parameter")
    for name in ("tools", "functions", "logprobs", "top_logprobs", "response_format", "echo", "best_of", "suffix"):
        if body.get(name) not in (None, False, [], {"type": "text"}, 1 if name == "best_of" else None):
            raise ApiError(400, f"'{name}' is not supported by this server.", param=name,
                           code="unsupported_parameter")
    stop = body.get("stop")
    stop = [stop] if isinstance(stop, str) else (stop or [])
    if not isinstance(stop, list) or len(stop) > MAX_STOP_WORDS or not all(isinstance(s, str) and s for s in stop):
        raise ApiError(400, f"'stop' must be a string or a list of up to {MAX_STOP_WORDS} non-empty strings.",
                       param="stop", code="invalid_value")
    seed = _number(body, "seed", int, 0)
    return Params(max_tokens=max_tokens, temperature=_number(body, "temperature", float, 0, 2),
                  top_p=_number(body, "top_p", float, 0, 1), top_k=_number(body, "top_k", int, 0),
                  repetition_penalty=_number(body, "repetition_penalty", float, 0.01, 10), seed=seed, stop=stop)


def _text_content(content, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ApiError(400, f"{where}: only text content parts are supported.", param="messages",
                               code="unsupported_value")
            parts.append(part["text"])
        return "".join(parts)
    raise ApiError(400, f"{where}: 'content' must be a string or a list of text parts.", param="messages",
                   code="invalid_value")


def parse_messages(body: dict) -> list[dict]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list of {role, content} objects.", param="messages",
                       code="invalid_value" if "messages" in body else "missing_required_parameter")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant"):
            role = m.get("role") if isinstance(m, dict) else None
            raise ApiError(400, f"messages[{i}]: role {role!r} is not supported (system, user, assistant).",
                           param=f"messages[{i}].role", code="invalid_value")
        out.append({"role": m["role"], "content": _text_content(m.get("content"), f"messages[{i}]")})
    return out


def parse_prompt(body: dict) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise ApiError(400, "'prompt' must be one non-empty string.", param="prompt",
                       code="invalid_value" if "prompt" in body else "missing_required_parameter")
    return prompt


# ---- the app ------------------------------------------------------------------------------------

def build_app(backend, *, api_key: str | None = None):
    """A FastAPI app serving ``backend`` (see tunesmith.core.serve.backends); ``api_key`` = required Bearer token."""
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException

    app = FastAPI(title="Tunesmith OpenAI-compatible server", docs_url=None, redoc_url=None, openapi_url=None)
    created = int(time.time())

    def error_response(err: ApiError):
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return JSONResponse(err.body(), status_code=err.status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return error_response(exc)

    @app.exception_handler(HTTPException)
    async def _http_error(request, exc: HTTPException):
        return error_response(ApiError(exc.status_code, str(exc.detail), code="not_found" if exc.status_code == 404
                                       else None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc):
        return error_response(ApiError(400, str(exc)))

    @app.middleware("http")
    async def _auth(request: Request, call_next):
        if api_key and request.url.path.startswith("/v1"):
            given = request.headers.get("authorization", "")
            token = given[7:].strip() if given.lower().startswith("bearer ") else ""
            if not hmac.compare_digest(token.encode(), api_key.encode()):
                return error_response(ApiError(401, "Incorrect API key provided." if token else
                                               "Missing API key: send 'Authorization: Bearer KEY'.",
                                               code="invalid_api_key"))
        return await call_next(request)

    async def read_body(request: Request) -> dict:
        try:
            body = json.loads(await request.body() or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"the request body is not valid JSON: {exc}.") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object.")
        model = body.get("model")
        if model is None:
            raise ApiError(400, "'model' is required.", param="model", code="missing_required_parameter")
        if model != backend.model_id:
            raise ApiError(404, f"The model '{model}' does not exist; this server serves '{backend.model_id}'.",
                           param="model", code="model_not_found")
        return body

    def model_card():
        return {"id": backend.model_id, "object": "model", "created": created, "owned_by": "tunesmith"}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id}")
    async def one_model(model_id: str):
        if model_id != backend.model_id:
            raise ApiError(404, f"The model '{model_id}' does not exist.", param="model", code="model_not_found")
        return model_card()

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": backend.model_id, "backend": backend.kind}

    async def respond(body: dict, kind: str, work):
        """Run ``work(outcome, stream)``; wrap its text as a completion, or as SSE chunks when streaming."""
        stream = bool(body.get("stream"))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        outcome = Outcome()
        rid = ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex[:24]
        now = int(time.time())
        head = {"id": rid, "object": "chat.completion" if kind == "chat" else "text_completion", "created": now,
                "model": backend.model_id}

        def usage():
            return {"prompt_tokens": outcome.prompt_tokens, "completion_tokens": outcome.completion_tokens,
                    "total_tokens": outcome.prompt_tokens + outcome.completion_tokens}

        if not stream:
            try:
                text = await run_in_threadpool(work, outcome, False)
            except UserError as exc:
                raise _user_error(exc) from None
            choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None}
                      if kind == "chat" else {"index": 0, "text": text, "logprobs": None})
            choice["finish_reason"] = outcome.finish_reason
            return {**head, "choices": [choice], "usage": usage()}

        pieces = iter(await run_in_threadpool(work, outcome, True))
        done = object()
        try:  # the first piece (prompt checks, first token) before answering 200, so bad input is a 400
            first = await run_in_threadpool(next, pieces, done)
        except UserError as exc:
            raise _user_error(exc) from None
        chunk_head = {**head, "object": "chat.completion.chunk" if kind == "chat" else "text_completion"}

        def chunk(text: str | None, finish: str | None = None, role: bool = False) -> str:
            if kind == "chat":
                delta = {"role": "assistant", "content": text or ""} if role else ({"content": text} if text else {})
                choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            else:
                choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
            payload = {**chunk_head, "choices": [choice]}
            if include_usage:
                payload["usage"] = None
            return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

        def events():
            try:
                yield chunk("" if first is done else first, role=True)
                if first is not done:
                    for piece in pieces:
                        yield chunk(piece)
                yield chunk(None, finish=outcome.finish_reason)
                if include_usage:
                    yield f"data: {json.dumps({**chunk_head, 'choices': [], 'usage': usage()})}\n\n"
            except UserError as exc:
                yield f"data: {json.dumps(_user_error(exc).body())}\n\n"
            finally:
                close = getattr(pieces, "close", None)
                if close is not None:
                    close()
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = await read_body(request)
        messages, params = parse_messages(body), parse_params(body)
        return await respond(body, "chat", lambda outcome, stream: backend.chat(messages, params, outcome,
                                                                                 stream=stream))

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await read_body(request)
        prompt, params = parse_prompt(body), parse_params(body)
        return await respond(body, "completion", lambda outcome, stream: backend.complete(prompt, params, outcome,
                                                                                           stream=stream))

    return app

