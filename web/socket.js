// A minimal Socket.IO v5 client over one WebSocket (Engine.IO v4 framing), so the pages
// need no third-party script and no CDN. It speaks only what Convonet uses: one namespace,
// events (with or without an acknowledgement), binary attachments both ways, and the
// server's heartbeat.
//
// Framing reminders (https://socket.io/docs/v4/socket-io-protocol/):
//   Engine.IO text message  "<eio type><payload>": 0 open, 1 close, 2 ping, 3 pong, 4 message
//   Socket.IO packet        "<type>[<attachments>-][<namespace>,][<ack id>][<json>]"
//     types: 0 CONNECT, 1 DISCONNECT, 2 EVENT, 3 ACK, 4 CONNECT_ERROR, 5 BINARY_EVENT, 6 BINARY_ACK
//   A binary packet's JSON holds {"_placeholder":true,"num":i} where attachment i goes; the
//   attachments follow as that many binary WebSocket messages, in order.

const OPEN = 1; // WebSocket.OPEN

function isBinary(value) {
  return value instanceof ArrayBuffer || ArrayBuffer.isView(value);
}

// Replaces every ArrayBuffer / typed array in `data` with a placeholder; returns the copy.
export function deconstruct(data, attachments = []) {
  if (isBinary(data)) {
    attachments.push(data);
    return { _placeholder: true, num: attachments.length - 1 };
  }
  if (Array.isArray(data)) return data.map((item) => deconstruct(item, attachments));
  if (data && typeof data === "object") {
    const out = {};
    for (const [key, value] of Object.entries(data)) out[key] = deconstruct(value, attachments);
    return out;
  }
  return data;
}

// Puts the received attachments back where their placeholders are.
export function reconstruct(data, attachments) {
  if (Array.isArray(data)) return data.map((item) => reconstruct(item, attachments));
  if (data && typeof data === "object") {
    if (data._placeholder === true && Number.isInteger(data.num)) return attachments[data.num];
    const out = {};
    for (const [key, value] of Object.entries(data)) out[key] = reconstruct(value, attachments);
    return out;
  }
  return data;
}

// One event as the WebSocket messages that carry it: a text header, then the attachments.
export function encodeEvent(namespace, event, payload, ackId = null) {
  const attachments = [];
  const json = JSON.stringify(deconstruct([event, payload], attachments));
  const id = ackId === null ? "" : String(ackId);
  const header = attachments.length
    ? `45${attachments.length}-${namespace},${id}${json}`
    : `42${namespace},${id}${json}`;
  return [header, ...attachments];
}

export class CallerSocket {
  constructor(namespace, auth, handlers) {
    this.namespace = namespace;
    this.auth = auth;
    // {connected, refused, disconnected, <server event name>: fn(payload)}
    this.handlers = handlers;
    this.nextAck = 1;
    this.pendingAcks = new Map();
    this.incoming = null; // a binary packet still waiting for attachments
  }

  open() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    this.ws = new WebSocket(`${scheme}://${location.host}/socket.io/?EIO=4&transport=websocket`);
    this.ws.binaryType = "arraybuffer";
    this.ws.onmessage = (message) => this.receive(message.data);
    this.ws.onclose = () => this.closed();
  }

  close() {
    this.ws?.close();
  }

  get connected() {
    return this.ws?.readyState === OPEN && this.joined === true;
  }

  // Bytes queued in the browser but not yet sent: lets callers shed audio on a slow link.
  get bufferedAmount() {
    return this.ws?.bufferedAmount ?? 0;
  }

  closed() {
    if (this.finished) return;
    this.finished = true;
    this.joined = false;
    for (const pending of this.pendingAcks.values()) pending.reject(new Error("connection lost"));
    this.pendingAcks.clear();
    this.handlers.disconnected?.();
  }

  // One WebSocket message: an Engine.IO text message, or an attachment of a binary packet.
  receive(data) {
    if (typeof data !== "string") return this.receiveAttachment(data);
    const type = data[0];
    if (type === "0") {
      this.ws.send(`40${this.namespace},${JSON.stringify(this.auth || {})}`);
    } else if (type === "1") {
      this.ws.close();
    } else if (type === "2") {
      this.ws.send("3"); // heartbeat
    } else if (type === "4") {
      this.receivePacket(data.slice(1));
    }
  }

  receivePacket(packet) {
    const kind = packet[0];
    let body = packet.slice(1);
    let attachments = 0;
    if (kind === "5" || kind === "6") {
      const count = body.match(/^(\d+)-/);
      attachments = count ? Number(count[1]) : 0;
      body = body.slice(count ? count[0].length : 0);
    }
    if (body.startsWith("/")) {
      const comma = body.indexOf(",");
      body = comma === -1 ? "" : body.slice(comma + 1);
    }
    const idMatch = body.match(/^\d+/);
    const id = idMatch ? Number(idMatch[0]) : null;
    const json = body.slice(idMatch ? idMatch[0].length : 0);
    const data = json ? JSON.parse(json) : null;
    if (attachments > 0) {
      this.incoming = { kind, id, data, expected: attachments, buffers: [] };
      return;
    }
    this.dispatch(kind, id, data);
  }

  receiveAttachment(buffer) {
    const packet = this.incoming;
    if (!packet) return; // an attachment without a header: ignore it
    packet.buffers.push(buffer instanceof ArrayBuffer ? buffer : buffer.buffer);
    if (packet.buffers.length < packet.expected) return;
    this.incoming = null;
    this.dispatch(packet.kind, packet.id, reconstruct(packet.data, packet.buffers));
  }

  dispatch(kind, id, data) {
    if (kind === "0") {
      this.joined = true;
      this.handlers.connected?.(data);
    } else if (kind === "1") {
      // The server disconnected this namespace: drop the transport too; `closed` reports it.
      this.ws.close();
    } else if (kind === "4") {
      this.handlers.refused?.(data?.message || "connection refused");
    } else if (kind === "2" || kind === "5") {
      const [event, payload] = data;
      if (Object.hasOwn(this.handlers, event)) this.handlers[event](payload);
    } else if ((kind === "3" || kind === "6") && this.pendingAcks.has(id)) {
      const pending = this.pendingAcks.get(id);
      this.pendingAcks.delete(id);
      pending.resolve(data[0]);
    }
  }

  send(messages) {
    for (const message of messages) this.ws.send(message);
  }

  // Sends an event and resolves with the server's acknowledgement. With `timeoutMs` it
  // rejects when no acknowledgement came in time (e.g. a server without that handler).
  call(event, payload, timeoutMs = 0) {
    return new Promise((resolve, reject) => {
      if (this.ws?.readyState !== OPEN) return reject(new Error("not connected"));
      const id = this.nextAck++;
      let timer = null;
      const settle = (fn) => (value) => {
        clearTimeout(timer);
        fn(value);
      };
      this.pendingAcks.set(id, { resolve: settle(resolve), reject: settle(reject) });
      if (timeoutMs > 0) {
        timer = setTimeout(() => {
          this.pendingAcks.delete(id);
          reject(new Error("no answer"));
        }, timeoutMs);
      }
      this.send(encodeEvent(this.namespace, event, payload, id));
    });
  }

  // Fire and forget: sends an event without an acknowledgement. False when not connected.
  emit(event, payload) {
    if (this.ws?.readyState !== OPEN) return false;
    this.send(encodeEvent(this.namespace, event, payload));
    return true;
  }
}
