// The live event stream of `/ws`: one WebSocket that comes back by itself.
//
// Where the WebSocket class comes from: the `WebSocket` option, else the global one
// (browsers, Deno, Bun, Node 22+), else the `ws` package, imported on first use (Node 20 has
// no global WebSocket; `ws` is an optional peer dependency for that case).
//
// The API key: `ws` sends it as `Authorization: Bearer <key>`, like every HTTP request. A
// standard WebSocket cannot set headers, so there it is offered as the subprotocol
// `modeldepot.bearer.<key>` beside `modeldepot`, which the service accepts and answers
// with `modeldepot` (never echoing the key).
//
// When the connection drops, it is opened again after a capped, jittered exponential delay,
// and the subscription in force is sent again, so a reconnected stream delivers what the
// old one did. It stops for good on `close()`, when the service closes it with 1008 (a
// revoked key) or when `ws` reports the handshake refused with 401 or 403.

import {
  ForbiddenError,
  ModelDepotError,
  ServiceUnreachableError,
  UnauthorizedError,
  ValidationError,
} from "./errors.js";
import { backoffDelay } from "./reconnect.js";

const SUBPROTOCOL = "modeldepot";
const KEY_SUBPROTOCOL = "modeldepot.bearer.";
const POLICY_VIOLATION = 1008;
const STABLE_AFTER_MS = 5_000;
const CLOSED = { done: true, value: undefined };

/** @type {Promise<Function> | null} */
let wsPackage = null;

async function webSocketClass(explicit) {
  if (explicit) return { Impl: explicit, headers: false };
  if (typeof globalThis.WebSocket === "function") return { Impl: globalThis.WebSocket, headers: false };
  wsPackage ??= import("ws").then(
    (module) => module.default ?? module.WebSocket,
    (error) => {
      wsPackage = null;
      throw new ModelDepotError("No WebSocket here: Node before 22 needs the `ws` package (npm install ws)", {
        code: "WEBSOCKET_UNAVAILABLE",
        cause: error,
      });
    },
  );
  return { Impl: await wsPackage, headers: true };
}

/** A promise whose rejection nobody has to handle (the caller may ignore it). */
function deferred() {
  let resolve, reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/** Throw where nothing catches it, as an event handler's exception would be. */
function rethrowLater(error) {
  queueMicrotask(() => {
    throw error;
  });
}

function normalised(subscription) {
  if (subscription == null) return null;
  const list = (values) => (values == null ? null : [...new Set(values)].sort());
  return {
    model_ids: list(subscription.modelIds ?? subscription.model_ids),
    types: list(subscription.types),
  };
}

function sameLists(a, b) {
  if (a == null || b == null) return a == null && b == null;
  return a.length === b.length && a.every((value, i) => value === b[i]);
}

export class EventStream {
  #url;
  #apiKey;
  #explicitImpl;
  #reconnect;
  #dispatch;
  #maxBuffered;
  #socket = null;
  #state = "connecting";
  #attempt = 0;
  #openedAt = 0;
  #timer = null;
  #subscription = null;
  #waiters = [];
  #readies = [];
  #listeners = new Map();
  #queues = new Set();

  /**
   * Use `client.connectWebSocket()`; this constructor is the plumbing.
   *
   * @param {object} options
   * @param {string} options.url
   * @param {string | null} options.apiKey
   * @param {object | null} options.subscription `{modelIds, types}`, or null for every event
   * @param {Function | null} options.WebSocket
   * @param {false | {initialDelayMs?: number, maxDelayMs?: number}} options.reconnect
   * @param {(data: object) => void} [options.dispatch] called with every event
   * @param {number} [options.maxBuffered] events kept per `events()` iterator
   */
  constructor({ url, apiKey, subscription, WebSocket, reconnect, dispatch, maxBuffered }) {
    this.#url = url;
    this.#apiKey = apiKey;
    this.#explicitImpl = WebSocket ?? null;
    this.#reconnect =
      reconnect === false
        ? null
        : { initialMs: reconnect?.initialDelayMs ?? 500, maxMs: reconnect?.maxDelayMs ?? 30_000 };
    this.#dispatch = dispatch ?? null;
    this.#maxBuffered = maxBuffered ?? 10_000;
    this.#subscription = normalised(subscription);
    this.#open();
  }

  /** "connecting", "open", "reconnecting" or "closed" (for good). */
  get state() {
    return this.#state;
  }

  /** The WebSocket URL this stream connects to. */
  get url() {
    return this.#url;
  }

  /**
   * Listen to "open", "close" ({code, reason, willReconnect}), "reconnecting"
   * ({attempt, delayMs}), "message" (every event), "subscribed" (the service's
   * confirmation) or "error" (an Error). Returns a function that removes the listener.
   */
  on(type, listener) {
    if (!this.#listeners.has(type)) this.#listeners.set(type, new Set());
    this.#listeners.get(type).add(listener);
    return () => this.#listeners.get(type)?.delete(listener);
  }

  /** Resolves once the stream is open (at once if it is); rejects if it closes for good first. */
  ready() {
    if (this.#state === "open") return Promise.resolve();
    if (this.#state === "closed") return Promise.reject(this.#closedError());
    const waiter = deferred();
    this.#readies.push(waiter);
    return waiter.promise;
  }

  /**
   * Receive only these events from now on, on this connection and every later one.
   * `modelIds` or `types` left out or null mean all of them. Resolves with the service's
   * confirmation; rejects with a ValidationError when the service refuses it.
   *
   * @param {{modelIds?: string[] | null, types?: string[] | null}} subscription
   */
  subscribe(subscription = {}) {
    this.#subscription = normalised(subscription);
    return this.#sendSubscription(this.#subscription);
  }

  /** Receive every event again. */
  unsubscribe() {
    this.#subscription = null;
    return this.#sendSubscription(null);
  }

  /**
   * The events of this stream as an async iterator; it ends when the stream is closed.
   * Ending the loop early (`break`) stops the iterator, not the stream. An iterator keeps
   * the newest `maxBuffered` events its loop has not taken yet.
   */
  events() {
    const queue = { items: [], next: null };
    this.#queues.add(queue);
    const done = () => {
      this.#queues.delete(queue);
      queue.next?.resolve(CLOSED);
      queue.next = null;
      return Promise.resolve(CLOSED);
    };
    if (this.#state === "closed") done();
    return {
      next: () => {
        if (queue.items.length > 0) return Promise.resolve({ done: false, value: queue.items.shift() });
        if (!this.#queues.has(queue)) return Promise.resolve(CLOSED);
        queue.next = deferred();
        return queue.next.promise;
      },
      return: done,
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  /** Close the connection for good: no reconnect; iterators end. */
  close(code = 1000, reason = "closed by the client") {
    if (this.#state === "closed") return;
    this.#finish({ code, reason, error: this.#closedError() });
  }

  #closedError() {
    return new ModelDepotError("The event stream is closed", { code: "STREAM_CLOSED" });
  }

  #emit(type, value) {
    const listeners = [...(this.#listeners.get(type) ?? [])];
    for (const listener of listeners) {
      try {
        listener(value);
      } catch (error) {
        // A listener's bug must not end the stream, nor be lost.
        if (type === "error") rethrowLater(error);
        else this.#report(error);
      }
    }
    return listeners.length > 0;
  }

  /** Tell the "error" listeners; with none, throw it where nothing catches it (as an event
   * handler's exception would be), rather than lose it in silence. */
  #report(error) {
    if (!this.#emit("error", error)) rethrowLater(error);
  }

  async #open() {
    let found;
    try {
      found = await webSocketClass(this.#explicitImpl);
    } catch (error) {
      this.#finish({ code: 1006, reason: error.message, error });
      this.#report(error);
      return;
    }
    if (this.#state === "closed") return;
    let socket;
    try {
      socket = this.#construct(found);
    } catch (error) {
      const failure = new ServiceUnreachableError(`Cannot open ${this.#url}: ${error.message}`, {
        code: "WEBSOCKET_ERROR",
        cause: error,
      });
      this.#finish({ code: 1006, reason: failure.message, error: failure });
      this.#report(failure);
      return;
    }
    this.#socket = socket;
    let refusal = null;
    socket.onopen = () => this.#opened();
    socket.onmessage = (event) => this.#received(event.data);
    socket.onerror = (event) => {
      // `ws` says why a handshake failed; a browser never does (the close follows).
      const status = /Unexpected server response: (\d+)/.exec(event?.message ?? "")?.[1];
      if (status === "401" || status === "403") {
        const Class = status === "401" ? UnauthorizedError : ForbiddenError;
        refusal = new Class(`The service refused the WebSocket: ${status}`, {
          code: status === "401" ? "UNAUTHORIZED" : "FORBIDDEN",
          status: Number(status),
        });
      }
      if (this.#state !== "open") {
        // A failed handshake must be followed by a close event, but Node 20's WebSocket
        // (undici) sends none: count it as the drop it is (a close that does come later
        // finds this socket already replaced and is ignored).
        setTimeout(() => this.#dropped(socket, 1006, "the handshake failed", refusal), 0);
      }
    };
    socket.onclose = (event) => this.#dropped(socket, event.code, event.reason, refusal);
  }

  #construct({ Impl, headers }) {
    if (headers) {
      const authorization = this.#apiKey ? { Authorization: `Bearer ${this.#apiKey}` } : {};
      return new Impl(this.#url, [SUBPROTOCOL], { headers: authorization });
    }
    const protocols = this.#apiKey ? [SUBPROTOCOL, KEY_SUBPROTOCOL + this.#apiKey] : [SUBPROTOCOL];
    return new Impl(this.#url, protocols);
  }

  #opened() {
    this.#state = "open";
    this.#openedAt = Date.now();
    for (const waiter of this.#readies.splice(0)) waiter.resolve();
    if (this.#subscription !== null || this.#waiters.length > 0) {
      this.#send(this.#command(this.#subscription));
    }
    this.#emit("open", { url: this.#url });
  }

  #dropped(socket, code, reason, refusal) {
    if (socket !== this.#socket || this.#state === "closed") return;
    this.#socket = null;
    const stable = this.#openedAt > 0 && Date.now() - this.#openedAt >= STABLE_AFTER_MS;
    this.#openedAt = 0;
    if (stable) this.#attempt = 0;
    const final = this.#reconnect === null || code === POLICY_VIOLATION || refusal !== null;
    if (final) {
      const error =
        refusal ??
        new ModelDepotError(`The event stream closed: ${code} ${reason}`, {
          code: "STREAM_CLOSED",
        });
      this.#finish({ code, reason, error });
      if (refusal) this.#report(refusal);
      return;
    }
    const delayMs = backoffDelay(this.#attempt, this.#reconnect);
    this.#attempt += 1;
    this.#state = "reconnecting";
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (this.#state !== "closed") this.#open();
    }, delayMs);
    // Last: a listener may close() the stream, which clears the timer.
    this.#emit("close", { code, reason, willReconnect: true });
    this.#emit("reconnecting", { attempt: this.#attempt, delayMs });
  }

  #finish({ code, reason, error }) {
    const wasLive = this.#state !== "closed";
    this.#state = "closed";
    clearTimeout(this.#timer);
    this.#timer = null;
    const socket = this.#socket;
    this.#socket = null;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = null;
      socket.onerror = () => {}; // `ws` throws an error event nobody listens to
      try {
        socket.close(code >= 3000 || code === 1000 ? code : 1000, reason.slice(0, 120));
      } catch {
        // closing a socket that never opened: nothing to tell anyone
      }
    }
    for (const waiter of this.#readies.splice(0)) waiter.reject(error);
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
    for (const queue of [...this.#queues]) {
      this.#queues.delete(queue);
      queue.next?.resolve(CLOSED);
      queue.next = null;
    }
    if (wasLive) this.#emit("close", { code, reason, willReconnect: false });
  }

  #command(subscription) {
    return subscription === null
      ? { action: "unsubscribe" }
      : { action: "subscribe", model_ids: subscription.model_ids, types: subscription.types };
  }

  #sendSubscription(subscription) {
    if (this.#state === "closed") return Promise.reject(this.#closedError());
    const waiter = deferred();
    waiter.expected = subscription ?? { model_ids: null, types: null };
    this.#waiters.push(waiter);
    if (this.#state === "open") this.#send(this.#command(subscription));
    return waiter.promise;
  }

  #send(message) {
    try {
      this.#socket?.send(JSON.stringify(message));
    } catch (error) {
      // The socket is closing; the next connection sends the subscription again.
      this.#emit("error", error);
    }
  }

  #received(raw) {
    if (typeof raw !== "string") return; // the service sends text frames only
    let data;
    try {
      data = JSON.parse(raw);
    } catch {
      return;
    }
    if (data?.type === "subscribed") return this.#confirmed(data);
    if (data?.type === "error") return this.#refused(data);
    for (const queue of this.#queues) {
      if (queue.next) {
        queue.next.resolve({ done: false, value: data });
        queue.next = null;
      } else {
        queue.items.push(data);
        if (queue.items.length > this.#maxBuffered) queue.items.shift();
      }
    }
    this.#emit("message", data);
    try {
      this.#dispatch?.(data);
    } catch (error) {
      this.#report(error); // a handler's bug must not end the stream
    }
  }

  #confirmed(reply) {
    // Replies come in the order of the commands: one that confirms a waiter's subscription
    // also answers the waiters before it (superseded, or lost with a dropped connection).
    const last = this.#waiters.findLastIndex(
      (waiter) =>
        sameLists(waiter.expected.model_ids, reply.model_ids) &&
        sameLists(waiter.expected.types, reply.types),
    );
    for (const waiter of this.#waiters.splice(0, last + 1)) waiter.resolve(reply);
    this.#emit("subscribed", reply);
  }

  #refused(reply) {
    const error = new ValidationError(reply.message ?? "The service refused the command", {
      code: "VALIDATION_ERROR",
    });
    const waiter = this.#waiters.shift();
    waiter?.reject(error);
    this.#emit("error", error);
  }
}
