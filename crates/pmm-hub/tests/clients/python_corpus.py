"""Calls each case of a corpus through the official MCP Python SDK, one session, and prints
one JSON line per case: what the SDK reports (tool error with the hub's body, protocol error,
or success). Usage: python_corpus.py URL TOKEN CORPUS_JSON_FILE"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError


def outcome(result):
    text = "".join(getattr(c, "text", "") for c in result.content)
    # Field names changed case across SDK majors (isError in 1.x, is_error in 2.x).
    is_error = getattr(result, "is_error", None) or getattr(result, "isError", None)
    structured = getattr(result, "structured_content", getattr(result, "structuredContent", None))
    if is_error:
        try:
            body = json.loads(text)
        except ValueError:
            body = {"code": None, "message": text}
        return {
            "kind": "tool_error",
            "code": body.get("code"),
            "message": body.get("message"),
            "field": body.get("field"),
            "structured": structured is not None,
        }
    return {"kind": "ok"}


async def main(url, token, corpus_path):
    with open(corpus_path) as f:
        corpus = json.load(f)
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http, streamable_http_client(url, http_client=http) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            for i, case in enumerate(corpus):
                try:
                    out = outcome(await session.call_tool(case["tool"], case["args"]))
                except MCPError as e:
                    data = e.data if isinstance(e.data, dict) else {}
                    out = {"kind": "protocol_error", "rpc": e.code, "code": data.get("code"),
                           "message": e.message}
                except Exception as e:  # the SDK's own refusals (e.g. output validation)
                    out = {"kind": "exception", "message": f"{type(e).__name__}: {e}"}
                out["i"] = i
                print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
