"""The Twilio side of the bridge: a bidirectional Media Stream carrying 8 kHz mu-law,
converted to and from the caller's 16 kHz PCM.

Outgoing audio is paced by Twilio's playback: a `mark` follows every frame we send and
comes back when it has played; if more than a little is waiting to play, the backlog is
cleared, so the delay never grows."""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field

from starlette.websockets import WebSocket

from convonet.speech import mulaw
from convonet.speech.telephony import Downsampler, Upsampler

log = logging.getLogger("convonet.api.twilio")

# Marks still unplayed beyond this (x 20 ms) mean audio is piling up at Twilio.
MAX_UNPLAYED_MARKS = 10


@dataclass
class TwilioMediaTransport:
    websocket: WebSocket
    stream_sid: str
    _down: Downsampler = field(default_factory=Downsampler)
    _up: Upsampler = field(default_factory=Upsampler)
    _sent_marks: int = 0
    _played_marks: int = 0
    clears: int = 0

    def inbound(self, payload_b64: str) -> bytes:
        """An agent frame from Twilio as 16 kHz PCM."""
        return self._up(mulaw.decode(base64.b64decode(payload_b64)))

    def played(self) -> None:
        self._played_marks += 1

    async def outbound(self, pcm16: bytes) -> None:
        """Sends a caller frame to Twilio, dropping Twilio's backlog if it is behind."""
        if self._sent_marks - self._played_marks > MAX_UNPLAYED_MARKS:
            await self.websocket.send_text(
                json.dumps({"event": "clear", "streamSid": self.stream_sid})
            )
            self._played_marks = self._sent_marks
            self.clears += 1
        pcm8 = self._down(pcm16)
        payload = base64.b64encode(mulaw.encode(pcm8)).decode()
        await self.websocket.send_text(
            json.dumps(
                {"event": "media", "streamSid": self.stream_sid, "media": {"payload": payload}}
            )
        )
        self._sent_marks += 1
        await self.websocket.send_text(
            json.dumps(
                {
                    "event": "mark",
                    "streamSid": self.stream_sid,
                    "mark": {"name": str(self._sent_marks)},
                }
            )
        )
