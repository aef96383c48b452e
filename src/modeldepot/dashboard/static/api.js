// Talking to the service: JSON in and out, the error envelope turned into a sentence,
// and the API key (when the service requires one) sent as a Bearer token.

import { requestKey } from "./auth.js";

export const API_ROOT = "/api/v1";
const KEY_STORAGE = "modeldepot.apiKey";
const keyListeners = new Set();

/** An answer that was not a success, with the envelope's sentence as its message. */
export class ApiError extends Error {
  constructor(message, { status = 0, code = "ERROR", details = {} } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
  }

  /** details.errors of a 422: [{field, message}]. */
  get fieldErrors() {
    return Array.isArray(this.details?.errors) ? this.details.errors : [];
  }
}

export function storedKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function setKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
  for (const listener of keyListeners) listener(key || null);
}

/** Called with the new key (or null) whenever it changes. */
export function onKeyChange(listener) {
  keyListeners.add(listener);
}

async function send(method, url, body, key) {
  const headers = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  try {
    return await fetch(url, init);
  } catch {
    throw new ApiError(
      `The service at ${location.origin} does not answer; it may be restarting (the page reconnects by itself)`,
      { code: "NETWORK" },
    );
  }
}

async function errorOf(response) {
  let envelope = null;
  try {
    envelope = await response.json();
  } catch {
    // not JSON: a proxy's page, say
  }
  const error = envelope?.error;
  if (error?.message) {
    return new ApiError(error.message, { status: response.status, code: error.code, details: error.details || {} });
  }
  return new ApiError(`The service answered ${response.status} ${response.statusText}`.trim(), {
    status: response.status,
    code: `HTTP_${response.status}`,
  });
}

/**
 * One request; resolves to the parsed JSON (null for 204). A 401 asks for an API key and
 * tries again with it; any other failure rejects with an ApiError.
 */
export async function request(method, url, body) {
  for (;;) {
    const key = storedKey();
    const response = await send(method, url, body, key);
    if (response.status === 401) {
      const error = await errorOf(response);
      if (storedKey() !== key) continue; // another request got a key meanwhile
      const given = await requestKey(error.message); // rejects when the user gives up
      if (storedKey() !== given) setKey(given); // once, however many requests waited
      continue;
    }
    if (!response.ok) throw await errorOf(response);
    return response.status === 204 ? null : response.json();
  }
}

export const get = (path) => request("GET", API_ROOT + path);
export const post = (path, body = {}) => request("POST", API_ROOT + path, body);
export const put = (path, body = {}) => request("PUT", API_ROOT + path, body);
export const del = (path) => request("DELETE", API_ROOT + path);

/** Every item of a paged list: pages of `limit` until has_next is false. */
export async function allPages(path, field, limit = 100) {
  const joiner = path.includes("?") ? "&" : "?";
  let items = null;
  for (let page = 1; ; page += 1) {
    const answer = await get(`${path}${joiner}page=${page}&limit=${limit}`);
    const chunk = answer[field];
    items = Array.isArray(chunk) ? [...(items || []), ...chunk] : { ...(items || {}), ...chunk };
    if (!answer.pagination?.has_next) return { answer, items };
  }
}

export function modelPath(id) {
  return encodeURIComponent(id);
}
