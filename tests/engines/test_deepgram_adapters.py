"""Deepgram adapters through the real deepgram-sdk against the local Deepgram stand-in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest

from convonet.engines.stt.base import SttError, Vocabulary
from convonet.engines.stt.deepgram import DeepgramRecognitionStream, DeepgramRecognizer
from convonet.engines.tts.base import TtsError
from convonet.engines.tts.deepgram import DeepgramSynthesizer
from convonet.settings import Settings, load_settings
from convonet.speech.audio import SAMPLE_RATE, duration_ms, frames, rms
from tests.standins.deepgram_server import DeepgramStandIn, tone

BYTES_PER_MS = SAMPLE_RATE * 2 // 1000


@pytest.fixture
def standin() -> Iterator[DeepgramStandIn]:
    with DeepgramStandIn(ms_per_word=200, ms_per_char=40) as server:
        yield server


def deepgram_settings(standin: DeepgramStandIn, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "deepgram_api_key": standin.api_key,
        "deepgram_base_url": standin.base_url,
        "deepgram_endpointing_ms": 300,
    }
    return load_settings(**{**values, **overrides})


def speech(ms: int) -> bytes:
    return tone(ms, SAMPLE_RATE)


async def feed(stream: DeepgramRecognitionStream, pcm: bytes) -> list[str]:
    """Feeds 20 ms frames a little faster than real time; returns the interims seen."""
    seen = []
    for frame in frames(pcm):
        text = await stream.feed(frame)
        if text is not None:
            seen.append(text)
        await asyncio.sleep(0.002)
    return seen


async def wait_for(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


# -- speech to text --------------------------------------------------------------------------


async def test_interims_grow_word_by_word_and_finish_joins_the_finals(
    standin: DeepgramStandIn,
) -> None:
    standin.transcripts.extend(["turn on the kitchen lights", "and close the blinds"])
    stream = await DeepgramRecognizer(deepgram_settings(standin)).open(Vocabulary())

    # 5 words x 200 ms + 300 ms endpointing, then 4 words x 200 ms + 300 ms.
    interims = await feed(stream, speech(1300 + 1100))
    transcript = await stream.finish()

    assert transcript == "turn on the kitchen lights and close the blinds"
    # Each interim extends the last; under load some may be skipped, never reordered.
    assert len(interims) >= 4
    assert all(transcript.startswith(text) for text in interims)
    assert [len(text) for text in interims] == sorted({len(text) for text in interims})
    assert any(
        text.startswith("turn on the kitchen lights and") and text != transcript
        for text in interims
    )
    [session] = standin.listen_sessions
    assert session.query == {
        "model": ["nova-3"],
        "encoding": ["linear16"],
        "sample_rate": ["16000"],
        "channels": ["1"],
        "interim_results": ["true"],
        "endpointing": ["300"],
        "utterance_end_ms": ["1000"],
        "smart_format": ["true"],
    }
    assert session.controls == ["CloseStream"]
    assert session.sent[-1] == "Metadata"
    assert len(session.audio) == 2400 * BYTES_PER_MS
    assert session.ended.wait(2)


async def test_finish_finalizes_the_words_heard_so_far(standin: DeepgramStandIn) -> None:
    standin.transcripts.append("set a timer for ten minutes")
    stream = await DeepgramRecognizer(deepgram_settings(standin)).open(Vocabulary())

    await feed(stream, speech(700))  # three words' worth

    assert await stream.finish() == "set a timer"


async def test_speech_final_marks_the_end_of_speech(standin: DeepgramStandIn) -> None:
    standin.transcripts.append("call the team")
    stream = await DeepgramRecognizer(deepgram_settings(standin)).open(Vocabulary())

    await feed(stream, speech(400))
    assert not stream.speech_ended
    await feed(stream, speech(500))  # the last word and the endpointing silence
    await wait_for(lambda: stream.speech_ended)

    assert await stream.finish() == "call the team"


async def test_utterance_end_marks_the_end_when_endpointing_cannot(
    standin: DeepgramStandIn,
) -> None:
    standin.noisy = True  # finals arrive without speech_final
    standin.transcripts.append("call the team")
    stream = await DeepgramRecognizer(deepgram_settings(standin)).open(Vocabulary())

    await feed(stream, speech(900))  # three words, then the final at 900 ms
    await asyncio.sleep(0.1)
    assert not stream.speech_ended
    await feed(stream, speech(800))  # a second after the last word: UtteranceEnd
    await wait_for(lambda: stream.speech_ended)

    assert await stream.finish() == "call the team"
    assert standin.listen_sessions[0].sent.count("UtteranceEnd") == 1


async def test_vocabulary_goes_out_as_keyterms_or_keywords(standin: DeepgramStandIn) -> None:
    vocabulary = Vocabulary(("Buy  oat milk", "Team Falcon", "Team Falcon", "Okafor"))

    nova3 = await DeepgramRecognizer(deepgram_settings(standin)).open(vocabulary)
    await nova3.aclose()
    nova2_settings = deepgram_settings(standin, deepgram_stt_model="nova-2")
    nova2 = await DeepgramRecognizer(nova2_settings).open(vocabulary)
    await nova2.aclose()

    first, second = standin.listen_sessions
    assert first.query["keyterm"] == ["Buy oat milk", "Team Falcon", "Okafor"]
    assert "keywords" not in first.query
    assert second.query["model"] == ["nova-2"]
    assert second.query["keywords"] == ["Buy", "oat", "milk", "Team", "Falcon", "Okafor"]
    assert "keyterm" not in second.query


async def test_keepalive_keeps_a_quiet_stream_open(standin: DeepgramStandIn) -> None:
    recognizer = DeepgramRecognizer(deepgram_settings(standin), keepalive_s=0.1)
    stream = await recognizer.open(Vocabulary())

    await stream.feed(speech(40))
    await wait_for(lambda: standin.listen_sessions[0].controls.count("KeepAlive") >= 2)

    assert await stream.finish() == ""
    assert standin.listen_sessions[0].controls[-1] == "CloseStream"


async def test_wrong_key_is_refused(standin: DeepgramStandIn) -> None:
    settings = deepgram_settings(standin, deepgram_api_key="not-the-key")

    with pytest.raises(SttError, match=r"refused the API key \(HTTP 401\)") as caught:
        await DeepgramRecognizer(settings).open(Vocabulary())

    assert "not-the-key" not in str(caught.value)
    assert standin.listen_sessions == []


async def test_unreachable_server_raises(standin: DeepgramStandIn) -> None:
    settings = deepgram_settings(standin)
    standin.stop()  # nothing listens on the port any more

    with pytest.raises(SttError, match="cannot connect to Deepgram"):
        await DeepgramRecognizer(settings).open(Vocabulary())


async def test_server_error_message_raises(standin: DeepgramStandIn) -> None:
    standin.transcripts.append("what is on my calendar today")
    standin.fail_next_listen(300, "Deepgram could not process the request")
    stream = await DeepgramRecognizer(deepgram_settings(standin)).open(Vocabulary())

    with pytest.raises(SttError, match="could not process the request"):
        await feed(stream, speech(1000))
        await stream.finish()

    await stream.aclose()
    assert len(standin.listen_sessions) == 1


async def test_error_close_frame_raises_without_reconnecting(standin: DeepgramStandIn) -> None:
    standin.close_next_listen(200, 1008, "DATA-0000")
    stream = await DeepgramRecognizer(deepgram_settings(standin)).open(Vocabulary())

    with pytest.raises(SttError, match="1008 DATA-0000"):
        await feed(stream, speech(600))
        await stream.finish()

    await stream.aclose()
    assert len(standin.listen_sessions) == 1


async def test_dropped_connection_reconnects_and_resends_unfinalized_audio(
    standin: DeepgramStandIn,
) -> None:
    standin.transcripts.extend(["turn on the kitchen lights", "and close the blinds"])
    # The first segment is final at 1300 ms; the link drops 500 ms into the second.
    standin.drop_next_listen(1800)
    stream = await DeepgramRecognizer(deepgram_settings(standin)).open(Vocabulary())

    await feed(stream, speech(1300 + 1100))
    transcript = await stream.finish()

    assert transcript == "turn on the kitchen lights and close the blinds"
    first, second = standin.listen_sessions
    assert duration_ms(len(first.audio)) == 1800
    # Everything after the first final, once: what was buffered plus what followed.
    assert duration_ms(len(second.audio)) == 2400 - 1300
    assert second.controls == ["CloseStream"]


async def test_reconnects_only_once(standin: DeepgramStandIn) -> None:
    standin.transcripts.append("turn on the kitchen lights")
    standin.drop_next_listen(200)
    standin.drop_next_listen(200)
    stream = await DeepgramRecognizer(deepgram_settings(standin)).open(Vocabulary())

    with pytest.raises(SttError, match="Deepgram connection lost"):
        await feed(stream, speech(600))
        await stream.finish()

    await stream.aclose()
    assert len(standin.listen_sessions) == 2


# -- text to speech --------------------------------------------------------------------------


async def collect(synthesizer: DeepgramSynthesizer, text: str) -> list[bytes]:
    return [chunk async for chunk in synthesizer.synthesize(text)]


def expected_bytes(text: str) -> int:
    return len(text) * 40 * BYTES_PER_MS


async def test_tts_streams_non_silent_audio_proportional_to_the_text(
    standin: DeepgramStandIn,
) -> None:
    synthesizer = DeepgramSynthesizer(deepgram_settings(standin))
    short, long = "Done.", "Your dentist appointment is on Friday at ten."

    short_chunks = await collect(synthesizer, short)
    long_chunks = await collect(synthesizer, long)
    await synthesizer.aclose()

    assert sum(map(len, short_chunks)) == expected_bytes(short)
    assert sum(map(len, long_chunks)) == expected_bytes(long)
    assert len(long_chunks) > 1  # streamed, not buffered
    assert rms(b"".join(long_chunks)) > 1000
    [session] = standin.speak_sessions
    assert session.query == {
        "model": ["aura-2-thalia-en"],
        "encoding": ["linear16"],
        "sample_rate": ["16000"],
    }


async def _controls_when_closed(controls: list[str]) -> list[str]:
    """The stand-in's record of control messages once the client's Close reached it: the
    client sends it and closes without waiting for the stand-in to read it."""
    for _ in range(100):
        if controls and controls[-1] == "Close":
            break
        await asyncio.sleep(0.02)
    return controls


async def test_tts_keeps_one_connection_across_sentences(standin: DeepgramStandIn) -> None:
    synthesizer = DeepgramSynthesizer(deepgram_settings(standin))

    first = await collect(synthesizer, "I added milk to your list.")
    second = await collect(synthesizer, "Anything else?")
    await synthesizer.aclose()

    assert sum(map(len, first)) == expected_bytes("I added milk to your list.")
    assert sum(map(len, second)) == expected_bytes("Anything else?")
    [session] = standin.speak_sessions
    assert session.texts == ["I added milk to your list.", "Anything else?"]
    assert await _controls_when_closed(session.controls) == ["Flush", "Flush", "Close"]


async def test_tts_abandoned_sentence_is_cleared_before_the_next(
    standin: DeepgramStandIn,
) -> None:
    synthesizer = DeepgramSynthesizer(deepgram_settings(standin))
    barged_in = synthesizer.synthesize("This is a long answer that the caller interrupts.")
    assert len(await anext(barged_in)) > 0
    await barged_in.aclose()  # what the edge does on barge-in

    after = await collect(synthesizer, "Okay.")
    await synthesizer.aclose()

    assert sum(map(len, after)) == expected_bytes("Okay.")
    [session] = standin.speak_sessions
    assert await _controls_when_closed(session.controls) == ["Flush", "Clear", "Flush", "Close"]


async def test_tts_warning_raises_and_the_connection_recovers(standin: DeepgramStandIn) -> None:
    synthesizer = DeepgramSynthesizer(deepgram_settings(standin))
    standin.warn_next_flush("FLUSH_LIMIT", "Too many Flush messages")

    with pytest.raises(TtsError, match="FLUSH_LIMIT: Too many Flush messages"):
        await collect(synthesizer, "Hello.")
    after = await collect(synthesizer, "Hello again.")
    await synthesizer.aclose()

    assert sum(map(len, after)) == expected_bytes("Hello again.")
    assert len(standin.speak_sessions) == 1


async def test_tts_reconnects_when_the_idle_connection_dropped(standin: DeepgramStandIn) -> None:
    synthesizer = DeepgramSynthesizer(deepgram_settings(standin))
    await collect(synthesizer, "First.")

    standin.drop_speak_connections()
    await wait_for(lambda: standin.speak_sessions[0].ended.is_set())
    second = await collect(synthesizer, "Second sentence.")
    await synthesizer.aclose()

    assert sum(map(len, second)) == expected_bytes("Second sentence.")
    assert [s.texts for s in standin.speak_sessions] == [["First."], ["Second sentence."]]


async def test_tts_wrong_key_is_refused(standin: DeepgramStandIn) -> None:
    synthesizer = DeepgramSynthesizer(deepgram_settings(standin, deepgram_api_key="wrong"))

    with pytest.raises(TtsError, match=r"HTTP 401"):
        await collect(synthesizer, "Hello.")


async def test_tts_aclose_closes_the_socket(standin: DeepgramStandIn) -> None:
    synthesizer = DeepgramSynthesizer(deepgram_settings(standin))
    await collect(synthesizer, "Goodbye.")

    await synthesizer.aclose()
    await synthesizer.aclose()  # idempotent

    [session] = standin.speak_sessions
    assert await asyncio.to_thread(session.ended.wait, 2)
    assert session.controls[-1] == "Close"
