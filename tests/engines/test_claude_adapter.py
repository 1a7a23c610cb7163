"""ClaudeModel through the real anthropic SDK against a local Messages API stand-in."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import uvicorn
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from convonet.agent.context import TurnContext
from convonet.agent.tool_specs import TOOLS_BY_NAME
from convonet.engines.llm.base import LlmError
from convonet.engines.llm.claude import ClaudeModel
from convonet.engines.llm.factory import chat_model
from convonet.settings import Settings, load_settings

API_KEY = "sk-ant-test-secret-123"
MODEL = "claude-test-model"


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    headers: dict[str, str]
    body: dict[str, Any]


class MessagesStandIn:
    """Speaks `POST /v1/messages`: checks the key, records requests, plays scripted replies."""

    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.seen: list[Seen] = []
        self.base_url = ""
        self.app = Starlette(routes=[Route("/v1/messages", self._messages, methods=["POST"])])

    async def _messages(self, request: Request) -> Response:
        body = await request.json()
        self.seen.append(Seen(dict(request.headers), body))
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if API_KEY not in (request.headers.get("x-api-key"), bearer):
            return JSONResponse(_error("authentication_error", "invalid x-api-key"), 401)
        reply = self.script.pop(0)
        if body.get("stream") and reply.status == 200:
            return StreamingResponse(_events(reply.body), media_type="text/event-stream")
        return JSONResponse(reply.body, reply.status, headers=reply.headers)


def _events(message: dict[str, Any]) -> Iterator[str]:
    """A message as the Messages API streams it: server-sent events, text word by word."""

    def event(kind: str, data: dict[str, Any]) -> str:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"

    yield event("message_start", {"message": {**message, "content": [], "stop_reason": None}})
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            yield event(
                "content_block_start",
                {"index": index, "content_block": {"type": "text", "text": ""}},
            )
            for word in block["text"].split(" "):
                delta = {"type": "text_delta", "text": word + " "}
                yield event("content_block_delta", {"index": index, "delta": delta})
        else:
            start = {**block, "input": {}}
            yield event("content_block_start", {"index": index, "content_block": start})
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            yield event("content_block_delta", {"index": index, "delta": delta})
        yield event("content_block_stop", {"index": index})
    yield event(
        "message_delta",
        {
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": 12},
        },
    )
    yield event("message_stop", {})


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def _message(content: list[dict[str, Any]], stop_reason: str) -> dict[str, Any]:
    return {
        "id": "msg_test_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 120, "output_tokens": 12},
    }


@pytest.fixture(scope="module")
def _server() -> Iterator[MessagesStandIn]:
    stand_in = MessagesStandIn()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    stand_in.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(stand_in.app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "stand-in server did not start"
        time.sleep(0.01)
    yield stand_in
    server.should_exit = True
    thread.join(timeout=5)
    sock.close()


@pytest.fixture
def stand_in(_server: MessagesStandIn) -> MessagesStandIn:
    _server.script.clear()
    _server.seen.clear()
    return _server


def _settings(stand_in: MessagesStandIn, api_key: str = API_KEY) -> Settings:
    return load_settings(
        convonet_env="test",
        anthropic_api_key=api_key,
        anthropic_model=MODEL,
        anthropic_base_url=stand_in.base_url,
    )


def _context() -> TurnContext:
    return TurnContext(
        conversation_id="conv-1",
        workflow_id="conversation-conv-1",
        turn=3,
        user_id=7,
        user_name="Alice Example",
        timezone="UTC",
        now_iso=datetime.now(UTC).isoformat(),
    )


def _system_text(body: dict[str, Any]) -> str:
    system = body["system"]
    if isinstance(system, str):
        return system
    return "".join(block["text"] for block in system)


async def test_tool_use_becomes_tool_call_and_request_carries_prompt_tools_and_key(
    stand_in: MessagesStandIn,
) -> None:
    # Args are passed through untouched, even ones the tool layer will reject.
    args = {"title": "buy milk", "priority": "whenever"}
    stand_in.script.append(
        Reply(
            200,
            _message(
                [
                    {"type": "text", "text": "Adding it."},
                    {"type": "tool_use", "id": "toolu_01abc", "name": "create_todo", "input": args},
                ],
                "tool_use",
            ),
        )
    )
    specs = [TOOLS_BY_NAME["create_todo"], TOOLS_BY_NAME["list_todos"]]
    context = _context()

    reply = await ClaudeModel(_settings(stand_in)).respond(
        [HumanMessage("add buy milk to my list")], specs, context
    )

    assert isinstance(reply, AIMessage)
    assert len(reply.tool_calls) == 1
    call = reply.tool_calls[0]
    assert (call["name"], call["args"], call["id"]) == ("create_todo", args, "toolu_01abc")

    (seen,) = stand_in.seen
    headers = seen.headers
    assert headers.get("x-api-key") == API_KEY or headers.get("authorization") == (
        f"Bearer {API_KEY}"
    )
    body = seen.body
    assert body["model"] == MODEL
    assert body["max_tokens"] == 400
    system = _system_text(body)
    assert "Alice Example" in system
    assert datetime.fromisoformat(context.now_iso).strftime("%Y-%m-%d") in system
    assert [(t["name"], t["description"], t["input_schema"]) for t in body["tools"]] == [
        (spec.name, spec.description, spec.json_schema()) for spec in specs
    ]
    assert body["messages"] == [{"role": "user", "content": "add buy milk to my list"}]


async def test_text_reply_becomes_content_and_history_is_sent(stand_in: MessagesStandIn) -> None:
    stand_in.script.append(
        Reply(200, _message([{"type": "text", "text": "You have two open todos."}], "end_turn"))
    )
    history = [
        HumanMessage("what's on my list"),
        AIMessage(
            "",
            tool_calls=[{"name": "list_todos", "args": {}, "id": "toolu_02", "type": "tool_call"}],
        ),
        ToolMessage(
            '[{"id": 1, "title": "milk"}, {"id": 2, "title": "bread"}]', tool_call_id="toolu_02"
        ),
    ]

    reply = await ClaudeModel(_settings(stand_in)).respond(
        history, [TOOLS_BY_NAME["list_todos"]], _context()
    )

    assert reply.text == "You have two open todos."
    assert reply.tool_calls == []
    sent = stand_in.seen[0].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert any(b.get("type") == "tool_use" and b["id"] == "toolu_02" for b in sent[1]["content"])
    assert sent[2]["content"][0]["type"] == "tool_result"
    assert sent[2]["content"][0]["tool_use_id"] == "toolu_02"


async def test_rate_limit_is_retried_then_succeeds(stand_in: MessagesStandIn) -> None:
    stand_in.script += [
        Reply(429, _error("rate_limit_error", "slow down"), {"retry-after-ms": "10"}),
        Reply(200, _message([{"type": "text", "text": "Done."}], "end_turn")),
    ]

    reply = await ClaudeModel(_settings(stand_in)).respond([HumanMessage("hi")], [], _context())

    assert reply.text == "Done."
    assert len(stand_in.seen) == 2


async def test_persistent_server_error_raises_llm_error(stand_in: MessagesStandIn) -> None:
    stand_in.script += [
        Reply(500, _error("api_error", "boom"), {"retry-after-ms": "10"}) for _ in range(4)
    ]

    with pytest.raises(LlmError) as caught:
        await ClaudeModel(_settings(stand_in)).respond([HumanMessage("hi")], [], _context())

    assert len(stand_in.seen) == 4  # the first try and three retries
    assert "500" in str(caught.value)
    assert API_KEY not in str(caught.value)


async def test_bad_key_raises_llm_error_without_the_key(stand_in: MessagesStandIn) -> None:
    wrong_key = "sk-ant-wrong-key-456"

    with pytest.raises(LlmError) as caught:
        await ClaudeModel(_settings(stand_in, wrong_key)).respond(
            [HumanMessage("hi")], [], _context()
        )

    assert len(stand_in.seen) == 1  # auth failures are not retried
    assert "401" in str(caught.value)
    assert wrong_key not in str(caught.value)


def test_factory_picks_claude_when_a_key_is_set(stand_in: MessagesStandIn) -> None:
    assert chat_model(_settings(stand_in)).name == "claude"


async def test_streamed_reply_hands_text_over_as_it_arrives(stand_in: MessagesStandIn) -> None:
    stand_in.script.append(
        Reply(
            200,
            _message(
                [
                    {"type": "text", "text": "Adding it now."},
                    {
                        "type": "tool_use",
                        "id": "toolu_03",
                        "name": "create_todo",
                        "input": {"title": "buy milk"},
                    },
                ],
                "tool_use",
            ),
        )
    )
    pieces: list[str] = []

    async def collect(text: str) -> None:
        pieces.append(text)

    reply = await ClaudeModel(_settings(stand_in)).respond(
        [HumanMessage("add buy milk")], [TOOLS_BY_NAME["create_todo"]], _context(), on_text=collect
    )

    assert stand_in.seen[0].body["stream"] is True
    assert len(pieces) == 3, "text arrives word by word, not at the end"
    assert "".join(pieces).strip() == "Adding it now."
    assert reply.text.strip() == "Adding it now."
    (call,) = reply.tool_calls
    assert (call["name"], call["args"], call["id"]) == (
        "create_todo",
        {"title": "buy milk"},
        "toolu_03",
    )
