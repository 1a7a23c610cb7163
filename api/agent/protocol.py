"""Typed REST bodies and Socket.IO events of the agent dashboard (docs/agent-protocol.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.protocol import storable_text

AGENT_NAMESPACE = "/agent"
AgentMode = Literal["builtin", "pbx"]
Disposition = Literal["resolved", "follow-up", "escalated", "no-action"]


class ClientMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    """Every refusal of the REST API: a plain sentence to show the agent."""

    detail: str


class LoginIn(ClientMessage):
    login: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=200)


class AgentOut(BaseModel):
    id: int
    name: str
    extension: str
    state: str


class SessionOut(BaseModel):
    agent: AgentOut
    csrf_token: str
    mode: AgentMode


class SipCredentialsOut(BaseModel):
    ws_url: str
    sip_uri: str
    username: str
    password: str
    display_name: str


class DispositionIn(ClientMessage):
    disposition: Disposition
    notes: str = Field("", max_length=2000)

    # Notes with a NUL were lost in a failed save.
    _storable = field_validator("notes")(storable_text)


class DispositionOut(BaseModel):
    ok: bool = True
    state: str


class SetStateIn(ClientMessage):
    state: Literal["ready", "not-ready"]


class CallIn(ClientMessage):
    # Transfer ids are workflow ids ("conversation-<hex>-transfer-<n>"); the id is looked up
    # in PostgreSQL, whose text cannot hold the NUL a hostile client may send.
    transfer_id: str = Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9_.:-]+$")


class ToggleIn(CallIn):
    on: bool
