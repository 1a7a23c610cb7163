"""Shared by the transfer tests: test tones, their pitch, and the call record of a call."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from convonet.db.models import CallRecord
from convonet.db.session import session_scope
from convonet.settings import Settings


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
