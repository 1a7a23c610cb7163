"""Speech activities: transcribe an utterance from its Redis stream, speak a reply into one.

Audio never crosses the activity boundary: inputs and results are ids, text and small facts.
Both activities heartbeat their stream offsets, so a retry after a worker crash loses no
audio: the transcriber re-reads the utterance, which Redis keeps whole, and the speaker
resumes after the last frame it wrote (recorded in Redis with the audio), so nothing is
said twice either.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic import BaseModel
from temporalio import activity

from activities import faults, runtime
from activities.models import (
    ReplyTextInput,
    SpeakInput,
    SpeakResult,
    SpokenSentence,
    TranscribeInput,
    TranscribeResult,
)
from convonet.db.session import session_scope
from convonet.speech import streams
from convonet.speech import timings as marks
from convonet.speech.audio import FRAME_BYTES, FRAME_MS, duration_ms
from convonet.speech.sentences import SentenceBuffer
from convonet.speech.vocabulary import load_vocabulary
from workflows.conversation.models import MAX_TURN_CHARS

READ_BLOCK_MS = 500
READ_COUNT = 100
# The transcriber reads a frame or two per read while the caller talks; each heartbeat is a
# payload conversion and a call into the SDK's core, so it sends one at most this often
# (the heartbeat timeout is seconds; core sends them to the server even less often).
HEARTBEAT_EVERY_S = 0.5
# Reply frames written per round trip (a second of audio).
FRAMES_PER_WRITE = 50
# How long a stream may stay silent before the writer is presumed gone.
STALL_S = 15.0


class _TranscribeProgress(BaseModel):
    """Heartbeat details: how far the attempt had read.

    A recognizer cannot restore a half-decoded utterance, so a retry decodes it again from
    its first frame; the stream keeps every frame until it expires, so nothing is lost.
    """

    read_to: str = "0-0"


def _progress(model: type[BaseModel]) -> Any:
    details = activity.info().heartbeat_details
    if details:
        try:
            return model.model_validate(details[0])
        except (TypeError, ValueError):
            activity.logger.warning("ignoring unreadable heartbeat details")
    return model()


def _decode(value: bytes | None) -> str:
    return value.decode() if value else ""


@activity.defn
async def transcribe(request: TranscribeInput) -> TranscribeResult:
    rt = runtime.current()
    redis, ttl = rt.streams, rt.settings.audio_stream_ttl_s
    progress: _TranscribeProgress = _progress(_TranscribeProgress)
    if activity.info().attempt > 1:
        activity.logger.info(
            "re-reading utterance %s (the last attempt had read to %s)",
            request.turn_key,
            progress.read_to,
        )
    async with session_scope(rt.settings.effective_database_url) as session:
        vocabulary = await load_vocabulary(session, request.user_id)
    source = streams.key(request.conversation_id, request.turn_key, "in")
    results = streams.StreamWriter(
        redis, streams.key(request.conversation_id, request.turn_key, "stt"), ttl
    )
    recognition = await rt.recognizer.open(vocabulary)
    busy = _Busy()
    audio_bytes = 0
    last_id = "0-0"
    idle_since = time.monotonic()
    beaten_at = 0.0
    timing = streams.key(request.conversation_id, request.turn_key, "timing")
    speech_end: asyncio.Task[Any] | None = None
    try:
        finished = False
        while not finished:
            entries = await streams.read(redis, source, last_id, READ_BLOCK_MS, READ_COUNT)
            if time.monotonic() - beaten_at >= HEARTBEAT_EVERY_S:
                beaten_at = time.monotonic()
                activity.heartbeat(_TranscribeProgress(read_to=last_id).model_dump())
            if not entries:
                if time.monotonic() - idle_since > STALL_S:
                    activity.logger.warning("utterance %s stalled; using what arrived", source)
                    break
                continue
            idle_since = time.monotonic()
            for entry_id, fields in entries:
                last_id = entry_id
                if b"end" in fields:
                    finished = True
                    break
                pcm = fields.get(b"pcm", b"")
                audio_bytes += len(pcm)
                with busy:
                    interim = await recognition.feed(pcm)
                if interim:
                    await results.add({"type": "interim", "text": interim})
        ended_at = time.time()
        # The edge marks the end of speech before it writes the end entry; read while the
        # recognizer finishes, so the final transcript waits on no extra round trip.
        speech_end = asyncio.ensure_future(redis.hget(timing, marks.SPEECH_END))
        with busy:
            text = await recognition.finish()
    finally:
        if speech_end is not None and not speech_end.done():
            speech_end.cancel()
        await recognition.aclose()
    text = " ".join(text.split())[:MAX_TURN_CHARS]
    # The recognizer's own share of "end of speech to final transcript": its work after the
    # edge marked the end of speech (or, without that mark, after the end was read).
    assert speech_end is not None  # the loop above ended without raising
    edge_end = await speech_end
    engine_ms = busy.ms_after(int(edge_end) / 1000 if edge_end else ended_at)
    # One round trip: the figures (first writer wins, so a retry keeps the first attempt's),
    # then the final transcript, so the marks are there when the edge relays it.
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hsetnx(timing, marks.STT_FINAL, streams.now_ms())
        pipe.hsetnx(timing, marks.STT_ENGINE, engine_ms)
        pipe.expire(timing, ttl)
        results.queue(pipe, {"type": "final", "text": text})
        await pipe.execute()
    return TranscribeResult(text=text, audio_ms=duration_ms(audio_bytes))


class _Busy:
    """Wall-clock spans spent inside an engine's calls (`with busy: await engine...`)."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.time()

    def __exit__(self, *_: object) -> None:
        self.spans.append((self._started, time.time()))

    def ms_after(self, since: float) -> int:
        """Milliseconds of engine work after the epoch second `since`."""
        return round(sum(max(0.0, end - max(start, since)) for start, end in self.spans) * 1000)


class _SpeakProgress(BaseModel):
    """How far the speaker got: the text consumed and the audio already written.

    Recorded in Redis with every write of audio, in the same transaction, so a retry after
    a crash resumes exactly after the last frame the caller was sent (heartbeat details can
    lag a crash by seconds: a retry from them would say a sentence again). Also heartbeated.
    """

    text_offset: str = "0-0"
    consumed: str = ""
    # Whole sentences spoken.
    sentences: list[SpokenSentence] = []
    audio_ms: int = 0
    # Audio already written of the sentence being spoken (0 between sentences).
    partial_ms: int = 0
    # The text stream's end was read: `consumed` holds the whole reply.
    text_ended: bool = False


class _Speaker:
    """Turns sentences into 20 ms frames on the turn's `out` stream."""

    def __init__(self, request: SpeakInput, progress: _SpeakProgress) -> None:
        rt = runtime.current()
        self.rt = rt
        self.request = request
        self.progress = progress
        self.progress_key = _progress_key(request)
        # Bytes of the current sentence's audio an earlier attempt already wrote.
        self.skip = 0
        self.out = streams.StreamWriter(
            rt.streams,
            streams.key(request.conversation_id, request.turn_key, "out"),
            rt.settings.audio_stream_ttl_s,
        )
        self.first_audio = False
        # When the synthesizer was asked for the first sentence (epoch seconds).
        self.synthesis_started: float | None = None
        # Entries to write before the next audio (the sentence being synthesized).
        self.pending: list[dict[str, bytes | str | int]] = []

    async def say(self, sentence: str) -> None:
        start = self.progress.audio_ms - self.progress.partial_ms
        # An earlier attempt may have died inside this sentence: its entry and first audio
        # are out, so only the rest is written (the synthesizer makes the same audio again).
        self.skip = self.progress.partial_ms // FRAME_MS * FRAME_BYTES
        # The sentence's entry goes out with its first audio, in the same round trip.
        self.pending = [] if self.skip else [{"sentence": sentence, "ms": start}]
        if not self.first_audio:
            self.synthesis_started = time.time()
        carry = b""
        async for chunk in self.rt.synthesizer.synthesize(sentence):
            carry += chunk
            whole = len(carry) // FRAME_BYTES * FRAME_BYTES
            if whole:
                await self._frames(carry[:whole])
                carry = carry[whole:]
        if carry:
            await self._frames(carry + b"\x00" * (FRAME_BYTES - len(carry)))
        if self.pending:  # the sentence made no audio
            await self._write([])
        self.progress.sentences.append(SpokenSentence(text=sentence, start_ms=start))
        self.progress.partial_ms = 0
        activity.heartbeat(self.progress.model_dump())

    async def _frames(self, pcm: bytes) -> None:
        """Writes whole 20 ms frames: the turn's first on its own, so it leaves at once, and
        the rest in batches, one round trip each rather than one per frame."""
        if self.skip:
            skipped = min(self.skip, len(pcm))
            self.skip -= skipped
            pcm = pcm[skipped:]
        frames = [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]
        if not self.first_audio and frames:
            await self._write(frames[:1])
            frames = frames[1:]
            # Fault injection: the caller is hearing the reply's first words.
            await faults.hold_open(
                "the reply mid sentence",
                self.rt.settings.fault_speak_delay_s,
                self.progress.model_dump,
            )
        for index in range(0, len(frames), FRAMES_PER_WRITE):
            await self._write(frames[index : index + FRAMES_PER_WRITE])

    async def _write(self, frames: list[bytes]) -> None:
        # One transaction: the audio and the progress that records it land together or not
        # at all, even when the worker dies mid write.
        async with self.rt.streams.pipeline(transaction=True) as pipe:
            if frames and not self.first_audio:
                self.first_audio = True
                # Marked before the frame is written, so the edge finds the marks with the
                # frame. The synthesizer's share of the first audio: asked for the sentence,
                # to a frame.
                name = streams.key(self.request.conversation_id, self.request.turn_key, "timing")
                pipe.hsetnx(name, marks.FIRST_AUDIO, streams.now_ms())
                if self.synthesis_started is not None:
                    engine = round((time.time() - self.synthesis_started) * 1000)
                    pipe.hsetnx(name, marks.TTS_ENGINE, engine)
                pipe.expire(name, self.rt.settings.audio_stream_ttl_s)
            for fields in self.pending:
                self.out.queue(pipe, fields)
            self.pending = []
            for frame in frames:
                self.out.queue(pipe, {"pcm": frame, "ms": self.progress.audio_ms})
                self.progress.audio_ms += FRAME_MS
                self.progress.partial_ms += FRAME_MS
            pipe.set(
                self.progress_key,
                self.progress.model_dump_json(),
                ex=self.rt.settings.audio_stream_ttl_s,
            )
            await pipe.execute()

    async def finish(self, interrupted: bool) -> SpeakResult:
        fields: dict[str, bytes | str | int] = {"end": 1, "ms": self.progress.audio_ms}
        if interrupted:
            fields["interrupted"] = 1
        await self.out.add(fields)
        recorded = await streams.marks(
            self.rt.streams, self.request.conversation_id, self.request.turn_key
        )
        return SpeakResult(
            sentences=self.progress.sentences,
            audio_ms=self.progress.audio_ms,
            interrupted=interrupted,
            timings=marks.timings_from_marks(recorded),
        )


@activity.defn
async def speak(request: SpeakInput) -> SpeakResult:
    """Speaks the reply sentence by sentence while the LLM is still writing it."""
    progress = await _resumed(request)
    speaker = _Speaker(request, progress)
    try:
        if request.text is not None:
            buffer = SentenceBuffer()
            sentences = [*buffer.push(request.text), *buffer.flush()]
            for sentence in sentences[len(progress.sentences) :]:
                await speaker.say(sentence)
        else:
            await _speak_stream(speaker, progress)
    except asyncio.CancelledError:
        # Barge-in: the caller interrupted. Close the stream and report what was spoken.
        return await asyncio.shield(speaker.finish(interrupted=True))
    return await speaker.finish(interrupted=False)


def _progress_key(request: SpeakInput) -> str:
    # Per activity, not per turn: a turn's stream can have a second speaker (an apology).
    return streams.progress_key(
        request.conversation_id, request.turn_key, f"speak-{activity.info().activity_id}"
    )


async def _resumed(request: SpeakInput) -> _SpeakProgress:
    """Where an earlier attempt of this activity got to; a first attempt starts afresh."""
    if activity.info().attempt == 1:
        return _SpeakProgress()
    raw = await runtime.current().streams.get(_progress_key(request))
    if raw:
        try:
            return _SpeakProgress.model_validate_json(raw)
        except ValueError:
            activity.logger.warning("ignoring unreadable speaker progress")
    progress: _SpeakProgress = _progress(_SpeakProgress)
    return progress


async def _speak_stream(speaker: _Speaker, progress: _SpeakProgress) -> None:
    rt = runtime.current()
    request = speaker.request
    source = streams.key(request.conversation_id, request.turn_key, "text")
    buffer = SentenceBuffer()
    # A retry rebuilds the sentences consumed so far and speaks only those not yet spoken
    # (the first of them resumed where it was cut).
    pending = buffer.push(progress.consumed)
    if progress.text_ended:
        # The end was read already: the stream has nothing more to say.
        for sentence in [*pending, *buffer.flush()][len(progress.sentences) :]:
            await speaker.say(sentence)
        return
    pending = pending[len(progress.sentences) :]
    waiting = request.started_early and progress.text_offset == "0-0"
    idle_since = time.monotonic()
    while True:
        for sentence in pending:
            await speaker.say(sentence)
        pending = []
        entries = await streams.read(
            rt.streams, source, progress.text_offset, READ_BLOCK_MS, READ_COUNT
        )
        activity.heartbeat(progress.model_dump())
        if not entries:
            if not waiting and time.monotonic() - idle_since > STALL_S:
                activity.logger.warning("reply text %s stalled; speaking what arrived", source)
                break
            continue
        waiting = False
        idle_since = time.monotonic()
        ended = False
        for entry_id, fields in entries:
            progress.text_offset = entry_id
            if b"end" in fields:
                ended = progress.text_ended = True
                break
            delta = _decode(fields.get(b"d"))
            progress.consumed += delta
            pending.extend(buffer.push(delta))
        if ended:
            pending.extend(buffer.flush())
            for sentence in pending:
                await speaker.say(sentence)
            return


@activity.defn
async def reply_text(request: ReplyTextInput) -> None:
    """Hands the speaker waiting on a turn's text stream a reply the workflow composed itself
    (an apology, where a transfer stands) and closes the stream.

    A stream already closed is left alone, and the text and its end are written together, so
    a retry never says it twice.
    """
    rt = runtime.current()
    name = streams.key(request.conversation_id, request.turn_key, "text")
    last: Any = await rt.streams.xrevrange(name, count=1)
    if last and b"end" in last[0][1]:
        return
    writer = streams.StreamWriter(rt.streams, name, rt.settings.audio_stream_ttl_s)
    async with rt.streams.pipeline(transaction=True) as pipe:
        # The leading space keeps it apart from any words of an answer cut short.
        writer.queue(pipe, {"d": f" {request.text}"})
        writer.queue(pipe, {"end": 1})
        await pipe.execute()
