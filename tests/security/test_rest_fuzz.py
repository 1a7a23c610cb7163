"""The REST API fuzzed from its own OpenAPI spec (schemathesis): no request, valid or not,
with or without an agent session, gets a 5xx, an answer the spec does not describe, or a
refusal without a plain sentence; and a refused request changes nothing.

Three kinds of requests per operation: schemathesis' coverage cases (boundaries, wrong
types, unexpected methods and content types), its random positive and negative cases, and
a matrix of hostile values (NUL, lone surrogates, out-of-range numbers, ...) put into each
field of a valid request in turn, which random generation hits too rarely to rely on.

The real API runs on uvicorn in the test's event loop; the fuzzer is synchronous (requests),
so it runs in a thread while the loop serves it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import hypothesis
import hypothesis.errors
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, CheckContext, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Ok
from schemathesis.openapi import from_url
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from api.agent.sessions import COOKIE, CSRF_HEADER
from convonet.db.models import Agent, AgentState, CallRecord, User
from convonet.db.session import session_scope
from convonet.seed import seed
from convonet.settings import Settings
from tests.system import running_system

MAX_EXAMPLES = 40  # random cases per operation, generation mode and session
TWILIO_TOKEN = "fuzz-twilio-token"
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
# Values that have broken handlers before: PostgreSQL refuses NUL, JSON encoders refuse lone
# surrogates, the id columns are 32-bit, compare_digest refuses non-ASCII text.
HOSTILE_TEXT = [
    "\x00",
    "a\x00b",
    "\ud800",
    "\udfff\ud800",
    "é" * 3,
    "😀" * 40,
    "\u202e\u2028",
    "' OR '1'='1' --",
    "%00%ff",
    "../../etc/passwd",
    " ",
    "x" * 5000,
]
HOSTILE_NUMBERS: list[Any] = [0, -1, 2**31, 2**63, -(2**63) - 1, 10**30, 1.5, "1e400", "NaN"]
# Headers and cookies travel as Latin-1 (control characters uvicorn itself refuses).
HOSTILE_HEADER = ["é", "ÿ" * 200, "' OR '1'='1", "x" * 4000]


def plain_refusal(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """A refusal says why in one sentence (`detail` a string), as the dashboard shows it."""
    types = [v for k, vs in response.headers.items() if k.lower() == "content-type" for v in vs]
    if 400 <= response.status_code < 500 and types and types[0].startswith("application/json"):
        body = response.json()
        detail = body.get("detail") if isinstance(body, dict) else None
        if not isinstance(detail, str) or not detail:
            raise AssertionError(f"{response.status_code} without a plain detail: {response.text}")
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    plain_refusal,
]


@dataclass(frozen=True)
class Records:
    """Call records the requests are steered to: dana's ended and ringing calls, and one
    no agent took (which dana must never be able to touch)."""

    ended: int
    ringing: int
    foreign: int
    ringing_conversation: str


@dataclass(frozen=True)
class Session:
    cookie: str
    csrf: str


@dataclass
class Found:
    problems: dict[str, str] = field(default_factory=dict)
    requests: int = 0

    def add(self, where: str, report: str) -> None:
        # One report per operation and kind of failure (the lines naming the checks).
        kinds = [line for line in report.splitlines() if line.startswith("- ")]
        self.problems.setdefault(f"{where} {kinds}", f"{where}: {report}")


@dataclass
class Fuzzer:
    url: str
    records: Records
    session: Session | None
    found: Found = field(default_factory=Found)

    def send(self, case: Case, where: str, real_csrf: bool = True) -> None:
        headers: dict[str, str] = {}
        cookies: dict[str, str] = {}
        if self.session is not None:
            cookies[COOKIE] = self.session.cookie
            # Now and then the case's own token instead, so the CSRF check meets junk too.
            if real_csrf or CSRF_HEADER not in (case.headers or {}):
                headers[CSRF_HEADER] = self.session.csrf
        try:
            if case.path.startswith("/twilio/") and isinstance(case.body, dict):
                # Signed like Twilio's own callbacks, so the handler gets past the signature.
                params = {str(k): str(v) for k, v in case.body.items()}
                target = self.url + case.formatted_path
                headers["X-Twilio-Signature"] = RequestValidator(TWILIO_TOKEN).compute_signature(
                    target, params
                )
            response = case.call(base_url=self.url, headers=headers, cookies=cookies, timeout=15)
        except (UnicodeError, ValueError):
            return  # not even a client can put this on the wire (a surrogate in a URL)
        self.found.requests += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (AssertionError, Failure, FailureGroup) as error:
            # Recorded, not raised: the run goes on and finds every distinct problem.
            self.found.add(where, str(error))

    def steered(self, operation: APIOperation) -> list[dict[str, Any]]:
        """Strategy arguments that point a request at rows that exist."""
        if "call_record_id" in operation.path:
            ids = (self.records.ended, self.records.ringing, self.records.foreign)
            return [{"path_parameters": {"call_record_id": id_}} for id_ in ids]
        if operation.path.endswith("/calls/lookup"):
            return [{"query": {"conversation_id": self.records.ringing_conversation}}]
        return []

    def coverage(self, operation: APIOperation) -> None:
        schema = operation.schema
        generation = schema.config.generation_for(operation=operation)
        for case in schema.iter_coverage_cases(
            operation, generation_modes=MODES, generation_config=generation
        ):
            self.send(case, f"{operation.label} [coverage]")

    def random(self, operation: APIOperation) -> None:
        has_inputs = bool(list(operation.iter_parameters())) or bool(operation.body)
        for mode in MODES if has_inputs else MODES[:1]:
            strategy = st.one_of(
                operation.as_strategy(generation_mode=mode),
                *(
                    operation.as_strategy(generation_mode=mode, **steer)
                    for steer in self.steered(operation)
                ),
            )
            where = f"{operation.label} [{mode.value}]"
            try:
                self.explore(strategy, where)
            except hypothesis.errors.Unsatisfiable:
                # Every input of the operation is free text: there is nothing invalid to send.
                assert mode is GenerationMode.NEGATIVE, where

    def explore(self, strategy: st.SearchStrategy[Case], where: str) -> None:
        @hypothesis.settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy, real_csrf=st.booleans())
        def run(case: Case, real_csrf: bool) -> None:
            self.send(case, where, real_csrf)

        run()

    def hostile(self, operation: APIOperation) -> None:
        """A valid request with one field at a time replaced by each hostile value."""
        base = _first_valid(operation)
        assert base is not None, f"no valid request of {operation.label}"
        for steer in self.steered(operation)[:1]:  # dana's ended call, or her ringing one
            base.path_parameters.update(steer.get("path_parameters", {}))
            base.query.update(steer.get("query", {}))
        for location, name, values in _fields(base):
            for value in values:
                case = base.derive()
                container: dict[str, Any] = (
                    case.body if location == "body" else getattr(case, location)  # type: ignore[assignment]
                )
                container[name] = value
                where = f"{operation.label} [hostile {location} {name}]"
                self.send(case, where, real_csrf=name != CSRF_HEADER)


def _first_valid(operation: APIOperation) -> Case | None:
    schema = operation.schema
    generation = schema.config.generation_for(operation=operation)
    cases = schema.iter_coverage_cases(
        operation, generation_modes=[GenerationMode.POSITIVE], generation_config=generation
    )
    return next(iter(cases), None)


def _fields(case: Case) -> Iterator[tuple[str, str, list[Any]]]:
    operation = case.operation
    for parameter in operation.iter_parameters():
        location = {"path": "path_parameters", "header": "headers", "cookie": "cookies"}.get(
            parameter.location, parameter.location
        )
        if location in ("headers", "cookies"):
            yield location, parameter.name, HOSTILE_HEADER
        elif location == "path_parameters":
            # A "/" in a path makes it another URL, whose answer is not this operation's.
            values = [v for v in HOSTILE_TEXT + HOSTILE_NUMBERS if "/" not in str(v)]
            yield location, parameter.name, values
        else:
            yield location, parameter.name, HOSTILE_TEXT + HOSTILE_NUMBERS
    if isinstance(case.body, dict):
        for name in list(case.body):
            yield "body", name, HOSTILE_TEXT + HOSTILE_NUMBERS


def _fuzz(url: str, records: Records, session: Session | None) -> Found:
    fuzzer = Fuzzer(url, records, session)
    operations = []
    for result in from_url(url + "/openapi.json").get_all_operations():
        assert isinstance(result, Ok), f"the spec does not load: {result.err()}"
        operations.append(result.ok())
    # Logging out ends the session the other operations are fuzzed with: it goes last.
    operations.sort(key=lambda operation: operation.path.endswith("/logout"))
    for operation in operations:
        fuzzer.coverage(operation)
        fuzzer.random(operation)
        fuzzer.hostile(operation)
    return fuzzer.found


async def _records(settings: Settings) -> Records:
    async with session_scope(settings.effective_database_url) as db:
        dana = await db.scalar(select(Agent).where(Agent.login == "dana"))
        alice = await db.scalar(select(User).where(User.email == "alice@example.com"))
        assert dana is not None and alice is not None
        dana.state = AgentState.WRAP_UP
        ended = CallRecord(
            conversation_id="conv-ended", user_id=alice.id, agent_id=dana.id, state="ended"
        )
        ringing = CallRecord(
            conversation_id="conv-ringing",
            user_id=alice.id,
            agent_id=dana.id,
            state="ringing",
            transfer_id="transfer-conv-ringing-1",
            summary="Alice wants a person.",
            transcript=[{"role": "user", "text": "transfer me"}],
        )
        foreign = CallRecord(
            conversation_id="conv-foreign", user_id=alice.id, state="ended", notes="keep me"
        )
        db.add_all([ended, ringing, foreign])
        await db.flush()
        return Records(ended.id, ringing.id, foreign.id, ringing.conversation_id)


async def _log_in(url: str) -> Session:
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.post(
            "/api/agent/login", json={"login": "dana", "password": "agent-demo-2001"}
        )
        response.raise_for_status()
        return Session(response.cookies[COOKIE], response.json()["csrf_token"])


async def _refused_save_keeps_the_saved_notes(
    settings: Settings, url: str, session: Session, record: int
) -> None:
    async with httpx.AsyncClient(
        base_url=url, cookies={COOKIE: session.cookie}, headers={CSRF_HEADER: session.csrf}
    ) as http:
        path = f"/api/agent/calls/{record}/disposition"
        saved = await http.post(path, json={"disposition": "follow-up", "notes": "Call Monday."})
        assert saved.status_code == 200, saved.text
        refused = await http.post(path, json={"disposition": "resolved", "notes": "a\x00b"})
        assert refused.status_code == 422
        assert refused.json() == {
            "detail": "The request is not valid: notes: must not contain NUL characters."
        }
        me = await http.get("/api/agent/me")
        assert me.status_code == 200, "a refused request leaves the session alone"
    async with session_scope(settings.effective_database_url) as db:
        kept = await db.get(CallRecord, record)
    assert kept is not None and (kept.disposition, kept.notes) == ("follow-up", "Call Monday.")


async def test_fuzzed_requests_get_no_server_error(settings: Settings) -> None:
    started = time.monotonic()
    settings = settings.model_copy(update={"twilio_auth_token": TWILIO_TOKEN})
    await seed(settings)
    records = await _records(settings)
    async with running_system(settings, with_worker=False) as system:
        session = await _log_in(system.url)
        await _refused_save_keeps_the_saved_notes(settings, system.url, session, records.ended)
        # Logged in before any fuzzing: fuzzed wrong passwords soon lock this address out.
        signed_in = await asyncio.to_thread(_fuzz, system.url, records, session)
        anonymous = await asyncio.to_thread(_fuzz, system.url, records, None)
    print(
        f"\n{signed_in.requests} requests with a session, {anonymous.requests} without, "
        f"{time.monotonic() - started:.1f} s"
    )
    problems = [*signed_in.problems.values(), *anonymous.problems.values()]
    assert not problems, "\n\n".join(problems)

    async with session_scope(settings.effective_database_url) as db:
        foreign = await db.get(CallRecord, records.foreign)
        ended = await db.get(CallRecord, records.ended)
    # What no request of dana's may change: the record of a call she never took.
    assert foreign is not None
    assert (foreign.disposition, foreign.notes) == (None, "keep me")
    # Whatever the fuzzer saved last is a disposition that exists.
    assert ended is not None and ended.disposition in (
        "resolved",
        "follow-up",
        "escalated",
        "no-action",
    )
