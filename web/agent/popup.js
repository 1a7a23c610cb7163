// Renders the caller details of the incoming-call popup (#call-popup) from a ScreenPop:
//   {transfer_id, call_record_id, conversation_id, department, reason,
//    caller: {name, teams: [string], open_todos: [{title, due, priority}]},
//    transcript: [{role: "user"|"assistant", text}], summary, ring_timeout_s}
// Everything here comes from a caller or the assistant, so it goes into the page with
// textContent and createElement only, never as markup.

const ROLES = { user: "Caller", assistant: "Assistant" };

export function field(root, name) {
  return root.querySelector(`[data-field="${name}"]`);
}

function emptyNote(root, name) {
  return root.querySelector(`[data-empty="${name}"]`);
}

// A server value as display text ("" for null and missing values).
function text(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value.trim() : String(value);
}

function list(value) {
  return Array.isArray(value) ? value : [];
}

// Fills a <ul>/<ol> with items (or hides it and shows its "none" note when there are none).
function fillList(root, name, items) {
  const target = field(root, name);
  target.replaceChildren(...items);
  target.hidden = items.length === 0;
  const note = emptyNote(root, name);
  if (note) note.hidden = items.length > 0;
}

function todoItem(todo) {
  const item = document.createElement("li");
  const title = document.createElement("span");
  title.className = "todo-title";
  title.textContent = text(todo?.title) || "(untitled)";
  const meta = document.createElement("small");
  meta.className = "todo-meta";
  const due = text(todo?.due);
  if (due) {
    const time = document.createElement("time");
    time.dateTime = due;
    time.textContent = due;
    meta.append("due ", time);
  } else {
    meta.append("no due date");
  }
  const priority = text(todo?.priority);
  if (priority) meta.append(`, priority ${priority}`);
  item.append(title, " ", meta);
  return item;
}

function transcriptItem(line) {
  const role = text(line?.role);
  const item = document.createElement("li");
  item.className = role === "user" ? "user" : "assistant";
  const who = document.createElement("strong");
  who.textContent = `${ROLES[role] || role || "Unknown"}:`;
  item.append(who, " ", text(line?.text));
  return item;
}

// Empties every field: the popup is about to show another call.
export function clearPopup(root) {
  for (const name of ["caller-name", "department", "reason", "summary"]) {
    field(root, name).textContent = "";
  }
  for (const name of ["teams", "todos", "transcript"]) fillList(root, name, []);
  setDetailsStatus(root, "");
}

// The line above the details: "Loading caller details…", "Caller details unavailable".
export function setDetailsStatus(root, message) {
  const status = field(root, "details-status");
  status.textContent = message;
  status.hidden = !message;
}

// Only what a PBX INVITE told us: the caller's display name.
export function renderFallback(root, callerDisplay, message) {
  clearPopup(root);
  field(root, "caller-name").textContent = text(callerDisplay) || "Unknown caller";
  field(root, "department").textContent = "—";
  field(root, "reason").textContent = "—";
  field(root, "summary").textContent = "No summary.";
  setDetailsStatus(root, message);
}

export function renderScreenPop(root, pop, fallbackName = "") {
  const caller = pop?.caller && typeof pop.caller === "object" ? pop.caller : {};
  field(root, "caller-name").textContent = text(caller.name) || text(fallbackName) || "Unknown caller";
  field(root, "department").textContent = text(pop?.department) || "—";
  field(root, "reason").textContent = text(pop?.reason) || "—";
  fillList(
    root,
    "teams",
    list(caller.teams)
      .map(text)
      .filter(Boolean)
      .map((team) => {
        const item = document.createElement("li");
        item.textContent = team;
        return item;
      }),
  );
  fillList(root, "todos", list(caller.open_todos).map(todoItem));
  field(root, "summary").textContent = text(pop?.summary) || "No summary.";
  fillList(root, "transcript", list(pop?.transcript).map(transcriptItem));
  const transcript = field(root, "transcript");
  transcript.scrollTop = transcript.scrollHeight; // the latest lines first in view
  setDetailsStatus(root, "");
}

// 83 -> "1:23"; 3725 -> "1:02:05".
export function formatClock(totalSeconds) {
  const seconds = Math.max(0, Math.floor(totalSeconds));
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = String(seconds % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}
