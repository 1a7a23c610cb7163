// Agent softphone for PBX mode: registers to FusionPBX over WebSocket (SIP over WSS) with
// JsSIP and turns its call events into a small, UI-friendly API.
//
// JsSIP is loaded by the page as a classic script (/vendor/jssip.min.js) and found at
// window.JsSIP; this module has no imports so it works from a plain <script type="module">.
//
//   const phone = new SipPhone(
//     { wsUrl, uri, username, password, displayName, audioElement },
//     { onStatus, onIncoming, onCallState, onError, onHold });
//   phone.start();
//   // onIncoming({ id, conversationId, callerDisplay, callerNumber })
//   phone.answer(id, micStream);  phone.setMuted(id, true);  phone.setHold(id, true);
//   phone.hangUp(id);  phone.decline(id);  phone.stop();
//
// Credentials are passed straight to JsSIP and never logged or put in a status/error text.
// Caller-provided strings (display name, number) are plain text: render with textContent.

// Our conversation ids are 32 hex digits; accept any short URL-safe token so a future id
// format still works, and nothing else (the header comes from the network).
const CONVERSATION_ID = /^[A-Za-z0-9_-]{1,64}$/;
const CONVERSATION_HEADER = "X-Convonet-Conversation";
const MAX_DISPLAY = 80;
// How long a hold/resume waits for a pending re-INVITE to finish: 50 x 100 ms.
const HOLD_RETRIES = 50;
const HOLD_RETRY_MS = 100;

// JsSIP end/failure causes that are ordinary ways for a call to finish (either side hung
// up, declined, or gave up) rather than faults the agent should be warned about.
const NORMAL_ENDINGS = new Set([
  "Terminated",
  "Canceled",
  "Rejected",
  "Busy",
  "No Answer",
  "Expires",
  "Unavailable",
  "Redirected",
]);

/** The conversation id carried by an INVITE, or null if absent or not a safe token. */
export function conversationIdFrom(request) {
  let value = null;
  try {
    value = request && request.hasHeader(CONVERSATION_HEADER)
      ? request.getHeader(CONVERSATION_HEADER)
      : null;
  } catch {
    return null;
  }
  if (typeof value !== "string") return null;
  const trimmed = value.trim();
  return CONVERSATION_ID.test(trimmed) ? trimmed : null;
}

function cleanText(value) {
  if (typeof value !== "string") return "";
  // Control characters and bidi overrides could disguise a caller's name.
  const plain = value.replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, "");
  return plain.trim().slice(0, MAX_DISPLAY);
}

function callerOf(session) {
  const identity = session.remote_identity;
  const number = cleanText(identity && identity.uri ? identity.uri.user || "" : "");
  const name = cleanText(identity ? identity.display_name || "" : "");
  return { callerDisplay: name || number || "Unknown caller", callerNumber: number || null };
}

function requireString(config, key) {
  const value = config[key];
  if (typeof value !== "string" || value.trim() === "") {
    throw new TypeError(`SipPhone: ${key} is required`);
  }
  return value.trim();
}

export class SipPhone {
  /**
   * @param {{wsUrl: string, uri: string, username?: string, password?: string,
   *          displayName?: string, audioElement?: HTMLAudioElement,
   *          iceServers?: RTCIceServer[]}} config
   * @param {{onStatus?: Function, onIncoming?: Function, onCallState?: Function,
   *          onError?: Function, onHold?: Function}} handlers
   */
  constructor(config, handlers = {}) {
    if (!config || typeof config !== "object") throw new TypeError("SipPhone: config is required");
    const wsUrl = requireString(config, "wsUrl");
    if (!/^wss?:\/\//i.test(wsUrl)) throw new TypeError("SipPhone: wsUrl must be ws:// or wss://");
    const uri = requireString(config, "uri");
    if (!/^sips?:/i.test(uri)) throw new TypeError("SipPhone: uri must be a sip: URI");
    this._config = {
      wsUrl,
      uri,
      username: typeof config.username === "string" ? config.username : null,
      password: typeof config.password === "string" ? config.password : null,
      displayName: typeof config.displayName === "string" ? config.displayName : null,
      iceServers: Array.isArray(config.iceServers) ? config.iceServers : [],
    };
    this._handlers = handlers || {};
    this._audio = config.audioElement || null;
    this._ua = null;
    this._registered = false;
    this._sessions = new Map(); // id -> { session, answered, remoteStream, wantHold, holdTimer }
    this._nextId = 1;
  }

  get registered() {
    return this._registered;
  }

  /** Ids of the calls currently known (ringing or in progress). */
  get callIds() {
    return [...this._sessions.keys()];
  }

  /** {id, answered, muted, held} of a known call (for button states), or null. */
  getCall(id) {
    const call = this._sessions.get(id);
    if (!call) return null;
    return {
      id,
      answered: call.answered,
      muted: Boolean(call.session.isMuted().audio),
      held: Boolean(call.session.isOnHold().local),
    };
  }

  /** Connects the WebSocket and registers; progress is reported through onStatus. */
  start() {
    if (this._ua) return;
    const JsSIP = window.JsSIP;
    if (!JsSIP || typeof JsSIP.UA !== "function") {
      this._error("The phone library did not load; reload the page.");
      this._status("Phone unavailable", false);
      return;
    }
    let ua;
    try {
      const socket = new JsSIP.WebSocketInterface(this._config.wsUrl);
      ua = new JsSIP.UA({
        sockets: [socket],
        uri: this._config.uri,
        authorization_user: this._config.username || undefined,
        password: this._config.password || undefined,
        display_name: this._config.displayName || undefined,
        register: true,
        register_expires: 300,
        // FusionPBX needs no session timers; without them no UPDATE refreshes to handle.
        session_timers: false,
        user_agent: "Convonet agent softphone",
        connection_recovery_min_interval: 2,
        connection_recovery_max_interval: 30,
      });
    } catch (error) {
      // JsSIP's ConfigurationError names the bad parameter, never its value.
      this._error(`Phone settings are invalid (${error && error.parameter ? error.parameter : "config"}).`);
      this._status("Phone unavailable", false);
      return;
    }
    this._ua = ua;
    ua.on("connecting", () => this._status("Connecting to the phone system…", false));
    ua.on("connected", () => this._status("Connected, registering…", false));
    ua.on("disconnected", () => {
      this._registered = false;
      if (this._ua === ua) this._status("Phone system unreachable, retrying…", false);
    });
    ua.on("registered", () => {
      this._registered = true;
      this._status("Phone ready", true);
    });
    ua.on("unregistered", () => {
      this._registered = false;
      if (this._ua === ua) this._status("Phone not registered", false);
    });
    ua.on("registrationFailed", (event) => {
      this._registered = false;
      const cause = event && event.cause ? event.cause : "unknown error";
      this._status("Phone registration failed", false);
      this._error(`Phone registration failed: ${cause}.`);
    });
    ua.on("newRTCSession", (event) => this._onSession(event));
    this._status("Connecting to the phone system…", false);
    ua.start();
  }

  /** Ends every call, unregisters and closes the WebSocket. */
  stop() {
    const ua = this._ua;
    if (!ua) return;
    this._ua = null;
    try {
      ua.terminateSessions();
    } catch {
      // Sessions already gone: nothing to end.
    }
    ua.stop();
    this._registered = false;
    this._status("Phone stopped", false);
  }

  /** Answers a ringing call with audio only; mediaStream is the agent's microphone. */
  answer(id, mediaStream) {
    const call = this._call(id);
    if (!call) return false;
    const options = {
      mediaConstraints: { audio: true, video: false },
      pcConfig: { iceServers: this._config.iceServers },
      rtcOfferConstraints: { offerToReceiveAudio: true, offerToReceiveVideo: false },
    };
    if (mediaStream) {
      // A stream of our own: JsSIP strips video tracks from what it is given, and the
      // page's stream must stay as the page made it.
      options.mediaStream = new MediaStream(mediaStream.getAudioTracks());
    }
    try {
      call.session.answer(options);
      return true;
    } catch (error) {
      this._error(`Could not answer the call: ${error && error.message ? error.message : error}`);
      return false;
    }
  }

  /** Rejects a ringing call: 486 Busy Here by default, or 603 Decline. */
  decline(id, statusCode = 486) {
    const call = this._call(id);
    if (!call) return false;
    const code = statusCode === 603 ? 603 : 486;
    return this._terminate(call, {
      status_code: code,
      reason_phrase: code === 603 ? "Decline" : "Busy Here",
    });
  }

  /** Ends a call in any state (BYE once answered, a rejection while ringing). */
  hangUp(id) {
    const call = this._call(id);
    if (!call) return false;
    return this._terminate(call, {});
  }

  setMuted(id, on) {
    const call = this._call(id);
    if (!call) return false;
    if (on) call.session.mute({ audio: true });
    else call.session.unmute({ audio: true });
    return true;
  }

  /**
   * Puts the call on hold (on = true) or resumes it, by re-INVITE. Returns false if the call
   * is unknown or not answered yet. A change asked for while another re-INVITE is in flight
   * (e.g. hold then resume in quick succession) is applied once that one completes; the
   * optional onHold(id, held) handler reports each change the other side confirmed.
   */
  setHold(id, on) {
    const call = this._call(id);
    if (!call || !call.answered) return false;
    call.wantHold = Boolean(on);
    this._applyHold(id, call, 0);
    return true;
  }

  // ----- internals -----

  _onSession(event) {
    // The agent softphone only takes calls; an outgoing session (not placed by this class)
    // is none of its business.
    if (!event || event.originator !== "remote") return;
    const session = event.session;
    const id = `call-${this._nextId++}`;
    const call = { session, answered: false, remoteStream: null, wantHold: false, holdTimer: null };
    this._sessions.set(id, call);

    session.on("progress", () => this._callState(id, "ringing", null));
    session.on("accepted", () => {
      call.answered = true;
      this._callState(id, "answered", null);
    });
    // The caller's ACK arrived: the call is up, and the dashboard shows it connected.
    session.on("confirmed", () => this._callState(id, "confirmed", null));
    session.on("peerconnection", (data) => this._watchTracks(call, data.peerconnection));
    session.on("ended", (data) => this._finish(id, data));
    session.on("failed", (data) => this._finish(id, data));

    const { callerDisplay, callerNumber } = callerOf(session);
    this._emit("onIncoming", {
      id,
      conversationId: conversationIdFrom(event.request),
      callerDisplay,
      callerNumber,
    });
  }

  _applyHold(id, call, attempt) {
    clearTimeout(call.holdTimer);
    call.holdTimer = null;
    if (this._sessions.get(id) !== call) return; // ended meanwhile
    const session = call.session;
    const want = call.wantHold;
    // JsSIP flips isOnHold().local when it sends the re-INVITE, so an in-flight change
    // already counts as the current state here.
    if (session.isOnHold().local === want) return;
    const confirmed = () => {
      this._emit("onHold", id, want);
      // The agent may have toggled again while this re-INVITE was in flight.
      if (call.wantHold !== want) this._applyHold(id, call, 0);
    };
    // JsSIP refuses a re-INVITE until the previous offer/answer (or the ACK of our answer)
    // has completed, and has no event for "ready": poll briefly rather than fail the click.
    const started =
      session.isReadyToReOffer() &&
      (want ? session.hold({}, confirmed) : session.unhold({}, confirmed));
    if (started) return;
    if (attempt >= HOLD_RETRIES) {
      this._error(want ? "Could not put the call on hold." : "Could not resume the call.");
      return;
    }
    call.holdTimer = setTimeout(() => this._applyHold(id, call, attempt + 1), HOLD_RETRY_MS);
  }

  _watchTracks(call, connection) {
    if (!connection) return;
    connection.addEventListener("track", (event) => {
      if (event.track.kind !== "audio") return;
      const stream = event.streams && event.streams[0] ? event.streams[0] : new MediaStream([event.track]);
      call.remoteStream = stream;
      const audio = this._audioElement();
      audio.srcObject = stream;
      const playing = audio.play();
      if (playing && typeof playing.catch === "function") {
        playing.catch(() => this._error("The browser blocked call audio; click the page to allow it."));
      }
    });
  }

  _audioElement() {
    if (!this._audio) {
      this._audio = document.createElement("audio");
      this._audio.autoplay = true;
      this._audio.hidden = true;
      document.body.appendChild(this._audio);
    }
    return this._audio;
  }

  _finish(id, data) {
    const call = this._sessions.get(id);
    if (!call) return;
    this._sessions.delete(id);
    clearTimeout(call.holdTimer);
    if (call.remoteStream && this._audio && this._audio.srcObject === call.remoteStream) {
      this._audio.srcObject = null;
    }
    const cause = data && data.cause ? String(data.cause) : null;
    const state = cause === null || NORMAL_ENDINGS.has(cause) ? "ended" : "failed";
    this._callState(id, state, cause);
  }

  _terminate(call, options) {
    try {
      call.session.terminate(options);
      return true;
    } catch (error) {
      // Already terminated (e.g. the caller hung up a moment earlier): nothing to do.
      return false;
    }
  }

  _call(id) {
    // An unknown id is a call that just ended (e.g. the caller hung up as the agent
    // clicked): the onCallState "ended"/"failed" already told the page, so stay quiet.
    return this._sessions.get(id) || null;
  }

  _status(text, registered) {
    this._emit("onStatus", text, registered);
  }

  _callState(id, state, reason) {
    this._emit("onCallState", id, state, reason);
  }

  _error(message) {
    this._emit("onError", message);
  }

  _emit(name, ...args) {
    const handler = this._handlers[name];
    if (typeof handler !== "function") return;
    try {
      handler(...args);
    } catch (error) {
      // A UI handler bug must not break SIP processing; surface it in the console only.
      console.error(`SipPhone ${name} handler failed`, error);
    }
  }
}
