// The built-in softphone: in "builtin" mode the call's audio travels over our own /agent
// socket, no SIP. Answer / decline / hang up / mute / hold are acknowledged socket events;
// the microphone is cut into 20 ms 16 kHz Int16 frames by the capture worklet and sent as
// `audio_frame` while the call is bridged (and neither muted nor on hold); the caller's
// voice arrives as `audio_in` frames and plays through the playback worklet (web/voice.js).
//
// The dashboard (agent.js) owns the call object ({transfer_id, state, muted, held, ...});
// the phone reads it live, so a state change stops or starts the frames at once.
import { AudioEngine, MicError, RATE } from "/voice.js";

const ACK_TIMEOUT_MS = 10000;
const MAX_BUFFERED_BYTES = 64 * 1024; // shed microphone audio on a stalled link
const LIVE_STATES = new Set(["answered", "bridged"]);
const MAX_QUEUED = (RATE * 200) / 1000; // the caller's voice lags by 200 ms at most

function micKind(error) {
  if (error instanceof MicError) return error.kind;
  const name = error?.name || "";
  if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
    return "denied";
  }
  if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError") {
    return "missing";
  }
  if (name === "NotReadableError" || name === "AbortError") return "busy";
  return "failed";
}

// A microphone problem in words an agent can act on (the caller page's MicError style).
export function micMessage(error) {
  const kind = micKind(error);
  if (kind === "denied") {
    return "Microphone access was refused. Allow it in the browser, then answer again.";
  }
  if (kind === "missing") return "No microphone was found. Connect one, then answer again.";
  if (kind === "busy") return "The microphone is busy in another app. Close it, then answer again.";
  if (kind === "insecure") return "The microphone only works on a secure (https) page.";
  const detail = error instanceof MicError ? "" : ` (${error?.message || error?.name || "unknown error"})`;
  return `The microphone could not start${detail}. Check it, then answer again.`;
}

export class MicProblem extends Error {
  constructor(error) {
    super(micMessage(error));
    this.kind = micKind(error);
  }
}

export class BuiltinPhone {
  // socket: () => the current CallerSocket (or null); onFrameIn(samples: Int16Array) is called
  // synchronously for every caller frame received; onFrameOut() for every frame sent;
  // onLevel(rms 0..1) for every microphone frame.
  constructor({ socket, onFrameIn, onFrameOut, onLevel }) {
    this.socket = socket;
    this.onFrameIn = onFrameIn || (() => {});
    this.onFrameOut = onFrameOut || (() => {});
    this.onLevel = onLevel || (() => {});
    this.audio = new AudioEngine({
      onMicFrame: (pcm, rms) => this.micFrame(pcm, rms),
      onPlayback: () => {},
    });
    this.call = null; // the call whose audio flows (the dashboard's object)
    this.seq = 0; // audio_frame seq: from 0 on each connection, always increasing
    this.seqSocket = null;
  }

  get kind() {
    return "builtin";
  }

  // An acknowledged event: resolves with ack.data, or throws with the server's message.
  async request(event, payload) {
    const socket = this.socket();
    if (!socket?.connected) {
      throw new Error("Not connected to Convonet. Wait for the phone to reconnect, then try again.");
    }
    let ack;
    try {
      ack = await socket.call(event, payload, ACK_TIMEOUT_MS);
    } catch (error) {
      throw new Error(
        error?.message === "no answer"
          ? "Convonet did not answer in time."
          : "The connection to Convonet was lost.",
      );
    }
    if (!ack?.ok) throw new Error(ack?.error?.message || "Convonet refused that.");
    return ack.data ?? null;
  }

  // Microphone first (the click is the gesture that lets audio start), then `answer`.
  // Throws a MicProblem when the microphone cannot start: the call is not answered then.
  async answer(call) {
    this.audio.ensure().catch(() => {});
    try {
      await this.audio.startMic();
    } catch (error) {
      throw new MicProblem(error);
    }
    this.call = call;
    try {
      await this.request("answer", { transfer_id: call.transfer_id });
    } catch (error) {
      this.endAudio();
      throw error;
    }
    return true; // the server acknowledged: the call is answered
  }

  decline(call) {
    return this.request("decline", { transfer_id: call.transfer_id });
  }

  hangUp(call) {
    return this.request("hang_up", { transfer_id: call.transfer_id });
  }

  setMuted(call, on) {
    return this.request("mute", { transfer_id: call.transfer_id, on });
  }

  setHold(call, on) {
    return this.request("hold", { transfer_id: call.transfer_id, on });
  }

  // The dashboard says which call is live (after an answer, or a call_state naming it).
  follow(call) {
    this.call = call;
  }

  micFrame(pcm, rms) {
    const call = this.call;
    this.onLevel(call ? rms : 0);
    if (!call || call.state !== "bridged" || call.muted || call.held) return;
    const socket = this.socket();
    if (!socket?.connected) return;
    if (socket !== this.seqSocket) {
      this.seqSocket = socket;
      this.seq = 0;
    }
    if (socket.bufferedAmount > MAX_BUFFERED_BYTES) return;
    if (socket.emit("audio_frame", { seq: this.seq, rate: RATE, pcm })) {
      this.seq += 1;
      this.onFrameOut();
    }
  }

  // One `audio_in` frame: reported to the dashboard, played while the call is live.
  receive(frame) {
    let pcm = frame?.pcm;
    if (ArrayBuffer.isView(pcm)) pcm = pcm.buffer.slice(pcm.byteOffset, pcm.byteOffset + pcm.byteLength);
    if (!(pcm instanceof ArrayBuffer)) return;
    const usable = pcm.byteLength - (pcm.byteLength % 2);
    if (usable === 0) return;
    this.onFrameIn(new Int16Array(pcm, 0, usable / 2)); // read before the buffer is transferred
    const call = this.call;
    if (!call || !LIVE_STATES.has(call.state) || call.held) return;
    const owned = usable === pcm.byteLength ? pcm : pcm.slice(0, usable);
    this.audio.play(String(call.transfer_id), owned, Number(frame.rate) || RATE, MAX_QUEUED);
  }

  // The call is over (or failed to start): microphone off, nothing more to play.
  endAudio() {
    this.call = null;
    this.audio.stopMic();
    this.audio.flush();
    this.onLevel(0);
  }

  stop() {
    this.endAudio();
  }
}
