"""The agent dashboard's REST side: login and logout, who am I, SIP credentials for the
softphone, caller look-up for a ringing SIP call, and the disposition after a call."""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import APIKeyCookie
from sqlalchemy import select

from api.agent.protocol import (
    AgentMode,
    AgentOut,
    DispositionIn,
    DispositionOut,
    ErrorOut,
    LoginIn,
    SessionOut,
    SipCredentialsOut,
)
from api.agent.sessions import COOKIE, CSRF_HEADER, AgentSession, AgentSessions
from api.services import EdgeServices
from convonet import events
from convonet.db.models import Agent, AgentState, CallRecord
from convonet.db.session import session_scope
from convonet.screen_pop import ScreenPop
from convonet.security import verify_password
from convonet.services import transfers
from convonet.services.matching import is_row_id

CONVERSATION_ID = r"^[A-Za-z0-9_-]{1,64}$"
# What each refusal means, so the spec lists every status a handler can answer with.
_REFUSALS = {
    400: "The body could not be read.",
    401: "Not logged in, or the session has ended.",
    403: "The CSRF token is missing or wrong.",
    404: "Nothing of that kind for this agent.",
    409: "Not possible in the current state.",
    422: "The request is not valid; the detail says what is wrong.",
    429: "Too many wrong passwords from this address.",
}
# Where pydantic says a problem is; the part that names the request's section is noise.
_SECTIONS = {"body", "query", "path", "header", "cookie"}


def _refusals(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut, "description": _REFUSALS[code]} for code in (*codes, 422)}


def plain_validation_error(error: RequestValidationError) -> str:
    """One sentence for the dashboard. The input is never echoed: it may hold anything, even
    lone surrogates that no JSON encoder can write (FastAPI's own 422 then fails with 500)."""
    problems = []
    for item in error.errors()[:3]:
        if item["type"] == "json_invalid":
            problems.append("the body is not valid JSON")
            continue
        where = ".".join(str(part)[:40] for part in item["loc"] if part not in _SECTIONS)
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    text = "The request is not valid: " + "; ".join(problems) + "."
    return text.encode("utf-8", "replace").decode("utf-8")


class PlainErrors(APIRoute):
    """Answers a request that fails validation with a plain `detail` string (ErrorOut)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as error:
                return JSONResponse({"detail": plain_validation_error(error)}, status_code=422)

        return handle


router = APIRouter(prefix="/api/agent", tags=["agent dashboard"], route_class=PlainErrors)
# A security scheme, so the spec (and what is generated from it) knows a request needs it.
session_cookie = APIKeyCookie(name=COOKIE, auto_error=False, description="Set by the login.")


def _services(request: Request) -> EdgeServices:
    services: EdgeServices = request.app.state.services
    return services


def _sessions(request: Request) -> AgentSessions:
    return AgentSessions(_services(request).settings, _services(request).redis)


def mode_of(services: EdgeServices) -> AgentMode:
    return "pbx" if services.settings.fusionpbx_wss_url else "builtin"


async def current_agent(
    request: Request, token: Annotated[str | None, Security(session_cookie)]
) -> AgentSession:
    session = await _sessions(request).get(token)
    if session is None:
        raise HTTPException(status_code=401, detail="Please log in.")
    return session


async def csrf_checked(
    session: Annotated[AgentSession, Depends(current_agent)],
    presented: Annotated[
        str | None, Header(alias=CSRF_HEADER, description="The login's csrf_token.")
    ] = None,
) -> AgentSession:
    """State-changing requests must echo the CSRF token the login returned."""
    # compare_digest raises on non-ASCII text; such a header is simply wrong.
    if presented is None or not presented.isascii() or not session.csrf_ok(presented):
        raise HTTPException(status_code=403, detail="Missing or wrong CSRF token.")
    return session


Agentish = Annotated[AgentSession, Depends(current_agent)]
Checked = Annotated[AgentSession, Depends(csrf_checked)]


async def _agent(services: EdgeServices, agent_id: int) -> Agent:
    async with session_scope(services.settings.effective_database_url) as db:
        agent = await db.get(Agent, agent_id)
    if agent is None:
        raise HTTPException(status_code=401, detail="Please log in.")
    return agent


def _out(agent: Agent) -> AgentOut:
    return AgentOut(
        id=agent.id, name=agent.name, extension=agent.sip_extension, state=agent.state.value
    )


@router.post("/login", response_model=SessionOut, responses=_refusals(400, 401, 429))
async def login(body: LoginIn, request: Request, response: Response) -> SessionOut:
    services = _services(request)
    sessions = _sessions(request)
    address = request.client.host if request.client else "unknown"
    if await sessions.locked_out(address):
        raise HTTPException(status_code=429, detail="Too many wrong passwords. Try again later.")
    agent = None
    # PostgreSQL text cannot hold NUL, so no agent has such a login (and asking would fail).
    if "\x00" not in body.login:
        async with session_scope(services.settings.effective_database_url) as db:
            agent = await db.scalar(select(Agent).where(Agent.login == body.login))
    if agent is None or not verify_password(body.password, agent.password_hash):
        await sessions.failed(address)
        raise HTTPException(status_code=401, detail="Wrong login or password.")
    await sessions.succeeded(address)
    token, session = await sessions.create(agent.id)
    response.set_cookie(
        COOKIE,
        token,
        max_age=services.settings.agent_session_ttl_s,
        httponly=True,
        samesite="strict",
        secure=sessions.secure_cookie,
        path="/",
    )
    return SessionOut(agent=_out(agent), csrf_token=session.csrf_token, mode=mode_of(services))


@router.get("/me", response_model=SessionOut, responses=_refusals(401))
async def me(session: Agentish, request: Request) -> SessionOut:
    services = _services(request)
    agent = await _agent(services, session.agent_id)
    return SessionOut(agent=_out(agent), csrf_token=session.csrf_token, mode=mode_of(services))


@router.post("/logout", status_code=204, responses=_refusals(401, 403))
async def logout(_: Checked, request: Request, response: Response) -> Response:
    await _sessions(request).delete(request.cookies.get(COOKIE))
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/sip", response_model=SipCredentialsOut, responses=_refusals(401, 404, 409))
async def sip_credentials(session: Agentish, request: Request) -> SipCredentialsOut:
    """The softphone's registration, handed over only to the logged-in agent, only in PBX
    mode: credentials never live in the page's code."""
    services = _services(request)
    settings = services.settings
    if not settings.fusionpbx_wss_url:
        raise HTTPException(status_code=404, detail="Built-in mode: there is no SIP phone.")
    agent = await _agent(services, session.agent_id)
    if not settings.fusionpbx_domain or not agent.sip_password:
        # Said now, rather than as a registration failure in the browser.
        raise HTTPException(
            status_code=409,
            detail="Your SIP account is not set up (FUSIONPBX_DOMAIN or the agent's SIP "
            "password is missing); ask an administrator.",
        )
    username = agent.sip_username or agent.sip_extension
    domain = settings.fusionpbx_domain
    return SipCredentialsOut(
        ws_url=settings.fusionpbx_wss_url,
        sip_uri=f"sip:{username}@{domain}",
        username=username,
        password=agent.sip_password,
        display_name=agent.name,
    )


@router.get("/calls/lookup", response_model=ScreenPop, responses=_refusals(401, 404))
async def lookup(session: Agentish, request: Request, conversation_id: str) -> ScreenPop:
    """Who is calling, for a softphone ringing with the conversation id in its SIP header.
    Only the agent the call is offered to may look."""
    services = _services(request)
    if not _valid_conversation_id(conversation_id):
        raise HTTPException(status_code=422, detail="That is not a conversation id.")
    async with session_scope(services.settings.effective_database_url) as db:
        record = await transfers.ringing_for_agent(db, session.agent_id, conversation_id)
        if record is None:
            raise HTTPException(status_code=404, detail="No call of that conversation for you.")
        return await transfers.screen_pop(db, record, services.settings.transfer_ring_timeout_s)


@router.post(
    "/calls/{call_record_id}/disposition",
    response_model=DispositionOut,
    responses=_refusals(400, 401, 403, 404, 409),
)
async def disposition(
    call_record_id: int, body: DispositionIn, session: Checked, request: Request
) -> DispositionOut:
    services = _services(request)
    if not is_row_id(call_record_id):  # beyond the id column's range: no such row either
        raise HTTPException(status_code=404, detail="No such call of yours.")
    async with session_scope(services.settings.effective_database_url) as db:
        record = await db.get(CallRecord, call_record_id)
        if record is None or record.agent_id != session.agent_id:
            raise HTTPException(status_code=404, detail="No such call of yours.")
        if record.state not in ("ended", "failed"):
            raise HTTPException(status_code=409, detail="The call is still going on.")
        record.disposition = body.disposition
        record.notes = body.notes
        record.dispositioned_at = datetime.now(UTC)
        agent = await db.get(Agent, session.agent_id)
        assert agent is not None
        if agent.state == AgentState.WRAP_UP:
            agent.state = AgentState.READY
        state = agent.state.value
    await events.publish(
        services.redis, events.agent_channel(session.agent_id), events.AgentStateEvent(state=state)
    )
    return DispositionOut(state=state)


def _valid_conversation_id(value: str) -> bool:
    return re.fullmatch(CONVERSATION_ID, value) is not None
