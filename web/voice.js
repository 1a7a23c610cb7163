// Browser audio for the caller page: one 16 kHz AudioContext with two AudioWorklets,
// web/audio/capture-worklet.js (microphone -> 20 ms Int16 frames) and
// web/audio/playback-worklet.js (reply frames -> speaker, gapless). No protocol here:
// caller.js decides what to send and what to play.

export const RATE = 16000;
export const FRAME_SAMPLES = 320; // 20 ms

// A microphone problem with a message the caller can act on.
export class MicError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind; // "denied" | "missing" | "busy" | "insecure" | "failed"
  }
}

const TYPE_BELOW = "type your request below";

function micError(error) {
  const name = error?.name || "";
  if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
    return new MicError(
      "denied",
      "Microphone access was refused. Allow it in the browser, or type your request below.",
    );
  }
  if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError") {
    return new MicError("missing", `No microphone was found. Connect one, or ${TYPE_BELOW}.`);
  }
  if (name === "NotReadableError" || name === "AbortError") {
    return new MicError("busy", `The microphone is busy in another app. Close it, or ${TYPE_BELOW}.`);
  }
  return new MicError("failed", `The microphone could not start (${error?.message || name}); ${TYPE_BELOW}.`);
}

export class AudioEngine {
  // onMicFrame(pcm: ArrayBuffer, rms: number); onPlayback(message from the playback worklet)
  constructor({ onMicFrame, onPlayback }) {
    this.onMicFrame = onMicFrame;
    this.onPlayback = onPlayback;
    this.ready = null; // Promise of the context and the playback node
    this.mic = null; // {stream, source, node, sink} while capturing
    this.micStarting = null;
  }

  // Creates the context once. Call it from a click or key press too: browsers only let a
  // page start audio after a user gesture, so every gesture also resumes the context.
  ensure() {
    if (!this.ready) this.ready = this.create();
    this.ready.then((context) => context.state === "suspended" && context.resume()).catch(() => {});
    return this.ready;
  }

  async create() {
    if (!window.AudioContext || !window.AudioWorkletNode) {
      throw new MicError("failed", `This browser cannot play or record audio here; ${TYPE_BELOW}.`);
    }
    const context = new AudioContext({ sampleRate: RATE, latencyHint: "interactive" });
    await context.audioWorklet.addModule("/audio/playback-worklet.js");
    await context.audioWorklet.addModule("/audio/capture-worklet.js");
    this.player = new AudioWorkletNode(context, "convonet-playback", {
      numberOfInputs: 0,
      outputChannelCount: [1],
    });
    this.player.port.onmessage = (event) => this.onPlayback(event.data);
    this.player.connect(context.destination);
    this.context = context;
    return context;
  }

  get capturing() {
    return this.mic !== null;
  }

  // Starts the microphone (once); throws a MicError the page can show as is.
  startMic() {
    if (this.mic) return Promise.resolve();
    if (!this.micStarting) {
      this.micStarting = this.openMic().finally(() => {
        this.micStarting = null;
      });
    }
    return this.micStarting;
  }

  async openMic() {
    if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
      throw new MicError(
        "insecure",
        `The microphone only works on a secure (https) page; ${TYPE_BELOW}.`,
      );
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: {
          channelCount: 1,
          // Echo cancellation keeps the reply out of the microphone (barge-in depends on it).
          // Noise suppression and gain control reshape speech and cost recognizers accuracy.
          echoCancellation: true,
          noiseSuppression: false,
          autoGainControl: false,
        },
      });
    } catch (error) {
      throw micError(error);
    }
    try {
      const context = await this.ensure();
      const source = context.createMediaStreamSource(stream);
      const node = new AudioWorkletNode(context, "convonet-capture", {
        numberOfOutputs: 1,
        processorOptions: { frameSamples: FRAME_SAMPLES },
      });
      node.port.onmessage = (event) => this.onMicFrame(event.data.pcm, event.data.rms);
      // A muted path to the speakers keeps the capture node pulled by the audio graph.
      const sink = context.createGain();
      sink.gain.value = 0;
      source.connect(node).connect(sink).connect(context.destination);
      this.mic = { stream, source, node, sink };
    } catch (error) {
      for (const track of stream.getTracks()) track.stop();
      throw error instanceof MicError ? error : micError(error);
    }
  }

  stopMic() {
    if (!this.mic) return;
    const { stream, source, node, sink } = this.mic;
    this.mic = null;
    node.port.postMessage("stop");
    node.port.onmessage = null;
    source.disconnect();
    node.disconnect();
    sink.disconnect();
    for (const track of stream.getTracks()) track.stop();
  }

  // Posts to the playback worklet in order, creating the context first if needed.
  post(message, transfer = []) {
    if (this.player) return this.player.port.postMessage(message, transfer);
    if (!this.ready) return; // nothing ever played: nothing to end or flush
    this.ready.then(() => this.player.port.postMessage(message, transfer)).catch(() => {});
  }

  // Queues one reply frame (Int16 LE PCM, transferred) for gapless playback. With
  // `maxQueued` (samples) the audio is live: the oldest queued audio is dropped rather than
  // let the queue (and so the delay) grow past it.
  play(turnKey, pcm, rate, maxQueued = 0) {
    if (!this.ready) this.ensure();
    this.post({ type: "push", turnKey, pcm, rate, maxQueued }, [pcm]);
  }

  // The turn's audio is complete: play out what is queued without waiting for more.
  endTurn(turnKey) {
    this.post({ type: "end", turnKey });
  }

  // Stops playback at once and drops everything queued.
  flush() {
    this.post({ type: "flush" });
  }
}
