// The caller page: PIN login and typed turns over the /caller namespace
// (docs/socket-protocol.md). Every text from the server is shown with textContent only.
import { CallerSocket } from "/socket.js";

const $ = (id) => document.getElementById(id);
const STORE = "convonet.session";
let socket;
let conversationId = null;

function show(id, visible) {
  $(id).hidden = !visible;
}

function showError(message) {
  $("error").textContent = message;
  show("error", Boolean(message));
}

function addLine(role, text, detail) {
  const item = document.createElement("li");
  item.className = role;
  const who = document.createElement("strong");
  who.textContent = role === "user" ? "You" : "Assistant";
  const body = document.createElement("span");
  body.textContent = text;
  item.append(who, " ", body);
  if (detail) {
    const small = document.createElement("small");
    small.textContent = detail;
    item.append(" ", small);
  }
  $("transcript").append(item);
  item.scrollIntoView({ block: "end" });
}

function onStatus(status) {
  conversationId = status.conversation_id;
  if (!status.authenticated) sessionStorage.removeItem(STORE);
  const labels = {
    "awaiting-auth": "Enter your PIN to start.",
    active: `Talking with the assistant${status.caller_name ? ` as ${status.caller_name}` : ""}.`,
    transferring: `Transfer requested to ${status.transfer?.department ?? "an agent"}.`,
    bridged: "Connected to an agent.",
    ended: "The call has ended. Reload to start a new one.",
  };
  $("status").textContent = labels[status.state] || status.state;
  show("login", status.state === "awaiting-auth");
  show("conversation", status.authenticated && status.state !== "ended");
}

function failure(ack) {
  return ack.ok ? "" : ack.error.message;
}

async function login(event) {
  event.preventDefault();
  showError("");
  const pin = $("pin").value;
  $("pin").value = "";
  try {
    const ack = await socket.call("authenticate", { pin });
    if (!ack.ok) return showError(failure(ack));
    const result = ack.data;
    if (!result.ok) return showError(result.reason);
    // Kept for this tab only, so a reconnect resumes the same conversation.
    sessionStorage.setItem(
      STORE,
      JSON.stringify({ conversation_id: conversationId, session_token: result.session_token }),
    );
    show("login", false);
    show("conversation", true);
    $("status").textContent = `Talking with the assistant as ${result.caller_name}.`;
    addLine("assistant", result.greeting);
    $("text").focus();
  } catch (error) {
    showError(`Could not reach the assistant (${error.message}).`);
  }
}

async function say(event) {
  event.preventDefault();
  showError("");
  const text = $("text").value.trim();
  if (!text) return;
  $("text").value = "";
  addLine("user", text);
  $("status").textContent = "Thinking…";
  try {
    const ack = await socket.call("text_turn", { text });
    if (!ack.ok) {
      $("status").textContent = "";
      return showError(failure(ack));
    }
    const reply = ack.data;
    addLine("assistant", reply.assistant, `${reply.latency_ms} ms`);
    if (reply.state === "active") $("status").textContent = "Listening.";
  } catch (error) {
    showError(`Could not reach the assistant (${error.message}).`);
  }
}

async function hangUp() {
  await socket.call("hang_up", {}).catch(() => {});
  sessionStorage.removeItem(STORE);
}

function connect() {
  const saved = JSON.parse(sessionStorage.getItem(STORE) || "{}");
  socket = new CallerSocket("/caller", saved.session_token ? saved : {}, {
    status: onStatus,
    error: () => {},
    connected: () => showError(""),
    refused: (message) => showError(message),
    disconnected: () => {
      $("status").textContent = "Connection lost; reconnecting…";
      setTimeout(connect, 1500);
    },
  });
  socket.open();
}

$("login").addEventListener("submit", login);
$("say").addEventListener("submit", say);
$("hangup").addEventListener("click", hangUp);
connect();
