// A minimal Socket.IO v5 client over one WebSocket (Engine.IO v4 framing), so the pages
// need no third-party script and no CDN. It speaks only what Convonet uses: one namespace,
// events, acknowledgements and the server's heartbeat.
export class CallerSocket {
  constructor(namespace, auth, handlers) {
    this.namespace = namespace;
    this.auth = auth;
    this.handlers = handlers; // {status, error, connected, disconnected, refused}
    this.nextAck = 1;
    this.pendingAcks = new Map();
  }

  open() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    this.ws = new WebSocket(`${scheme}://${location.host}/socket.io/?EIO=4&transport=websocket`);
    this.ws.onmessage = (message) => this.receive(message.data);
    this.ws.onclose = () => {
      for (const pending of this.pendingAcks.values()) pending.reject(new Error("connection lost"));
      this.pendingAcks.clear();
      this.handlers.disconnected?.();
    };
  }

  close() {
    this.ws?.close();
  }

  receive(text) {
    const type = text[0];
    if (type === "0") {
      this.ws.send(`40${this.namespace},${JSON.stringify(this.auth || {})}`);
    } else if (type === "2") {
      this.ws.send("3"); // heartbeat
    } else if (type === "4") {
      this.receivePacket(text.slice(1));
    }
  }

  receivePacket(packet) {
    const kind = packet[0];
    let body = packet.slice(1);
    if (body.startsWith(this.namespace)) body = body.slice(this.namespace.length + 1);
    const idMatch = body.match(/^\d+/);
    const id = idMatch ? Number(idMatch[0]) : null;
    const payload = body.slice(idMatch ? idMatch[0].length : 0);
    const data = payload ? JSON.parse(payload) : null;
    if (kind === "0") this.handlers.connected?.(data);
    else if (kind === "4") this.handlers.refused?.(data?.message || "connection refused");
    else if (kind === "2") this.handlers[data[0]]?.(data[1]);
    else if (kind === "3" && this.pendingAcks.has(id)) {
      const pending = this.pendingAcks.get(id);
      this.pendingAcks.delete(id);
      pending.resolve(data[0]);
    }
  }

  // Sends an event and resolves with the server's acknowledgement.
  call(event, payload) {
    return new Promise((resolve, reject) => {
      if (this.ws?.readyState !== WebSocket.OPEN) return reject(new Error("not connected"));
      const id = this.nextAck++;
      this.pendingAcks.set(id, { resolve, reject });
      this.ws.send(`42${this.namespace},${id}${JSON.stringify([event, payload])}`);
    });
  }
}
