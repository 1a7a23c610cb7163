"""The agent dashboard's REST side: login and logout, who am I, SIP credentials for the
softphone, caller look-up for a ringing SIP call, and the disposition after a call."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from sqlalchemy import select

from api.agent.protocol import (
    AgentMode,
    AgentOut,
    DispositionIn,
    DispositionOut,
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

router = APIRouter(prefix="/api/agent", tags=["agent dashboard"])
CONVERSATION_ID = r"^[A-Za-z0-9_-]{1,64}$"


def _services(request: Request) -> EdgeServices:
    services: EdgeServices = request.app.state.services
    return services


def _sessions(request: Request) -> AgentSessions:
    return AgentSessions(_services(request).settings, _services(request).redis)


def mode_of(services: EdgeServices) -> AgentMode:
    return "pbx" if services.settings.fusionpbx_wss_url else "builtin"


async def current_agent(request: Request) -> AgentSession:
    session = await _sessions(request).get(request.cookies.get(COOKIE))
    if session is None:
        raise HTTPException(status_code=401, detail="Please log in.")
    return session


async def csrf_checked(
    request: Request, session: Annotated[AgentSession, Depends(current_agent)]
) -> AgentSession:
    """State-changing requests must echo the CSRF token the login returned."""
    if not session.csrf_ok(request.headers.get(CSRF_HEADER)):
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


@router.post("/login", response_model=SessionOut)
async def login(body: LoginIn, request: Request, response: Response) -> SessionOut:
    services = _services(request)
    sessions = _sessions(request)
    address = request.client.host if request.client else "unknown"
    if await sessions.locked_out(address):
        raise HTTPException(status_code=429, detail="Too many wrong passwords. Try again later.")
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


@router.get("/me", response_model=SessionOut)
async def me(session: Agentish, request: Request) -> SessionOut:
    services = _services(request)
    agent = await _agent(services, session.agent_id)
    return SessionOut(agent=_out(agent), csrf_token=session.csrf_token, mode=mode_of(services))


@router.post("/logout", status_code=204)
async def logout(_: Checked, request: Request, response: Response) -> Response:
    await _sessions(request).delete(request.cookies.get(COOKIE))
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/sip", response_model=SipCredentialsOut)
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


@router.get("/calls/lookup", response_model=ScreenPop)
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


@router.post("/calls/{call_record_id}/disposition", response_model=DispositionOut)
async def disposition(
    call_record_id: int, body: DispositionIn, session: Checked, request: Request
) -> DispositionOut:
    services = _services(request)
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
