// The caller page: PIN login, voice (hands-free or push-to-talk) and typed turns over the
// /caller namespace (docs/socket-protocol.md), and transfers to a human agent: their progress
// (`transfer`), the agent's voice while bridged (`bridge_audio`) and what the assistant says
// afterwards (`assistant`). Every text from the server is shown with textContent only,
// never as markup (caller and agent data are untrusted).
import { CallerSocket } from "/socket.js";
import { AudioEngine, MicError, RATE } from "/voice.js";
import { attachPinPad } from "/pinpad.js";

const $ = (id) => document.getElementById(id);
const STORE = "convonet.session";
const UNREACHABLE = "Can't reach Convonet. Retrying…";
const BARGE_IN_RMS = 0.02; // full scale; about 650 in int16
const BARGE_IN_FRAMES = 3; // consecutive 20 ms frames over the threshold
const MAX_BACKLOG = 50; // frames kept while the edge acknowledges `mic` (1 s)
const MAX_BUFFERED_BYTES = 64 * 1024; // shed microphone audio on a stalled link
const BRIDGE_MAX_QUEUED = (RATE * 200) / 1000; // the agent's voice lags by 200 ms at most
const BRIDGE_HEARD_LIMIT = 20 * RATE; // agent samples kept for the tests: 20 s

// Test hooks, updated live (times are performance.now() milliseconds, null until it happens):
//   micFrames          20 ms frames captured from the microphone
//   framesSent         audio_frame events sent to the edge
//   micStartedAt       when the microphone last started
//   playedFrames       reply audio frames played out by the speaker worklet
//   playedPeakRms      highest RMS (0..1) of the non-silent reply audio played
//   playbackStartedAt  when reply audio last started playing
//   playbackStoppedAt  when it last stopped (drained at the end of a turn, or flushed)
//   bargeInAt          when the page last interrupted a reply because the caller spoke
//   lastTurnKey        turn_key of the latest voice event from the edge
//   transferState      state of the latest transfer ("requested" … "bridged", "ended",
//                      "failed"), null before any
//   bridgeFramesIn     bridge_audio frames received from the agent
//   bridgeFramesOut    audio_frame events sent while connected with the agent
//   bridgeHeard        the agent audio received, as Int16 sample numbers, at most 20 s
//   takeBridgeHeard()  returns `bridgeHeard` and empties it
const stats = {
  micFrames: 0,
  framesSent: 0,
  micStartedAt: null,
  playedFrames: 0,
  playedPeakRms: 0,
  playbackStartedAt: null,
  playbackStoppedAt: null,
  bargeInAt: null,
  lastTurnKey: null,
  transferState: null,
  bridgeFramesIn: 0,
  bridgeFramesOut: 0,
  bridgeHeard: [],
  takeBridgeHeard() {
    return stats.bridgeHeard.splice(0);
  },
};
window.convonetStats = stats;

// ---- page state ------------------------------------------------------------------------

let socket = null;
let conversationId = null;
let authenticated = false;
let ended = false;
let retries = 0; // reconnect attempts since the last successful connection
let retryTimer = null;
let refusal = ""; // the server's reason when it refused this connection
let lastRefusal = ""; // ... and the one on screen
// Set by `going_away`: the server is restarting, so reconnect within this many ms (at a
// random moment) rather than back off; `restarting` until the page is back.
let goingAwayMs = null;
let restarting = false;
const RESTARTING = "Convonet is restarting. Reconnecting…";
let resuming = false; // connected with a saved session

// Microphone: what the caller asked for, and what the edge has acknowledged.
const mic = {
  handsFree: false,
  held: false, // push-to-talk button or space bar held
  pttOpen: false, // a push-to-talk `mic` open was sent for this hold
  generation: 0, // bumped by every open and close; stale acks are ignored
  buffering: false, // `mic` open sent, ack pending: frames wait in the backlog
  backlog: [],
  streaming: false, // frames go to the edge as they are captured
  seq: 0, // per connection: the edge refuses a seq not above the last one
  loud: 0, // consecutive frames over BARGE_IN_RMS
  queue: Promise.resolve(), // `mic` commands go out one after the other
};

// Turns on screen, by turn_key: {user: li, assistant: li, text, latencyMs, timings}.
const turns = new Map();
// Typed turns waiting for their ack (which names their `t…` key): a spoken typed turn's
// events can come first, so the first unknown `t…` key belongs to the oldest of them.
let keylessTyped = [];
const interrupted = new Set(); // turn keys whose audio the caller cut off
const audioDone = new Set(); // turn keys whose audio_done arrived
let playingTurn = null; // the turn whose reply audio is queued or playing
let workletPlaying = false;
const playedSamples = new Map(); // turn key -> samples actually played
let callerName = "";

// The latest transfer to a human agent, or null:
//   {id, state, department, agentName, reason, onHold, live, bridgedAt, restoreMicOff, refusal}
// `live` while the caller talks with the agent (answered or bridged): the microphone feeds
// the agent and `bridge_audio` plays. `restoreMicOff`: the page opened the microphone for
// the call, so it closes it again afterwards (unless the caller switched it meanwhile).
let transfer = null;
let transferTimer = null;

const audio = new AudioEngine({ onMicFrame, onPlayback });

// ---- small view helpers ----------------------------------------------------------------

function show(id, visible) {
  $(id).hidden = !visible;
}

function showError(message) {
  $("error").textContent = message;
  show("error", Boolean(message));
}

function clearError(message) {
  if ($("error").textContent === message) showError("");
}

function setStatus(text) {
  $("status").textContent = text;
}

const STAGES = { idle: "Idle", listening: "Listening…", thinking: "Thinking…", speaking: "Speaking…" };

// While the caller talks with an agent the stage says so, whatever the assistant's events say.
function setStage(stage) {
  if (!Object.hasOwn(STAGES, stage)) return;
  if (transfer?.live) {
    $("stage").dataset.stage = "bridged";
    $("stage").textContent = transfer.onHold ? "On hold" : `Talking with ${agentLabel(transfer)}`;
    return;
  }
  $("stage").dataset.stage = stage;
  $("stage").textContent = STAGES[stage];
}

function currentStage() {
  return $("stage").dataset.stage;
}

function settleStage() {
  setStage(playingTurn ? "speaking" : mic.handsFree || mic.held ? "listening" : "idle");
}

function capitalized(text) {
  return text ? text[0].toUpperCase() + text.slice(1) : text;
}

// ---- transcript ------------------------------------------------------------------------

function makeLine(role, text) {
  const item = document.createElement("li");
  item.className = role;
  const who = document.createElement("strong");
  who.textContent = role === "user" ? "You" : "Assistant";
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  item.append(who, " ", body);
  return item;
}

function addLine(role, text, before = null) {
  const item = makeLine(role, text);
  $("transcript").insertBefore(item, before);
  item.scrollIntoView({ block: "end" });
  return item;
}

function lineText(item, text) {
  item.querySelector(".text").textContent = text;
}

function newTurn(key) {
  return { key, user: null, assistant: null, text: "", latencyMs: null, timings: null };
}

function nameTypedTurn(turn, key) {
  turn.key = key;
  turns.set(key, turn);
  keylessTyped = keylessTyped.filter((other) => other !== turn);
}

function turnFor(key) {
  key = String(key ?? "");
  if (turns.has(key)) return turns.get(key);
  if (key.startsWith("t") && keylessTyped.length > 0) {
    const typed = keylessTyped[0];
    nameTypedTurn(typed, key);
    return typed;
  }
  const turn = newTurn(key);
  turns.set(key, turn);
  return turn;
}

function assistantLine(turn) {
  if (!turn.assistant) {
    turn.assistant = addLine("assistant", "");
    turn.assistant.classList.add("streaming");
    if (interrupted.has(turn.key)) turn.assistant.classList.add("interrupted");
  }
  return turn.assistant;
}

function renderLatency(turn) {
  if (!turn.assistant) return;
  const timings = turn.timings || {};
  let text = "";
  if (timings.voice_to_voice_ms != null) text = `voice-to-voice ${timings.voice_to_voice_ms} ms`;
  else if (turn.latencyMs != null) text = `reply ${turn.latencyMs} ms`;
  if (!text) return;
  let small = turn.assistant.querySelector("small.latency");
  if (!small) {
    small = document.createElement("small");
    small.className = "latency";
    turn.assistant.append(" ", small);
  }
  small.textContent = text;
  const parts = [
    ["end of speech", timings.end_of_speech_ms],
    ["transcript", timings.stt_final_ms],
    ["first token", timings.llm_first_token_ms],
    ["first audio", timings.tts_first_audio_ms],
  ].filter(([, ms]) => ms != null);
  small.title = parts.map(([name, ms]) => `${name} ${ms} ms`).join(" · ");
}

// A finished turn (the `reply` event or a text_turn acknowledgement).
function settleReply(turn, reply) {
  if (reply.user && !turn.user) {
    turn.user = addLine("user", reply.user, turn.assistant);
  } else if (reply.user && turn.user?.classList.contains("interim")) {
    lineText(turn.user, reply.user);
    turn.user.classList.remove("interim");
  } else if (!reply.user && turn.user?.classList.contains("interim")) {
    turn.user.remove();
    turn.user = null;
  }
  if (reply.assistant) {
    const line = assistantLine(turn);
    lineText(line, reply.assistant);
    line.classList.remove("streaming");
    turn.text = reply.assistant;
    turn.latencyMs = reply.latency_ms ?? turn.latencyMs;
    renderLatency(turn);
  } else if (turn.assistant && !turn.text) {
    turn.assistant.remove();
    turn.assistant = null;
  }
  if (currentStage() === "thinking") settleStage();
}

// ---- connection ------------------------------------------------------------------------

function savedSession() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORE) || "{}");
    return saved.session_token && saved.conversation_id ? saved : null;
  } catch {
    return null;
  }
}

function connect() {
  clearTimeout(retryTimer);
  const saved = savedSession();
  resuming = Boolean(saved);
  refusal = "";
  const own = new CallerSocket("/caller", saved || {}, {
    connected: () => {
      retries = 0;
      goingAwayMs = null;
      restarting = false;
      clearError(UNREACHABLE);
      clearError(RESTARTING);
      if (lastRefusal) clearError(lastRefusal);
    },
    refused: (message) => {
      // e.g. "the assistant is unavailable right now": say so, then retry.
      refusal = `${capitalized(message).replace(/[.!]?$/, ".")} Retrying…`;
      if (message === "bad connection parameters") sessionStorage.removeItem(STORE);
      own.close();
    },
    disconnected: () => {
      if (own !== socket) return;
      lostConnection();
    },
    going_away: (notice) => {
      const within = Number(notice?.reconnect_within_ms);
      goingAwayMs = Number.isFinite(within) ? Math.min(Math.max(within, 0), 5000) : 1000;
    },
    status: onStatus,
    error: onServerError,
    speech: onSpeech,
    stage: (event) => {
      stats.lastTurnKey = event.turn_key;
      // The edge is done sending before the speaker is done playing: keep "speaking".
      if (!(event.stage === "idle" && playingTurn)) setStage(event.stage);
    },
    transcript: onTranscript,
    reply_text: onReplyText,
    reply: (reply) => {
      stats.lastTurnKey = reply.turn_key;
      settleReply(turnFor(reply.turn_key), reply);
    },
    audio_out: onAudioOut,
    audio_done: onAudioDone,
    timings: (timings) => {
      const turn = turnFor(timings.turn_key);
      turn.timings = timings;
      renderLatency(turn);
    },
    transfer: onTransfer,
    assistant: onAssistant,
    bridge_audio: onBridgeAudio,
  });
  socket = own;
  mic.seq = 0; // audio_frame seq starts at 0 on each connection and only increases
  own.open();
}

function lostConnection() {
  mic.streaming = false;
  mic.buffering = false;
  mic.backlog = [];
  mic.queue = Promise.resolve();
  if (playingTurn) {
    audioDone.add(playingTurn); // no audio_done will come for it now
    audio.endTurn(playingTurn);
  }
  if (ended) return; // the call is over: the caller starts a new one with #restart
  lastRefusal = refusal;
  if (goingAwayMs !== null) {
    // A planned restart: back at once (its successor may need a moment: then back off).
    restarting = true;
    showError(RESTARTING);
    setStatus("Reconnecting…");
    retryTimer = setTimeout(connect, Math.random() * goingAwayMs);
    goingAwayMs = null;
    return;
  }
  showError(restarting ? RESTARTING : refusal || UNREACHABLE);
  setStatus("Reconnecting…");
  // Back off 0.5 s, 1 s, 2 s, 4 s, then every 5 s.
  const delay = Math.min(5000, 500 * 2 ** retries);
  retries += 1;
  retryTimer = setTimeout(connect, delay);
}

function onStatus(status) {
  conversationId = status.conversation_id;
  authenticated = status.authenticated;
  if (status.caller_name) callerName = status.caller_name;
  if (!status.authenticated) sessionStorage.removeItem(STORE);
  if (resuming && !status.authenticated && status.state === "awaiting-auth") {
    showError("Your session has ended. Please enter your PIN again.");
  }
  resuming = false;
  const labels = {
    "awaiting-auth": "Enter your PIN to start.",
    active: activeLabel(),
    transferring: `Transfer requested to ${status.transfer?.department ?? "an agent"}.`,
    bridged: "Connected to an agent.",
    ended: "The call has ended.",
  };
  setStatus(labels[status.state] || status.state);
  ended = status.state === "ended";
  show("login", status.state === "awaiting-auth");
  show("conversation", status.authenticated && !ended);
  show("restart", ended);
  if (ended) endVoice();
  else if (status.authenticated && mic.handsFree && !mic.streaming && !mic.buffering) {
    openMic("hands_free"); // back after a reconnect: the edge forgot the open microphone
  }
  if (!ended) {
    syncTransfer(status);
    // A late status of a turn (e.g. "transferring" after the agent answered) does not
    // overwrite where the transfer is.
    if (transfer && !TRANSFER_FINAL.has(transfer.state)) showTransferStatusLine();
  }
}

function onServerError(error) {
  // Acknowledged events show their own failures; these arrive only as `error` events.
  if (error.code === "not_authenticated" && (mic.handsFree || mic.held)) {
    stopVoice();
    showError(error.message);
  } else if (error.code === "rejected" && error.message && !transfer?.live) {
    // A spoken turn the assistant refused (e.g. the call moved on): say why. While the
    // caller talks with an agent the microphone is theirs, so a late refusal is no news.
    showError(error.message);
  } else if (error.code === "bad_audio" || error.code === "rate_limited") {
    console.debug("audio frame dropped by the edge:", error.message);
  }
}

// ---- login -----------------------------------------------------------------------------

function failure(ack) {
  return ack.ok ? "" : ack.error?.message || "That did not work.";
}

async function login(event) {
  event.preventDefault();
  showError("");
  const pin = $("pin").value;
  $("pin").value = "";
  audio.ensure().catch(() => {}); // a user gesture: let reply audio play later
  $("login-submit").disabled = true;
  try {
    const ack = await socket.call("authenticate", { pin });
    if (!ack.ok) return showError(failure(ack));
    const result = ack.data;
    if (!result.ok) {
      showError(result.reason); // wrong PIN, or locked out: the server's words
      const left = result.state !== "ended" && result.attempts_left > 0;
      $("attempts").textContent = left
        ? `${result.attempts_left} ${result.attempts_left === 1 ? "try" : "tries"} left.`
        : "";
      show("attempts", left);
      return;
    }
    show("attempts", false);
    authenticated = true;
    callerName = result.caller_name || "";
    // Kept for this tab only, so a reconnect resumes the same conversation.
    sessionStorage.setItem(
      STORE,
      JSON.stringify({ conversation_id: conversationId, session_token: result.session_token }),
    );
    show("login", false);
    show("conversation", true);
    setStatus(`Talking with the assistant as ${result.caller_name}.`);
    addLine("assistant", result.greeting);
    $("text").focus();
  } catch (error) {
    showError(`Could not reach the assistant (${error.message}).`);
  } finally {
    $("login-submit").disabled = false;
  }
}

// ---- typed turns -----------------------------------------------------------------------

async function say(event) {
  event.preventDefault();
  showError("");
  const text = $("text").value.trim();
  if (!text) return;
  $("text").value = "";
  audio.ensure().catch(() => {});
  const turn = newTurn(null);
  turn.user = addLine("user", text);
  keylessTyped.push(turn);
  setStage("thinking");
  try {
    // Spoken too: its events (reply_text, audio_out, ...) carry a `t…` turn key.
    const ack = await socket.call("text_turn", { text, speak: true });
    if (!ack.ok) {
      forgetTyped(turn);
      settleStage();
      // e.g. "You're connected with Dana Agent; the assistant is paused." (gone after the call)
      if (transfer?.live) transfer.refusal = failure(ack);
      return showError(failure(ack));
    }
    if (ack.data.turn_key && !turn.key) nameTypedTurn(turn, ack.data.turn_key);
    forgetTyped(turn);
    settleReply(turn, ack.data);
  } catch (error) {
    forgetTyped(turn);
    settleStage();
    showError(`Could not reach the assistant (${error.message}).`);
  }
}

function forgetTyped(turn) {
  keylessTyped = keylessTyped.filter((other) => other !== turn);
}

async function hangUp() {
  endVoice();
  await socket.call("hang_up", {}, 10000).catch(() => {});
  sessionStorage.removeItem(STORE);
}

function restart() {
  sessionStorage.removeItem(STORE);
  ended = false;
  showError("");
  show("restart", false);
  $("transcript").replaceChildren();
  turns.clear();
  clearTransfer();
  const old = socket;
  socket = null; // its close is not a network drop
  old?.close();
  connect();
}

// ---- microphone ------------------------------------------------------------------------

// `mic` commands are sent one after the other, so an open and a close never cross.
function micCommand(command) {
  mic.queue = mic.queue.then(command, command).catch(() => {});
  return mic.queue;
}

function openMic(mode) {
  const generation = ++mic.generation;
  mic.streaming = false;
  mic.buffering = true;
  mic.backlog = [];
  micCommand(async () => {
    let ack = null;
    try {
      ack = await socket.call("mic", { open: true, mode }, 3000);
    } catch {
      // No answer (an edge without voice yet, or a dropped link): stream anyway; the edge
      // answers bad frames with `error` events, which never break the page.
    }
    const backlog = mic.backlog;
    mic.backlog = [];
    mic.buffering = false;
    if (ack && !ack.ok) {
      if (generation === mic.generation) {
        showError(failure(ack));
        stopVoice();
      }
      return;
    }
    // Frames captured while waiting (e.g. a quick push-to-talk) go out before any close.
    for (const pcm of backlog) sendFrame(pcm);
    if (generation === mic.generation) mic.streaming = true;
  });
}

function closeMic() {
  mic.generation += 1;
  mic.streaming = false;
  micCommand(() => socket.call("mic", { open: false }, 3000));
}

function sendFrame(pcm) {
  if (socket.bufferedAmount > MAX_BUFFERED_BYTES) return; // the link stalls: shed audio
  if (socket.emit("audio_frame", { seq: mic.seq, rate: RATE, pcm })) {
    mic.seq += 1;
    stats.framesSent += 1;
    if (transfer?.live) stats.bridgeFramesOut += 1;
  }
}

function levelOf(rms) {
  // 0 at -60 dBFS (or silence), 1 at 0 dBFS.
  if (rms <= 0) return 0;
  return Math.max(0, Math.min(1, (20 * Math.log10(rms) + 60) / 60));
}

function onMicFrame(pcm, rms) {
  stats.micFrames += 1;
  $("level").value = levelOf(rms);
  const live = mic.handsFree || mic.held;
  if (!live) return;
  // Talking with an agent: no barge-in (it must never cut the agent's voice).
  mic.loud = rms > BARGE_IN_RMS && !transfer?.live ? mic.loud + 1 : 0;
  if (mic.loud >= BARGE_IN_FRAMES) {
    if (playingTurn && !interrupted.has(playingTurn)) bargeIn();
    if (currentStage() === "idle") setStage("listening");
  }
  if (mic.streaming) sendFrame(pcm);
  else if (mic.buffering) {
    mic.backlog.push(pcm);
    if (mic.backlog.length > MAX_BACKLOG) mic.backlog.shift();
  }
}

function micFailed(error) {
  showError(
    error instanceof MicError
      ? error.message
      : `The microphone could not start (${error.message}); type your request below.`,
  );
}

function updateVoiceButtons() {
  $("mic").setAttribute("aria-pressed", String(mic.handsFree));
  $("mic").classList.toggle("on", mic.handsFree);
  $("ptt").classList.toggle("on", mic.held);
  $("ptt").disabled = mic.handsFree;
  if (!audio.capturing) $("level").value = 0;
}

async function toggleHandsFree() {
  if (transfer) transfer.restoreMicOff = false; // the caller's own choice stays after a call
  if (mic.handsFree) {
    stopHandsFree();
    return;
  }
  if ($("mic").getAttribute("aria-busy") === "true") return;
  showError("");
  await startHandsFree();
}

function stopHandsFree() {
  mic.handsFree = false;
  closeMic();
  audio.stopMic();
  updateVoiceButtons();
  settleStage();
}

// True once the microphone streams hands-free (or is about to: the edge acknowledges).
async function startHandsFree() {
  $("mic").setAttribute("aria-busy", "true");
  try {
    await audio.startMic();
  } catch (error) {
    micFailed(error);
    return false;
  } finally {
    $("mic").setAttribute("aria-busy", "false");
  }
  if (ended || !authenticated) {
    audio.stopMic();
    return false;
  }
  stats.micStartedAt = performance.now();
  mic.handsFree = true;
  mic.held = false;
  mic.pttOpen = false;
  updateVoiceButtons();
  openMic("hands_free");
  settleStage();
  return true;
}

async function pttDown() {
  if (mic.handsFree || mic.held || !authenticated || ended) return;
  mic.held = true;
  mic.pttOpen = false;
  updateVoiceButtons();
  // Talking over the reply (never over the agent: no barge-in while connected with one).
  if (playingTurn && !interrupted.has(playingTurn) && !transfer?.live) bargeIn();
  const starting = !audio.capturing;
  try {
    await audio.startMic();
  } catch (error) {
    mic.held = false;
    updateVoiceButtons();
    micFailed(error);
    return;
  }
  if (starting) stats.micStartedAt = performance.now();
  if (!mic.held) return; // released before the microphone was ready
  showError("");
  mic.pttOpen = true;
  openMic("push_to_talk");
  setStage("listening");
}

function pttUp() {
  if (!mic.held) return;
  mic.held = false;
  mic.loud = 0;
  if (mic.pttOpen) closeMic();
  mic.pttOpen = false;
  updateVoiceButtons();
  if (currentStage() === "listening") setStage("idle");
}

// The microphone off, as the caller would turn it off.
function stopVoice() {
  if (mic.handsFree || mic.pttOpen) closeMic();
  mic.handsFree = false;
  mic.held = false;
  mic.pttOpen = false;
  audio.stopMic();
  updateVoiceButtons();
}

// The call is over: no microphone, no more reply audio.
function endVoice() {
  if (transfer?.live) {
    transfer.live = false;
    stopTransferTimer();
  }
  mic.handsFree = false;
  mic.held = false;
  mic.pttOpen = false;
  mic.streaming = false;
  mic.buffering = false;
  mic.generation += 1;
  audio.stopMic();
  audio.flush();
  playingTurn = null;
  updateVoiceButtons();
  setStage("idle");
}

// ---- reply audio and barge-in ----------------------------------------------------------

function onAudioOut(frame) {
  stats.lastTurnKey = frame.turn_key;
  if (interrupted.has(frame.turn_key) || ended) return; // the caller cut this reply off
  if (transfer?.live) return; // a late reply of the assistant: the agent is talking now
  if (!(frame.pcm instanceof ArrayBuffer)) return;
  playingTurn = frame.turn_key;
  audio.play(frame.turn_key, frame.pcm, frame.rate || RATE);
}

function onAudioDone(done) {
  const key = done.turn_key;
  stats.lastTurnKey = key;
  audioDone.add(key);
  if (done.interrupted) {
    // The edge cut the reply short (its own barge-in): stop now and mark it.
    if (playingTurn === key) {
      audio.flush();
      finishPlayback();
    }
    markInterrupted(key);
  } else if (playingTurn === key) {
    audio.endTurn(key); // the worklet plays out the rest, then reports "drained"
  } else if (playingTurn === null) {
    settleStage();
  }
}

function finishPlayback() {
  playingTurn = null;
  stats.playbackStoppedAt = performance.now();
  settleStage();
}

function onPlayback(message) {
  if (isBridgeKey(message.turnKey)) return; // the agent's voice: not a reply of the assistant
  if (message.type === "started") {
    workletPlaying = true;
    stats.playbackStartedAt = performance.now();
    setStage("speaking");
  } else if (message.type === "progress") {
    stats.playedFrames = message.framesPlayed;
    stats.playedPeakRms = message.peakRms;
    playedSamples.set(message.turnKey, message.turnSamples);
  } else if (message.type === "drained" || message.type === "flushed") {
    if (message.turnKey) playedSamples.set(message.turnKey, message.turnSamples);
    const wasPlaying = workletPlaying;
    workletPlaying = false;
    if (message.type === "flushed") {
      if (wasPlaying) stats.playbackStoppedAt = performance.now();
    } else if (playingTurn && audioDone.has(playingTurn)) {
      finishPlayback();
    }
  }
}

function markInterrupted(key) {
  interrupted.add(key);
  turns.get(key)?.assistant?.classList.add("interrupted");
}

function bargeIn() {
  const key = playingTurn;
  audio.flush();
  playingTurn = null;
  markInterrupted(key);
  stats.bargeInAt = performance.now();
  const playedMs = Math.round(((playedSamples.get(key) || 0) * 1000) / RATE);
  socket.call("barge_in", { turn_key: key, played_ms: playedMs }, 5000).catch(() => {});
  setStage("listening");
}

// ---- voice events from the edge --------------------------------------------------------

function onSpeech(event) {
  stats.lastTurnKey = event.turn_key;
  if (event.event === "start") setStage("listening");
  else if (event.event === "end") setStage("thinking");
}

function onTranscript(event) {
  stats.lastTurnKey = event.turn_key;
  const turn = turnFor(event.turn_key);
  if (turn.key.startsWith("t")) return; // a typed turn: its text is already shown
  if (!turn.user) {
    if (!event.text) return;
    turn.user = addLine("user", "", turn.assistant);
  }
  lineText(turn.user, event.text);
  turn.user.classList.toggle("interim", !event.final);
  if (event.final && !event.text) {
    turn.user.remove();
    turn.user = null;
  }
}

function onReplyText(event) {
  stats.lastTurnKey = event.turn_key;
  const turn = turnFor(event.turn_key);
  turn.text += event.text;
  lineText(assistantLine(turn), turn.text);
  if (currentStage() === "listening" || currentStage() === "idle") setStage("thinking");
}

// ---- transfers to a human agent -------------------------------------------------------

const TRANSFER_ORDER = ["requested", "dialing", "ringing", "answered", "bridged", "ended", "failed"];
const TRANSFER_LIVE = new Set(["answered", "bridged"]);
const TRANSFER_FINAL = new Set(["ended", "failed"]);
const FAILURE_WORDS = {
  "no-answer": "nobody answered",
  busy: "everyone is busy",
  rejected: "the call was declined",
  "no-agent": "nobody is available right now",
  error: "something went wrong",
};

function activeLabel() {
  return `Talking with the assistant${callerName ? ` as ${callerName}` : ""}.`;
}

function agentLabel(current) {
  return current.agentName || "the agent";
}

function departmentLabel(current) {
  return current.department || "the team";
}

function isBridgeKey(key) {
  return typeof key === "string" && key.startsWith("bridge:");
}

function transferText(current) {
  const agent = agentLabel(current);
  const department = departmentLabel(current);
  switch (current.state) {
    case "requested":
      return current.department
        ? `Finding someone in ${department}…`
        : "Finding someone to help you…";
    case "dialing":
      return current.agentName ? `Calling ${agent}…` : `Calling ${department}…`;
    case "ringing":
      return current.agentName ? `Ringing ${agent}…` : `Ringing ${department}…`;
    case "answered":
      return `${capitalized(agent)} answered. Connecting…`;
    case "bridged":
      return current.onHold ? "On hold" : `Connected with ${agent}`;
    case "failed": {
      const why = FAILURE_WORDS[current.reason] || "the call did not go through";
      return `Couldn't reach ${department}: ${why}`;
    }
    case "ended":
      return current.agentName ? `Call with ${agent} ended` : "Call ended";
    default:
      return "";
  }
}

function renderTransfer() {
  const box = $("transfer-status");
  if (!transfer) {
    box.textContent = "";
    box.dataset.state = "";
    delete box.dataset.hold;
    show("transfer", false);
    return;
  }
  box.textContent = transferText(transfer);
  box.dataset.state = transfer.state;
  if (transfer.onHold && transfer.live) box.dataset.hold = "true";
  else delete box.dataset.hold;
  show("transfer", true);
  show("transfer-timer", transfer.state === "bridged" && transfer.bridgedAt !== null);
}

function formatClock(totalSeconds) {
  const seconds = Math.max(0, Math.floor(totalSeconds));
  const m = Math.floor(seconds / 60);
  return `${m}:${String(seconds % 60).padStart(2, "0")}`;
}

function startTransferTimer(current) {
  if (current.bridgedAt !== null) return;
  current.bridgedAt = performance.now();
  stopTransferTimer();
  const tick = () => {
    $("transfer-timer").textContent = formatClock((performance.now() - current.bridgedAt) / 1000);
  };
  tick();
  transferTimer = setInterval(tick, 500);
}

function stopTransferTimer() {
  clearInterval(transferTimer);
  transferTimer = null;
}

function clearTransfer() {
  stopTransferTimer();
  transfer = null;
  stats.transferState = null;
  $("transfer-timer").textContent = "";
  renderTransfer();
}

// A status (e.g. after a reload or a reconnect) names the transfer under way: pick it up,
// or learn how the one on screen ended while the page was away.
function syncTransfer(status) {
  const info = status.transfer;
  if (!status.authenticated || !info?.transfer_id) return;
  const id = String(info.transfer_id);
  const known = transfer?.id === id;
  if (!known && status.state !== "transferring" && status.state !== "bridged") return;
  onTransfer({
    transfer_id: id,
    state: info.status,
    department: info.department,
    agent_name: info.agent_name,
    reason: info.outcome,
    on_hold: known ? transfer.onHold : false, // a status does not say; keep what the page knows
  });
}

function onTransfer(event) {
  if (!event || typeof event !== "object") return;
  const state = String(event.state ?? "");
  if (!TRANSFER_ORDER.includes(state)) return;
  const id = String(event.transfer_id ?? "");
  const fresh =
    !transfer || transfer.id !== id || (TRANSFER_FINAL.has(transfer.state) && state === "requested");
  if (!fresh) {
    // Late or repeated news of the same transfer never moves it backwards (a hold change
    // repeats "bridged"); nothing follows its end.
    if (TRANSFER_FINAL.has(transfer.state)) return;
    if (TRANSFER_ORDER.indexOf(state) < TRANSFER_ORDER.indexOf(transfer.state)) return;
  } else {
    if (transfer?.live) leaveBridge(); // a new transfer while the last one still looked live
    stopTransferTimer();
    $("transfer-timer").textContent = "";
    transfer = {
      id,
      state,
      department: "",
      agentName: "",
      reason: "",
      onHold: false,
      live: false,
      bridgedAt: null,
      restoreMicOff: false,
      refusal: "", // a typed turn refused during the call: its message goes with the call
    };
  }
  transfer.state = state;
  if (event.department) transfer.department = String(event.department);
  if (event.agent_name) transfer.agentName = String(event.agent_name);
  transfer.reason = event.reason ? String(event.reason) : "";
  transfer.onHold = Boolean(event.on_hold) && TRANSFER_LIVE.has(state);
  stats.transferState = state;

  if (TRANSFER_LIVE.has(state) && !transfer.live && !ended) enterBridge();
  else if (TRANSFER_FINAL.has(state) && transfer.live) leaveBridge();
  if (state === "bridged") startTransferTimer(transfer);
  renderTransfer();
  if (!ended) showTransferStatusLine();
  settleStage();
}

// The page's status line (#status) during and after a transfer.
function showTransferStatusLine() {
  if (transfer.live) setStatus(`Connected to ${agentLabel(transfer)}.`);
  else if (TRANSFER_FINAL.has(transfer.state)) setStatus(activeLabel());
  else setStatus(`Transfer requested to ${departmentLabel(transfer)}.`);
}

// The agent answered: their voice plays, the microphone (hands-free, opened now if it was
// off) goes to them, and nothing the caller says interrupts them.
function enterBridge() {
  const current = transfer;
  current.live = true;
  if (playingTurn) {
    // The edge stops relaying the assistant's reply: no audio_done will come for it.
    audioDone.add(playingTurn);
    playingTurn = null;
  }
  audio.flush();
  mic.loud = 0;
  audio.ensure().catch(() => {});
  current.restoreMicOff = !mic.handsFree;
  if (!mic.handsFree) {
    if (mic.held) pttUp();
    startHandsFree().then((started) => {
      if (!started && current === transfer) current.restoreMicOff = false;
      if (!started && current.live) {
        showError(
          "The microphone could not start, so the agent can't hear you. Turn on hands-free to talk.",
        );
      }
    });
  }
}

// The call with the agent is over: the assistant is back, the microphone as it was before.
function leaveBridge() {
  const current = transfer;
  current.live = false;
  current.onHold = false;
  stopTransferTimer();
  audio.flush(); // any of the agent's voice still queued
  if (current.restoreMicOff && mic.handsFree && !ended) stopHandsFree();
  current.restoreMicOff = false;
  if (current.refusal) clearError(current.refusal);
}

function onBridgeAudio(frame) {
  let pcm = frame?.pcm;
  if (ArrayBuffer.isView(pcm)) {
    pcm = pcm.buffer.slice(pcm.byteOffset, pcm.byteOffset + pcm.byteLength);
  }
  if (!(pcm instanceof ArrayBuffer)) return;
  const usable = pcm.byteLength - (pcm.byteLength % 2);
  if (usable === 0) return;
  stats.bridgeFramesIn += 1;
  const samples = new Int16Array(pcm, 0, usable / 2); // read before the buffer is transferred
  const heard = stats.bridgeHeard;
  const count = Math.min(BRIDGE_HEARD_LIMIT - heard.length, samples.length);
  for (let i = 0; i < count; i++) heard.push(samples[i]);
  if (!transfer?.live || ended) return;
  const owned = usable === pcm.byteLength ? pcm : pcm.slice(0, usable);
  audio.play(`bridge:${transfer.id}`, owned, Number(frame.rate) || RATE, BRIDGE_MAX_QUEUED);
}

// The assistant speaks up on its own (after a transfer); its audio follows as `audio_out`
// frames of this turn key, played like any reply.
function onAssistant(event) {
  if (!event || typeof event.text !== "string" || !event.text) return;
  const key = String(event.turn_key ?? "");
  stats.lastTurnKey = key;
  let turn = turns.get(key);
  if (!turn) {
    // Not a typed turn's key even though it starts with "t": never given to one.
    turn = newTurn(key);
    turns.set(key, turn);
  }
  turn.text = event.text;
  const line = assistantLine(turn);
  lineText(line, event.text);
  line.classList.remove("streaming");
}

// ---- wiring ----------------------------------------------------------------------------

function typingInto(target) {
  return target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement;
}

attachPinPad($("pinpad"), $("pin"));
$("login").addEventListener("submit", login);
$("say").addEventListener("submit", say);
$("hangup").addEventListener("click", hangUp);
$("restart").addEventListener("click", restart);
$("mic").addEventListener("click", () => {
  audio.ensure().catch(() => {});
  toggleHandsFree();
});

const ptt = $("ptt");
ptt.addEventListener("pointerdown", (event) => {
  if (event.button !== 0) return;
  ptt.setPointerCapture(event.pointerId); // the release counts even off the button
  audio.ensure().catch(() => {});
  pttDown();
});
for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
  ptt.addEventListener(type, pttUp);
}
ptt.addEventListener("contextmenu", (event) => event.preventDefault()); // long press on phones
ptt.addEventListener("keydown", (event) => {
  if ((event.key === "Enter" || event.key === " ") && !event.repeat) {
    event.preventDefault();
    audio.ensure().catch(() => {});
    pttDown();
  }
});
ptt.addEventListener("keyup", (event) => {
  if (event.key === "Enter" || event.key === " ") pttUp();
});

// The space bar talks anywhere on the page, except while typing.
document.addEventListener("keydown", (event) => {
  if (event.code !== "Space" || event.repeat || typingInto(event.target)) return;
  if (event.target === ptt || $("conversation").hidden) return;
  event.preventDefault();
  audio.ensure().catch(() => {});
  pttDown();
});
document.addEventListener("keyup", (event) => {
  if (event.code === "Space" && event.target !== ptt) pttUp();
});
window.addEventListener("blur", pttUp); // a key released in another window

// Browsers start audio only after a gesture: any tap lets pending reply audio play.
document.addEventListener("pointerdown", () => audio.ready && audio.ensure().catch(() => {}));

connect();
