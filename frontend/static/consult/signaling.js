/* The consult room socket (/ws/consults/<id>/, docs/protocols.md "Consult room").
 *
 * One WebSocket that comes back by itself: after a drop it reconnects with growing
 * back-off (0.5 s doubling to 10 s) and tells its owner ("reconnected"), who resumes the
 * chat with the last seq it saw and rebuilds its media. A ping every 10 s keeps proxies
 * from idling the socket out; when nothing at all arrives for 25 s the socket is taken for
 * dead (a half-open TCP link after a network cut never closes by itself) and replaced.
 * A "closed" message or close code 4403 (access lost, consult ended) stops for good.
 */

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 10000];
const PING_MS = 10000;
const SILENCE_MS = 25000;
const CLOSE_FORBIDDEN = 4403;

export class Signaling {
  /**
   * @param {string} path  e.g. "/ws/consults/7/"
   * @param {{onMessage: (msg: object) => void, onState: (state: string, info?: object) => void}} handlers
   */
  constructor(path, handlers) {
    this.url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
    this.handlers = handlers;
    this.socket = null;
    this.attempt = 0;
    this.connections = 0;
    this.stopped = false;
    this.pingTimer = null;
    this.reconnectTimer = null;
    this.lastHeard = 0;
    this.refCounter = 0;
    this.state = "idle";
    this.rtt = null;
  }

  connect() {
    if (this.stopped) return;
    clearTimeout(this.reconnectTimer);
    this._setState(this.connections === 0 ? "connecting" : "reconnecting");
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch (e) {
      this._scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.addEventListener("open", () => {
      if (socket !== this.socket) return;
      this.attempt = 0;
      this.connections += 1;
      this.lastHeard = Date.now();
      this._startPings();
      this._setState("open", { reconnected: this.connections > 1 });
    });
    socket.addEventListener("message", (event) => {
      if (socket !== this.socket) return;
      this.lastHeard = Date.now();
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (!msg || typeof msg.type !== "string") return;
      if (msg.type === "pong" && typeof msg.t === "number") {
        this.rtt = Date.now() - msg.t;
        return;
      }
      if (msg.type === "closed") this.stopped = true;
      this.handlers.onMessage(msg);
    });
    socket.addEventListener("close", (event) => {
      if (socket !== this.socket) return;
      this._stopPings();
      this.socket = null;
      if (event.code === CLOSE_FORBIDDEN) this.stopped = true;
      if (this.stopped) {
        this._setState("closed", { code: event.code });
        return;
      }
      this._scheduleReconnect();
    });
  }

  /** Send one message; returns false when the socket is not open (the caller may retry). */
  send(msg) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(msg));
    return true;
  }

  /** A fresh ``ref`` to match an ``error`` to what caused it. */
  nextRef(prefix = "r") {
    this.refCounter += 1;
    return `${prefix}${this.refCounter}`;
  }

  /** Drop the current socket as a network cut would (tests, and the silence watchdog). */
  drop() {
    const socket = this.socket;
    if (!socket) return;
    this.socket = null;
    this._stopPings();
    try {
      socket.close();
    } catch (e) {
      // already closing
    }
    this._scheduleReconnect();
  }

  close() {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    this._stopPings();
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.close(1000);
    }
    this._setState("closed", { code: 1000 });
  }

  get isOpen() {
    return !!this.socket && this.socket.readyState === WebSocket.OPEN;
  }

  _scheduleReconnect() {
    if (this.stopped) return;
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    this._setState("reconnecting", { delay });
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  _startPings() {
    this._stopPings();
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastHeard > SILENCE_MS) {
        this.drop();
        return;
      }
      this.send({ type: "ping", t: Date.now() });
    }, PING_MS);
  }

  _stopPings() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  _setState(state, info = {}) {
    this.state = state;
    this.handlers.onState(state, info);
  }
}
