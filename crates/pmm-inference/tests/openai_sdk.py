"""The proxy as a new user meets it: the official OpenAI Python SDK, every call a real request.

Driven by tests/openai_sdk.rs, which starts the proxy in front of real llama-servers and a
stalled fake upstream, and passes:
  PMM_PROXY_BASE   http://127.0.0.1:<port>/v1
  PMM_PROXY_TOKEN  the bearer token the proxy accepts
  PMM_FIRST_BYTE_S the proxy's first-byte deadline, seconds
Models: `smollm2` (llama-server --jinja with a template that renders tools, alias
`gpt-4o-mini`), `plain` (llama-server --no-jinja: no tool calls), `stalled` (headers, then
nothing).

Each case prints `ok <name>`; the first failure raises (non-zero exit, traceback on stderr).
"""

import json
import os
import time

import openai
from openai import OpenAI

BASE = os.environ["PMM_PROXY_BASE"]
TOKEN = os.environ["PMM_PROXY_TOKEN"]
FIRST_BYTE_S = float(os.environ["PMM_FIRST_BYTE_S"])
USER = [{"role": "user", "content": "Say hello."}]

# No SDK retries: each case is one request and one answer.
client = OpenAI(base_url=BASE, api_key=TOKEN, max_retries=0, timeout=60)


def expect(exc_class, call, *, code, message_part, param=None):
    """`call` raises exactly `exc_class`, its body in OpenAI's shape carrying the proxy's
    message (checked by `message_part`) and `code`."""
    try:
        call()
    except exc_class as e:
        assert type(e) is exc_class, f"{type(e).__name__} is not {exc_class.__name__}"
        body = e.body
        assert isinstance(body, dict), body
        assert set(body) >= {"message", "type", "param", "code"}, body
        assert message_part in body["message"], (message_part, body)
        assert message_part in e.message, e.message
        assert e.code == code, (e.code, body)
        if param is not None:
            assert e.param == param, (e.param, body)
        return e
    raise AssertionError(f"no {exc_class.__name__} raised")


def case(name):
    print(f"ok {name}", flush=True)


def wait_for_slot():
    """The proxy takes one request at a time: polls (with a deadline) until a request whose
    client went away has given its slot back."""
    deadline = time.monotonic() + 10
    while True:
        try:
            client.chat.completions.create(model="smollm2", messages=USER, max_tokens=1)
            return
        except openai.RateLimitError:
            assert time.monotonic() < deadline, "the slot was never given back"
            time.sleep(0.02)


# Success paths first: the SDK parses what the proxy relays.
r = client.chat.completions.create(model="smollm2", messages=USER, max_tokens=8, temperature=0)
assert r.choices[0].message.content, r
assert r.model == "smollm2", r.model
case("chat")

r = client.chat.completions.create(model="gpt-4o-mini", messages=USER, max_tokens=4)
assert r.model == "smollm2", "an alias resolves to its model"
case("alias")

text = "".join(
    c.choices[0].delta.content or ""
    for c in client.chat.completions.create(
        model="smollm2", messages=USER, max_tokens=8, temperature=0, stream=True
    )
    if c.choices
)
assert text, "stream carried no text"
case("stream")

ids = [m.id for m in client.models.list()]
assert ids == ["smollm2", "plain", "stalled"], ids
assert client.models.retrieve("smollm2").id == "smollm2"
case("models")

tools = [
    {
        "type": "function",
        "function": {
            "name": "get_pool_price",
            "description": "Current mid price of a DODO pool",
            "parameters": {
                "type": "object",
                "properties": {"pool": {"type": "string"}},
                "required": ["pool"],
            },
        },
    }
]
ask = [{"role": "user", "content": "What is the price of pool WETH-USDC?"}]
plain_r = client.chat.completions.create(model="smollm2", messages=ask, max_tokens=1)
r = client.chat.completions.create(
    model="smollm2", messages=ask, tools=tools, tool_choice="auto", max_tokens=1
)
# The tools reached the model's prompt (a 135M model rarely decides to call one, so the call
# itself is checked only when it comes).
assert r.usage.prompt_tokens > plain_r.usage.prompt_tokens + 20, (r.usage, plain_r.usage)
for call in r.choices[0].message.tool_calls or []:
    assert call.function.name == "get_pool_price", call
case("tool call")

# 404: unknown model, unknown model id, unknown route.
expect(
    openai.NotFoundError,
    lambda: client.chat.completions.create(model="gpt-9", messages=USER),
    code="model_not_found",
    message_part="`gpt-9`",
    param="model",
)
expect(
    openai.NotFoundError,
    lambda: client.models.retrieve("gpt-9"),
    code="model_not_found",
    message_part="`gpt-9`",
)
expect(
    openai.NotFoundError,
    lambda: client.get("/nowhere", cast_to=object),
    code="unknown_url",
    message_part="/v1/nowhere",
)
case("not found")

# 400: validation the way OpenAI does it, and tools where the upstream cannot serve them.
bad = [
    (dict(messages=[]), "messages", "empty_array", "empty array"),
    (
        dict(messages=[{"role": "bot", "content": "hi"}]),
        "messages[0].role",
        "invalid_value",
        "'bot'",
    ),
    (dict(messages=USER, n=0), "n", "integer_below_min_value", ">= 1"),
    (dict(messages=USER, n=129), "n", "integer_above_max_value", "<= 128"),
    (dict(messages=USER, max_tokens=0), "max_tokens", "integer_below_min_value", ">= 1"),
    (dict(messages=USER, temperature=3), "temperature", "decimal_above_max_value", "<= 2"),
]
for kwargs, param, code, part in bad:
    expect(
        openai.BadRequestError,
        lambda: client.chat.completions.create(model="smollm2", **kwargs),
        code=code,
        message_part=part,
        param=param,
    )
expect(
    openai.BadRequestError,
    lambda: client.chat.completions.create(model="plain", messages=USER, tools=tools),
    code="tools_not_supported",
    message_part="does not support tools",
    param="tools",
)
case("bad request")

# 401 and 413 (classes of their own in the SDK).
expect(
    openai.AuthenticationError,
    lambda: OpenAI(base_url=BASE, api_key="wrong", max_retries=0).models.list(),
    code="invalid_api_key",
    message_part="bearer token",
)
e = expect(
    openai.APIStatusError,
    lambda: client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "x" * 200_000}]
    ),
    code="request_too_large",
    message_part="larger than the limit",
)
assert e.status_code == 413
case("auth and size")

# 429: the proxy allows one request at a time and queues none; a stream holds the slot.
with client.chat.completions.create(
    model="smollm2",
    messages=[{"role": "user", "content": "Write a long story."}],
    max_tokens=2000,
    stream=True,
) as held:
    next(iter(held))
    e = expect(
        openai.RateLimitError,
        lambda: client.chat.completions.create(model="smollm2", messages=USER),
        code="rate_limit_exceeded",
        message_part="capacity",
    )
    assert e.response.headers["retry-after"] == "1", e.response.headers
wait_for_slot()
case("rate limit")

# A client deadline shorter than the stall: the SDK's own timeout fires.
try:
    client.with_options(timeout=0.3).chat.completions.create(model="stalled", messages=USER)
    raise AssertionError("no timeout")
except openai.APITimeoutError:
    pass
wait_for_slot()
case("client timeout")

# 504: the stalled upstream is answered within the first-byte deadline, then its breaker is
# open (503 with Retry-After) and it is no longer listed as routable.
start = time.monotonic()
expect(
    openai.InternalServerError,
    lambda: client.chat.completions.create(model="stalled", messages=USER),
    code="timeout",
    message_part="no first byte within",
)
elapsed = time.monotonic() - start
assert FIRST_BYTE_S <= elapsed < FIRST_BYTE_S + 1.0, elapsed
e = expect(
    openai.InternalServerError,
    lambda: client.chat.completions.create(model="stalled", messages=USER, stream=True),
    code="upstream_unavailable",
    message_part="`stalled`",
)
assert e.status_code == 503 and e.response.headers["retry-after"] == "1", e.response
ids = [m.id for m in client.models.list()]
assert ids == ["smollm2", "plain"], ids
case(f"stall 504 after {elapsed:.2f} s")
