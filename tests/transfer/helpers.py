"""Shared by the transfer tests: test tones, their pitch, the call record of a call, and
settings that point Twilio mode at the stand-in."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from convonet.call_client import ScriptedCaller
from convonet.db.models import CallRecord
from convonet.db.session import session_scope
from convonet.settings import Settings
from tests.standins.twilio_server import TwilioStandIn
from tests.system import logged_in_caller

TWILIO_ACCOUNT = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "test-auth-token-" + "x" * 16


def twilio_settings(settings: Settings, standin: TwilioStandIn, **extra: object) -> Settings:
    """Twilio mode, against the stand-in, ringing extensions of pbx.example.test."""
    return settings.model_copy(
        update={
            "twilio_account_sid": TWILIO_ACCOUNT,
            "twilio_auth_token": TWILIO_TOKEN,
            "twilio_from_number": "+15550001111",
            "twilio_api_base_url": standin.base_url,
            "fusionpbx_domain": "pbx.example.test",
            **extra,
        }
    )


def tone(frequency: float, seconds: float, rate: int = 16_000, amplitude: float = 0.4) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16).tobytes()


def dominant_frequency(pcm: bytes, rate: int = 16_000) -> float:
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


async def call_record(settings: Settings, conversation_id: str) -> CallRecord:
    """The (first) call record of a conversation."""
    async with session_scope(settings.effective_database_url) as db:
        record = await db.scalar(
            select(CallRecord)
            .where(CallRecord.conversation_id == conversation_id)
            .order_by(CallRecord.id)
        )
        assert record is not None
        return record


async def start_transfer(url: str, department: str) -> tuple[ScriptedCaller, str]:
    """A caller logged in with the demo PIN who asked for `department`; and the conversation."""
    caller, conversation_id = await logged_in_caller(url)
    reply = await caller.say(f"transfer me to {department}")
    assert reply["state"] == "transferring", reply
    return caller, conversation_id
