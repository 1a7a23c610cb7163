// The agent dashboard: log in over REST (HttpOnly cookie + CSRF token kept in memory only),
// then the /agent Socket.IO namespace for the agent's state, rings and call states. Calls are
// answered with the built-in softphone (audio over the same socket, builtin-phone.js) or,
// in "pbx" mode, with a SIP phone (softphone-sip.js, JsSIP) registered to the PBX.
// Everything a caller or the assistant said is shown with textContent only, never as markup.
import { CallerSocket } from "/socket.js";
import { MicError, RATE } from "/voice.js";
import { BuiltinPhone, MicProblem } from "/agent/builtin-phone.js";
import { clearPopup, formatClock, renderFallback, renderScreenPop, setDetailsStatus } from "/agent/popup.js";
import { Ringer } from "/agent/ring.js";

const $ = (id) => document.getElementById(id);
const HEARD_LIMIT = 20 * RATE; // caller samples kept for the tests: 20 s
const STATE_LABELS = {
  ready: "Ready",
  "not-ready": "Not ready",
  "on-call": "On a call",
  "wrap-up": "Wrap-up",
};
const DISPOSITIONS = ["resolved", "follow-up", "escalated", "no-action"];
const NOTES_MAX = 2000;
const LIVE = new Set(["answered", "bridged"]);
const FINAL = new Set(["ended", "failed"]);
const SESSION_ENDED = "Your session has ended. Please log in again.";
const RING_GRACE_S = 5; // after the countdown, the server says how the call ended

// ---- test hooks ------------------------------------------------------------------------
// window.convonetAgent, updated live:
//   mode      "builtin" | "pbx" | null (logged out)
//   state     the agent's state: "ready" | "not-ready" | "on-call" | "wrap-up" | null
//   phone     "connected" | "registered" | "offline"
//   call      null, or {transfer_id, call_record_id, conversation_id, caller_name, state}
//             state: "ringing" | "answered" | "bridged" | "ended" | "failed". An unanswered
//             call is null again as soon as it ends (declined, missed, failed); an answered
//             one stays "ended" until its disposition is saved.
//   lastCall  the same snapshot of the latest call that finished (extra, for tests)
//   ringing   true while the ring tone loops (extra)
//   stats     {framesIn, framesOut}: audio_in frames received, audio_frame frames sent
//   heard     the caller audio received, as Int16 sample numbers, at most 20 s
//   takeHeard() returns `heard` and empties it
const hooks = {
  mode: null,
  state: null,
  phone: "offline",
  call: null,
  lastCall: null,
  ringing: false,
  stats: { framesIn: 0, framesOut: 0 },
  heard: [],
  takeHeard() {
    return hooks.heard.splice(0);
  },
};
window.convonetAgent = hooks;

// ---- page state ------------------------------------------------------------------------

let session = null; // {agent, csrf, mode, generation} while logged in
let generation = 0; // bumped at every login and logout: late answers of old ones are dropped
let socket = null;
let socketRetries = 0;
let socketTimer = null;
// Set by `going_away` (the server is restarting): reconnect within this many ms.
let goingAwayMs = null;
let phone = null; // BuiltinPhone or PbxPhone
let builtinPhone = null;
let current = null; // the call on screen (see callSnapshot for its public part)
let wrap = null; // {call_record_id, caller_name}: the disposition form is waiting for it
let countdownTimer = null;
let callTimer = null;
const pendingPops = new Map(); // pbx mode: ScreenPops that came as `ring`, by conversation_id

const ringer = new Ringer({
  onBlocked: (blocked) => {
    $("ring-blocked").hidden = !(blocked && current?.state === "ringing");
  },
});

// ---- small view helpers ----------------------------------------------------------------

function showText(id, message) {
  const element = $(id);
  element.textContent = message || "";
  element.hidden = !message;
}

function showError(message) {
  showText("agent-error", message);
}

function showCallError(message) {
  showText("call-error", message);
}

function setNotice(message) {
  $("notice").textContent = message || "";
}

function setPageStatus(message) {
  $("page-status").textContent = message;
}

function setPhone(kind, label) {
  hooks.phone = kind;
  $("phone-status").textContent = label;
  $("phone-status").dataset.phone = kind;
}

function callSnapshot(call) {
  if (!call) return null;
  return {
    transfer_id: call.transfer_id,
    call_record_id: call.call_record_id,
    conversation_id: call.conversation_id,
    caller_name: call.caller_name,
    state: call.state,
  };
}

function publishCall() {
  hooks.call = callSnapshot(current);
}

function same(a, b) {
  return a !== null && a !== undefined && b !== null && b !== undefined && String(a) === String(b);
}

// ---- REST ------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const STATUS_MESSAGES = {
  401: SESSION_ENDED,
  403: "That is not allowed. Reload the page and try again.",
  404: "Not found.",
  429: "Too many attempts. Wait a while, then try again.",
};

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && session?.csrf) headers["X-CSRF-Token"] = session.csrf;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "Can't reach Convonet. Check the connection and try again.");
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    const raw = await response.text();
    data = raw ? JSON.parse(raw) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const detail = typeof data?.detail === "string" && data.detail ? data.detail : null;
    throw new ApiError(
      response.status,
      detail || STATUS_MESSAGES[response.status] || `Convonet answered with an error (${response.status}).`,
    );
  }
  return data;
}

// A REST failure inside the dashboard: a lost session logs out, the rest is shown.
function restFailed(error, show) {
  if (error instanceof ApiError && error.status === 401 && session) {
    endSession(SESSION_ENDED);
    return;
  }
  show(error.message);
}

// ---- login and logout ------------------------------------------------------------------

function showLogin(message = "") {
  $("dashboard").hidden = true;
  $("login-form").hidden = false;
  showText("login-error", message);
  setPageStatus("Log in to take calls.");
  document.title = "Convonet agent";
}

async function login(event) {
  event.preventDefault();
  ringer.unlock(); // this click lets the ring tone sound later
  const name = $("agent-login").value.trim();
  const password = $("agent-password").value;
  if (!name || !password) {
    showText("login-error", "Enter your login and password.");
    return;
  }
  showText("login-error", "");
  $("agent-login-button").disabled = true;
  setPageStatus("Logging in…");
  const mine = ++generation;
  try {
    const data = await api("POST", "/api/agent/login", { login: name, password });
    if (mine !== generation) return;
    startSession(data);
  } catch (error) {
    if (mine !== generation) return;
    showLogin(error.status === 401 ? error.message || "Wrong login or password." : error.message);
    $("agent-password").focus();
  } finally {
    $("agent-password").value = "";
    $("agent-login-button").disabled = false;
  }
}

function startSession(data) {
  const agent = data?.agent || {};
  const mode = data?.mode === "pbx" ? "pbx" : "builtin";
  session = { agent, csrf: data?.csrf_token || null, mode, generation };
  hooks.mode = mode;
  hooks.stats.framesIn = 0;
  hooks.stats.framesOut = 0;
  hooks.heard.length = 0;
  $("agent-name").textContent = agent.name || "Agent";
  $("agent-extension").textContent = agent.extension == null ? "—" : String(agent.extension);
  $("login-form").hidden = true;
  showText("login-error", "");
  $("dashboard").hidden = false;
  showError("");
  setNotice("");
  $("disposition-saved").hidden = true;
  setPageStatus(mode === "pbx" ? "Logged in. Calls ring on your SIP phone here." : "Logged in.");
  setAgentState(agent.state);
  setPhone("offline", "Connecting…");
  connectSocket();
  if (mode === "builtin") {
    // One for the page's lifetime: its AudioContext is reused by the next login.
    builtinPhone ??= new BuiltinPhone({
      socket: () => socket,
      onFrameIn: heardFrame,
      onFrameOut: () => {
        hooks.stats.framesOut += 1;
      },
      onLevel: (rms) => {
        $("mic-level").value = levelOf(rms);
      },
    });
    phone = builtinPhone;
  } else {
    phone = new PbxPhone(session.generation);
    phone.start().catch((error) => {
      if (phone?.generation !== session?.generation) return;
      setPhone("offline", "Offline");
      restFailed(error, (message) => showError(`The SIP phone could not start: ${message}`));
    });
  }
  renderAll();
  $("state-buttons").querySelector('[data-state="ready"]').focus();
}

// Everything of the session off: socket, phone, ringing, timers, call.
function teardown() {
  generation += 1;
  clearTimeout(socketTimer);
  const old = socket;
  socket = null; // its close is not a network drop
  old?.close();
  phone?.stop();
  phone = null;
  stopRinging();
  stopCountdown();
  stopCallTimer();
  current = null;
  wrap = null;
  session = null;
  pendingPops.clear();
  hooks.mode = null;
  hooks.state = null;
  hooks.call = null;
  setPhone("offline", "Offline");
  $("call-popup").hidden = true;
  $("disposition-form").hidden = true;
  $("disposition-saved").hidden = true;
  showCallError("");
  showError("");
}

function endSession(message) {
  teardown();
  showLogin(message);
  $("agent-login").focus();
}

async function logout() {
  if (!session) return;
  const button = $("logout");
  button.disabled = true;
  try {
    if (current?.state === "ringing" && phone) await phone.decline(current).catch(() => {});
    await api("POST", "/api/agent/logout");
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) {
      showError(`Could not log out: ${error.message}`);
      button.disabled = false;
      renderAll();
      return;
    }
  }
  button.disabled = false;
  endSession("");
  setPageStatus("Logged out.");
}

// ---- the /agent socket -----------------------------------------------------------------

function connectSocket() {
  clearTimeout(socketTimer);
  const own = new CallerSocket("/agent", {}, {
    connected: () => {
      if (own !== socket) return;
      socketRetries = 0;
      goingAwayMs = null;
      if (session?.mode === "builtin") setPhone("connected", "Connected");
      setNotice("");
      renderAll();
    },
    refused: (message) => {
      if (own !== socket) return;
      socket = null;
      own.close();
      // "not logged in": the session cookie is gone or expired. Ask REST to be sure.
      if (/not logged in/i.test(String(message))) checkSession();
      else lostSocket(message);
    },
    disconnected: () => {
      if (own !== socket) return;
      socket = null;
      lostSocket("");
    },
    going_away: (notice) => {
      const within = Number(notice?.reconnect_within_ms);
      goingAwayMs = Number.isFinite(within) ? Math.min(Math.max(within, 0), 5000) : 1000;
    },
    agent_state: (payload) => setAgentState(payload?.state),
    ring: (payload) => onRing(payload?.call),
    call_state: onServerCallState,
    audio_in: (frame) => {
      if (own === socket) phone?.receive?.(frame);
    },
  });
  socket = own;
  own.open();
}

function lostSocket(reason) {
  if (!session) return;
  if (session.mode === "builtin") setPhone("offline", "Reconnecting…");
  else setNotice("The dashboard lost its link to Convonet. Reconnecting…");
  if (reason) setNotice(`Convonet refused the connection (${reason}). Retrying…`);
  renderAll();
  // Back off 0.5 s, 1 s, 2 s, 4 s, then every 5 s; after a planned restart, at once.
  const delay =
    goingAwayMs !== null ? Math.random() * goingAwayMs : Math.min(5000, 500 * 2 ** socketRetries);
  if (goingAwayMs === null) socketRetries += 1;
  goingAwayMs = null;
  const mine = session.generation;
  socketTimer = setTimeout(() => {
    if (session?.generation === mine && !socket) connectSocket();
  }, delay);
}

async function checkSession() {
  const mine = session?.generation;
  try {
    await api("GET", "/api/agent/me");
    if (session?.generation === mine) lostSocket(""); // still logged in: just reconnect
  } catch (error) {
    if (session?.generation !== mine) return;
    if (error.status === 401) endSession(SESSION_ENDED);
    else lostSocket("");
  }
}

// An acknowledged event on the socket: resolves with ack.data or throws the server's words.
async function request(event, payload) {
  if (!socket?.connected) throw new Error("Not connected to Convonet yet. Try again in a moment.");
  let ack;
  try {
    ack = await socket.call(event, payload, 10000);
  } catch (error) {
    throw new Error(error?.message === "no answer" ? "Convonet did not answer in time." : "The connection was lost.");
  }
  if (!ack?.ok) throw new Error(ack?.error?.message || "Convonet refused that.");
  return ack.data ?? null;
}

// ---- agent state -----------------------------------------------------------------------

function setAgentState(state) {
  if (!Object.hasOwn(STATE_LABELS, state)) return;
  hooks.state = state;
  $("agent-state").textContent = STATE_LABELS[state];
  $("agent-state").dataset.state = state;
  renderAll();
}

let stateBusy = false;

async function chooseState(state) {
  if (stateBusy || !session) return;
  stateBusy = true;
  showError("");
  renderAll();
  try {
    const data = await request("set_state", { state });
    setAgentState(data?.state || state);
  } catch (error) {
    showError(`Could not change your state: ${error.message}`);
  } finally {
    stateBusy = false;
    renderAll();
  }
}

// ---- incoming calls --------------------------------------------------------------------

function busyWithCall() {
  return current !== null && !FINAL.has(current.state);
}

// builtin mode: the server rings this agent.
function onRing(pop) {
  if (!session || !pop || typeof pop !== "object") return;
  if (session.mode === "pbx") {
    // The SIP INVITE is what rings in pbx mode; keep the details for it.
    if (pop.conversation_id != null) {
      pendingPops.set(String(pop.conversation_id), pop);
      while (pendingPops.size > 20) pendingPops.delete(pendingPops.keys().next().value);
    }
    if (current && !current.pop && same(current.conversation_id, pop.conversation_id)) {
      applyPop(current, pop);
    }
    return;
  }
  if (pop.transfer_id == null) return;
  if (busyWithCall()) {
    if (!same(current.transfer_id, pop.transfer_id)) console.warn("A second call rang during a call: ignored.");
    return;
  }
  beginCall({
    transfer_id: pop.transfer_id,
    call_record_id: pop.call_record_id ?? null,
    conversation_id: pop.conversation_id ?? null,
    caller_name: pop.caller?.name ? String(pop.caller.name) : "Unknown caller",
  });
  applyPop(current, pop);
}

function beginCall(info) {
  stopCountdown();
  stopCallTimer();
  current = {
    transfer_id: null,
    call_record_id: null,
    conversation_id: null,
    caller_name: "Unknown caller",
    sipId: null,
    pop: null,
    ...info,
    state: "ringing",
    reason: "",
    answered: false, // it was connected at some point
    busy: null, // "answer" | "decline" | "hang-up" | "mute" | "hold" while one is pending
    muted: false,
    held: false,
    ringDeadline: null,
    connectedAt: null,
  };
  if (!wrap) {
    $("disposition-form").hidden = true;
  }
  $("disposition-saved").hidden = true;
  showCallError("");
  setNotice("");
  clearPopup($("call-popup"));
  $("call-timer").hidden = true;
  $("call-timer").textContent = "";
  $("call-popup").hidden = false;
  startRinging();
  publishCall();
  renderAll();
  $("answer").focus({ preventScroll: false });
}

function applyPop(call, pop) {
  call.pop = pop;
  if (pop.transfer_id != null) call.transfer_id = pop.transfer_id;
  if (pop.call_record_id != null) call.call_record_id = pop.call_record_id;
  if (pop.conversation_id != null) call.conversation_id = pop.conversation_id;
  if (pop.caller?.name) call.caller_name = String(pop.caller.name);
  if (call !== current) return;
  renderScreenPop($("call-popup"), pop, call.caller_name);
  const timeout = Number(pop.ring_timeout_s);
  if (call.state === "ringing" && Number.isFinite(timeout) && timeout > 0) startCountdown(call, timeout);
  publishCall();
  renderAll();
}

function startCountdown(call, seconds) {
  stopCountdown();
  call.ringDeadline = performance.now() + seconds * 1000;
  const tick = () => {
    if (call !== current || call.state !== "ringing") return stopCountdown();
    const left = Math.ceil((call.ringDeadline - performance.now()) / 1000);
    const countdown = $("ring-countdown");
    countdown.hidden = false;
    countdown.textContent = left > 0 ? `Answer within ${left} s` : "Ring time is up";
    if (left <= -RING_GRACE_S) stopRinging(); // no word from the server: at least go quiet
  };
  tick();
  countdownTimer = setInterval(tick, 250);
}

function stopCountdown() {
  clearInterval(countdownTimer);
  countdownTimer = null;
  $("ring-countdown").hidden = true;
}

function startCallTimer(call) {
  if (call.connectedAt !== null) return;
  call.connectedAt = performance.now();
  stopCallTimer();
  const timer = $("call-timer");
  const tick = () => {
    timer.textContent = formatClock((performance.now() - call.connectedAt) / 1000);
  };
  timer.hidden = false;
  tick();
  callTimer = setInterval(tick, 500);
}

function stopCallTimer() {
  clearInterval(callTimer);
  callTimer = null;
}

function startRinging() {
  ringer.start();
  hooks.ringing = true;
  $("ring-blocked").hidden = !ringer.blocked;
  document.title = "Incoming call – Convonet agent";
}

function stopRinging() {
  ringer.stop();
  hooks.ringing = false;
  $("ring-blocked").hidden = true;
  document.title = "Convonet agent";
}

// The call is connected: "answered" (agent's side up) or "bridged" (audio both ways).
function markConnected(call, state) {
  if (call !== current || FINAL.has(call.state)) return;
  if (state === "answered" && call.state === "bridged") return; // never backwards
  call.state = state;
  call.answered = true;
  if (call.busy === "answer") call.busy = null;
  stopRinging();
  stopCountdown();
  startCallTimer(call);
  phone?.follow?.(call);
  showCallError("");
  publishCall();
  renderAll();
}

// The call is over. Unanswered: the popup closes. Answered: it stays, and the disposition
// form asks for the outcome.
function finishCall(call, state, reason) {
  if (!call || FINAL.has(call.state)) return;
  call.state = state;
  call.reason = reason ? String(reason) : "";
  call.busy = null;
  stopRinging();
  stopCountdown();
  stopCallTimer();
  phone?.endAudio?.(call);
  hooks.lastCall = callSnapshot(call);
  if (call !== current) return;
  const name = call.caller_name;
  const why = call.reason ? ` (${call.reason})` : "";
  if (call.answered) {
    if (call.call_record_id != null) {
      openWrap(call);
    } else {
      setNotice("The call has ended. There is no call record to save an outcome for; choose Ready when you are done.");
      closePopup();
    }
  } else {
    closePopup();
    if (call.declined) setNotice(`You declined the call from ${name}.`);
    else if (state === "failed") setNotice(`The call from ${name} failed${why}.`);
    else setNotice(`Missed call from ${name}${why}.`);
  }
  publishCall();
  renderAll();
}

function closePopup() {
  current = null;
  const popup = $("call-popup");
  const hadFocus = popup.contains(document.activeElement);
  popup.hidden = true;
  if (hadFocus) $("notice").focus();
  showCallError("");
  publishCall();
}

// `call_state` from the server, in either mode (pbx calls are known by the transfer_id the
// lookup gave them).
function onServerCallState(payload) {
  const call = current;
  if (!payload || !call || !same(call.transfer_id, payload.transfer_id)) return;
  const state = payload.state;
  if (state === "answered" || state === "bridged") markConnected(call, state);
  else if (FINAL.has(state)) {
    finishCall(call, state, payload.reason);
    if (session?.mode === "pbx") phone?.release?.(call);
  }
}

// ---- call controls ---------------------------------------------------------------------

async function answer() {
  const call = current;
  if (!call || call.state !== "ringing" || call.busy || !phone) return;
  call.busy = "answer";
  showCallError("");
  stopRinging();
  renderAll();
  try {
    // true: connected now (builtin ack); false: the SIP phone reports "answered" later.
    const connected = await phone.answer(call);
    if (connected && call === current && call.state === "ringing") markConnected(call, "answered");
  } catch (error) {
    if (call.busy === "answer") call.busy = null;
    if (call !== current || FINAL.has(call.state)) return;
    showCallError(error instanceof MicProblem ? error.message : `Could not answer: ${error.message}`);
    renderAll();
  }
}

async function decline() {
  const call = current;
  if (!call || call.state !== "ringing" || call.busy || !phone) return;
  call.busy = "decline";
  showCallError("");
  stopRinging();
  renderAll();
  call.declined = true; // the server's call_state "ended" may come before the ack
  try {
    await phone.decline(call);
    finishCall(call, "ended", "declined");
  } catch (error) {
    call.declined = false;
    if (call.busy === "decline") call.busy = null;
    if (call !== current || FINAL.has(call.state)) return;
    showCallError(`Could not decline: ${error.message}`);
    renderAll();
  }
}

async function hangUp() {
  const call = current;
  if (!call || !LIVE.has(call.state) || call.busy === "hang-up" || !phone) return;
  call.busy = "hang-up";
  showCallError("");
  renderAll();
  try {
    await phone.hangUp(call);
    finishCall(call, "ended", "you hung up");
  } catch (error) {
    if (call.busy === "hang-up") call.busy = null;
    if (call !== current || FINAL.has(call.state)) return;
    showCallError(`Could not hang up: ${error.message}`);
    renderAll();
  }
}

// Mute and hold apply at once (no frames leave while muted or held), then the server or the
// SIP phone confirms; a refusal puts the button back.
async function toggle(flag, busy, apply) {
  const call = current;
  if (!call || !LIVE.has(call.state) || call.busy || !phone) return;
  const on = !call[flag];
  call[flag] = on;
  call.busy = busy;
  showCallError("");
  renderAll();
  try {
    await apply(call, on);
  } catch (error) {
    if (call !== current || FINAL.has(call.state)) return;
    call[flag] = !on;
    showCallError(`Could not ${on ? "" : "un"}${busy === "mute" ? "mute" : "hold"}: ${error.message}`);
  } finally {
    if (call.busy === busy) call.busy = null;
    renderAll();
  }
}

// ---- disposition -----------------------------------------------------------------------

function openWrap(call) {
  wrap = { call_record_id: call.call_record_id, caller_name: call.caller_name, call };
  $("disposition-title").textContent = `Call outcome: ${call.caller_name}`;
  $("disposition").value = "resolved";
  $("notes").value = "";
  updateNotesCount();
  showText("disposition-error", "");
  $("disposition-saved").hidden = true;
  $("disposition-form").hidden = false;
  $("save-disposition").disabled = false;
  $("disposition").focus();
}

function updateNotesCount() {
  $("notes-count").textContent = `${$("notes").value.length} of ${NOTES_MAX} characters`;
}

async function saveDisposition(event) {
  event.preventDefault();
  const pending = wrap;
  if (!pending || !session) return;
  const disposition = $("disposition").value;
  if (!DISPOSITIONS.includes(disposition)) {
    showText("disposition-error", "Choose an outcome.");
    return;
  }
  const notes = $("notes").value.slice(0, NOTES_MAX);
  showText("disposition-error", "");
  $("save-disposition").disabled = true;
  const mine = session.generation;
  try {
    const path = `/api/agent/calls/${encodeURIComponent(pending.call_record_id)}/disposition`;
    const data = await api("POST", path, { disposition, notes });
    if (session?.generation !== mine || wrap !== pending) return;
    wrap = null;
    $("disposition-form").hidden = true;
    $("notes").value = "";
    if (current === pending.call) closePopup();
    setAgentState(data?.state || "ready");
    $("disposition-saved").hidden = false;
    $("disposition-saved").focus();
  } catch (error) {
    if (session?.generation !== mine) return;
    restFailed(error, (message) => showText("disposition-error", `Could not save: ${message}`));
  } finally {
    $("save-disposition").disabled = false;
    renderAll();
  }
}

// ---- rendering -------------------------------------------------------------------------

function renderAll() {
  renderStateButtons();
  renderControls();
  renderIdleHint();
}

function renderStateButtons() {
  const inCall = current !== null && !FINAL.has(current.state) && current.state !== "ringing";
  const blocked = !session || stateBusy || inCall || wrap !== null || hooks.state === "on-call";
  for (const button of document.querySelectorAll("#state-buttons button")) {
    button.setAttribute("aria-pressed", String(hooks.state === button.dataset.state));
    button.disabled = blocked;
  }
  $("logout").disabled = inCall;
}

function renderControls() {
  const call = current;
  const state = call?.state;
  const ringing = state === "ringing" && !call.busy;
  const live = LIVE.has(state);
  $("answer").disabled = !ringing;
  $("decline").disabled = !ringing;
  $("hang-up").disabled = !live || call.busy === "hang-up";
  $("mute").disabled = !live || Boolean(call.busy);
  $("hold").disabled = !live || Boolean(call.busy);
  $("mute").setAttribute("aria-pressed", String(Boolean(call?.muted)));
  $("hold").setAttribute("aria-pressed", String(Boolean(call?.held)));
  $("mic-level-label").hidden = !(live && session?.mode === "builtin");
  if (!call) return;
  const popup = $("call-popup");
  popup.dataset.state = state;
  popup.classList.toggle("ringing", state === "ringing");
  const titles = { ringing: "Incoming call", answered: "On a call", bridged: "On a call" };
  $("call-title").textContent = titles[state] || "Call ended";
  let status = "";
  if (state === "ringing") status = call.busy === "answer" ? "Answering…" : call.busy === "decline" ? "Declining…" : "Ringing…";
  else if (state === "answered") status = "Answered. Connecting the audio…";
  else if (state === "bridged") status = "Connected.";
  else status = `The call has ended${call.reason ? ` (${call.reason})` : ""}.`;
  if (live && call.held) status += " On hold.";
  if (live && call.muted) status += " Muted: the caller can't hear you.";
  $("call-status").textContent = status;
}

function renderIdleHint() {
  let hint = "";
  if (session && !current && !wrap) {
    if (hooks.state === "ready") hint = "Waiting for calls…";
    else if (hooks.state === "not-ready") hint = "You are not ready: calls will not ring. Choose Ready to take calls.";
    else if (hooks.state === "wrap-up") hint = "Wrap-up: choose Ready when you are done.";
  }
  $("idle-hint").textContent = hint;
  $("idle-hint").hidden = !hint;
}

function levelOf(rms) {
  // 0 at -60 dBFS (or silence), 1 at 0 dBFS.
  if (!(rms > 0)) return 0;
  return Math.max(0, Math.min(1, (20 * Math.log10(rms) + 60) / 60));
}

function heardFrame(samples) {
  hooks.stats.framesIn += 1;
  const heard = hooks.heard;
  const room = HEARD_LIMIT - heard.length;
  if (room <= 0) return;
  const count = Math.min(room, samples.length);
  for (let i = 0; i < count; i++) heard.push(samples[i]);
}

// ---- pbx mode: the SIP phone -----------------------------------------------------------

function loadScript(src) {
  if (window.JsSIP) return Promise.resolve();
  const existing = document.querySelector(`script[src="${src}"]`);
  return new Promise((resolve, reject) => {
    const script = existing || document.createElement("script");
    script.addEventListener("load", () => resolve(), { once: true });
    script.addEventListener("error", () => reject(new Error("the SIP library did not load")), { once: true });
    if (!existing) {
      script.src = src;
      document.head.append(script);
    }
  });
}

const SIP_CONNECTED = new Set(["answered", "accepted"]);
const SIP_BRIDGED = new Set(["bridged", "confirmed", "connected", "established", "in-call", "active"]);
const SIP_FAILED = new Set(["failed", "rejected", "busy", "error"]);
const SIP_ENDED = new Set(["ended", "terminated", "canceled", "cancelled", "declined", "missed", "bye", "hung-up"]);

// SipPhone methods return false (and report why through onError) instead of throwing.
function sipDone(result) {
  if (result === false) throw new Error("the SIP phone could not do that now");
  return result;
}

class PbxPhone {
  constructor(sessionGeneration) {
    this.generation = sessionGeneration;
    this.sip = null;
    this.stream = null;
  }

  get kind() {
    return "pbx";
  }

  get alive() {
    return session?.generation === this.generation && phone === this;
  }

  async start() {
    // The SIP credentials live only in this call's variables and in the SIP phone.
    const credentials = await api("GET", "/api/agent/sip");
    if (!this.alive) return;
    await loadScript("/vendor/jssip.min.js");
    if (!this.alive) return;
    const { SipPhone } = await import("./softphone-sip.js");
    if (!this.alive) return;
    this.sip = new SipPhone(
      {
        wsUrl: credentials.ws_url,
        uri: credentials.sip_uri,
        username: credentials.username,
        password: credentials.password,
        displayName: credentials.display_name,
      },
      {
        onStatus: (text, registered) => this.alive && this.status(text, registered),
        onIncoming: (incoming) => this.alive && this.incoming(incoming),
        onCallState: (id, state, reason) => this.alive && this.callState(id, state, reason),
        onError: (message) => this.alive && showError(String(message || "The SIP phone reported an error.")),
      },
    );
    await this.sip.start();
  }

  status(text, registered) {
    const label = String(text || "");
    if (registered) setPhone("registered", "Registered");
    else if (/^connected/i.test(label)) setPhone("connected", label);
    else setPhone("offline", label || "Offline");
  }

  incoming({ id, conversationId, callerDisplay } = {}) {
    if (busyWithCall()) {
      // One call at a time: a second INVITE is turned away.
      Promise.resolve()
        .then(() => this.sip.decline(id))
        .catch(() => {});
      return;
    }
    const display = callerDisplay ? String(callerDisplay) : "Unknown caller";
    beginCall({ sipId: id, conversation_id: conversationId ?? null, caller_name: display });
    const call = current;
    const cached = conversationId != null ? pendingPops.get(String(conversationId)) : null;
    if (cached) {
      pendingPops.delete(String(conversationId));
      applyPop(call, cached);
      return;
    }
    if (conversationId == null || conversationId === "") {
      renderFallback($("call-popup"), display, "Caller details unavailable");
      return;
    }
    renderFallback($("call-popup"), display, "Loading caller details…");
    const path = `/api/agent/calls/lookup?conversation_id=${encodeURIComponent(conversationId)}`;
    api("GET", path)
      .then((pop) => {
        if (call !== current || !this.alive || call.pop) return;
        if (!pop || typeof pop !== "object") throw new Error("empty lookup");
        applyPop(call, pop);
      })
      .catch((error) => {
        if (error instanceof ApiError && error.status === 401 && session) return endSession(SESSION_ENDED);
        if (call !== current || call.pop) return;
        setDetailsStatus($("call-popup"), "Caller details unavailable");
      });
  }

  callState(id, state, reason) {
    const call = current;
    if (!call || call.sipId !== id) return;
    const name = String(state || "").toLowerCase();
    if (SIP_CONNECTED.has(name)) markConnected(call, "answered");
    else if (SIP_BRIDGED.has(name)) markConnected(call, "bridged");
    else if (SIP_FAILED.has(name) || SIP_ENDED.has(name)) {
      call.sipEnded = true;
      finishCall(call, SIP_FAILED.has(name) ? "failed" : "ended", reason);
    }
  }

  async answer(call) {
    if (!this.sip) throw new Error("the SIP phone is not ready");
    if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
      throw new MicProblem(new MicError("insecure", "not a secure page"));
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (error) {
      throw new MicProblem(error);
    }
    this.stream = stream;
    try {
      sipDone(await this.sip.answer(call.sipId, stream));
    } catch (error) {
      this.endAudio();
      throw error;
    }
    return false; // connected once the SIP phone reports "answered"
  }

  async decline(call) {
    if (!this.sip) throw new Error("the SIP phone is not ready");
    sipDone(await this.sip.decline(call.sipId));
    call.sipEnded = true;
  }

  async hangUp(call) {
    if (!this.sip) throw new Error("the SIP phone is not ready");
    sipDone(await this.sip.hangUp(call.sipId));
    call.sipEnded = true;
  }

  async setMuted(call, on) {
    sipDone(await this.sip.setMuted(call.sipId, on));
  }

  async setHold(call, on) {
    sipDone(await this.sip.setHold(call.sipId, on));
  }

  // The server ended the call while the SIP leg may still be up: hang it up too.
  release(call) {
    if (call.sipEnded || !this.sip) return;
    call.sipEnded = true;
    Promise.resolve()
      .then(() => (call.answered ? this.sip.hangUp(call.sipId) : this.sip.decline(call.sipId)))
      .catch(() => {});
  }

  follow() {}

  receive() {} // the caller's audio comes over WebRTC in this mode

  endAudio() {
    for (const track of this.stream?.getTracks() || []) track.stop();
    this.stream = null;
  }

  stop() {
    this.endAudio();
    try {
      this.sip?.stop();
    } catch {
      // already stopped
    }
    this.sip = null;
  }
}

// ---- wiring ----------------------------------------------------------------------------

$("login-form").addEventListener("submit", login);
$("logout").addEventListener("click", logout);
for (const button of document.querySelectorAll("#state-buttons button")) {
  button.addEventListener("click", () => chooseState(button.dataset.state));
}
$("answer").addEventListener("click", answer);
$("decline").addEventListener("click", decline);
$("hang-up").addEventListener("click", hangUp);
$("mute").addEventListener("click", () => toggle("muted", "mute", (call, on) => phone.setMuted(call, on)));
$("hold").addEventListener("click", () => toggle("held", "hold", (call, on) => phone.setHold(call, on)));
$("disposition-form").addEventListener("submit", saveDisposition);
$("notes").addEventListener("input", updateNotesCount);

// Browsers let a page make sound only after a gesture: every one unlocks the ring tone.
document.addEventListener("pointerdown", () => ringer.unlock(), true);
document.addEventListener("keydown", () => ringer.unlock(), true);

window.addEventListener("beforeunload", (event) => {
  if (current && LIVE.has(current.state)) {
    event.preventDefault();
    event.returnValue = "";
  }
});

// A session from before (the cookie): straight to the dashboard.
async function boot() {
  const mine = generation;
  try {
    const data = await api("GET", "/api/agent/me");
    if (mine !== generation) return; // a login started meanwhile
    startSession(data);
  } catch (error) {
    if (mine !== generation) return;
    showLogin(error.status === 401 ? "" : error.message);
    $("agent-login").focus();
  }
}

renderAll();
boot();
