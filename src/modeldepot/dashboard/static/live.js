// The live event stream (/ws) with reconnection: after a drop (the service restarted,
// the network went away, the server closed a slow client) it tries again with a growing,
// jittered delay, and each (re)connection asks the page to fetch everything again, since
// events sent while it was away are lost.

const PROTOCOL = "modeldepot";
// Browsers cannot set Authorization on a WebSocket: the key travels as a subprotocol,
// which the service reads and never echoes (modeldepot.api.access).
const KEY_PROTOCOL = "modeldepot.bearer.";
const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;

export class LiveEvents {
  /**
   * onEvent(message): every event; onOpen(): connected (refetch now);
   * onState(state, text): "connecting" | "live" | "waiting" for the status line.
   */
  constructor({ key, onEvent, onOpen, onState }) {
    this.key = key;
    this.onEvent = onEvent;
    this.onOpen = onOpen;
    this.onState = onState;
    this.attempt = 0;
    this.socket = null;
    this.timer = null;
  }

  start() {
    this.connect();
  }

  /** Drop any connection or wait and connect at once (a new key, say). */
  reconnectNow() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.onclose = null;
      socket.close();
    }
    this.attempt = 0;
    this.connect();
  }

  connect() {
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
    const key = this.key();
    const protocols = key ? [PROTOCOL, KEY_PROTOCOL + key] : [PROTOCOL];
    this.onState("connecting", "Connecting to live events…");
    let socket;
    try {
      socket = new WebSocket(url, protocols);
    } catch {
      this.retry(); // a key that is no valid subprotocol token, say
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.onState("live", "Live: updates arrive as they happen");
      this.onOpen();
    };
    socket.onmessage = (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      if (event && typeof event.type === "string") this.onEvent(event);
    };
    socket.onclose = (close) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.retry(close.code === 1008 ? close.reason : "");
    };
  }

  retry(reason = "") {
    const delay = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.attempt);
    const jittered = Math.round(delay * (0.5 + Math.random() / 2));
    this.attempt += 1;
    const why = reason ? ` (${reason})` : "";
    this.onState("waiting", `Disconnected${why}; reconnecting in ${Math.ceil(jittered / 1000)} s`);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect();
    }, jittered);
  }
}
