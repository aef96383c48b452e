// The dashboard's entry point: views behind links (#models, #storage, ...), the live
// event stream, the status line, and the API key when the service requires one.

import { onKeyChange, setKey, storedKey } from "./api.js";
import { byId } from "./dom.js";
import { ago } from "./format.js";
import { LiveEvents } from "./live.js";
import { createAnalyticsView } from "./views/analytics.js";
import { createConfigView } from "./views/config.js";
import { createModelsView } from "./views/models.js";
import { createQueueView } from "./views/queue.js";
import { createStorageView } from "./views/storage.js";

const VIEW_NAMES = ["models", "storage", "analytics", "queue", "config"];
const REFRESH_DELAY_MS = 300;
const BOOT_WAIT_MS = 600;
const CLOCK_MS = 30000;

const ctx = {
  notify(text) {
    byId("problem").textContent = "";
    byId("notice").textContent = text;
  },
  fail(error) {
    byId("problem").textContent = error?.message || String(error);
  },
  alert(text) {
    byId("problem").textContent = text;
  },
};

const views = {
  models: createModelsView(ctx),
  storage: createStorageView(ctx),
  analytics: createAnalyticsView(),
  queue: createQueueView(ctx),
  config: createConfigView(ctx),
};

// --- which view shows, and keeping it fresh ------------------------------------------

let shown = "models";
const stale = new Set(VIEW_NAMES);
const timers = new Map();

async function refreshView(name) {
  stale.delete(name);
  try {
    await views[name].refresh();
  } catch (error) {
    stale.add(name);
    ctx.fail(error);
  }
}

/** Refetch a view shortly (coalescing bursts of events); a hidden one when it shows. */
function refreshSoon(name, delay = REFRESH_DELAY_MS) {
  if (name !== shown && name !== "models") {
    stale.add(name);
    return;
  }
  clearTimeout(timers.get(name));
  timers.set(name, setTimeout(() => refreshView(name), delay));
}

function refreshAll() {
  for (const name of VIEW_NAMES) stale.add(name);
  refreshSoon("models", 0);
  if (shown !== "models") refreshSoon(shown, 0);
}

function show(name) {
  shown = VIEW_NAMES.includes(name) ? name : "models";
  for (const view of VIEW_NAMES) {
    byId(`view-${view}`).hidden = view !== shown;
  }
  for (const link of document.querySelectorAll("nav a[data-view]")) {
    if (link.dataset.view === shown) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (stale.has(shown)) refreshSoon(shown, 0);
}

window.addEventListener("hashchange", () => {
  byId("notice").textContent = ""; // messages are about the view that is left
  byId("problem").textContent = "";
  show(location.hash.slice(1));
  byId("main").focus({ preventScroll: true });
});
views.analytics.period.addEventListener("change", () => refreshSoon("analytics", 0));

// --- live events -------------------------------------------------------------------

function onEvent(event) {
  switch (event.type) {
    case "model_download_progress":
      views.models.onEvent(event);
      if (shown === "queue") refreshSoon("queue", 1000);
      break;
    case "model_availability_change":
    case "model_health_alert":
      views.models.onEvent(event);
      refreshSoon("storage");
      refreshSoon("queue");
      break;
    case "fallback_suggestion":
      views.queue.onSuggestion(event);
      break;
    case "queue_entry_change":
      refreshSoon("queue");
      break;
    default:
      break; // "subscribed" and error replies: this page sends no commands
  }
}

// The first fetch waits for the live stream (so no event falls between the two) unless
// it does not open soon: the service may want a key, which only a request can ask for.
let booted = false;
function boot() {
  if (booted) return;
  booted = true;
  refreshAll();
}

const live = new LiveEvents({
  key: storedKey,
  onEvent,
  onOpen() {
    if (booted) refreshAll(); // events were missed while it was away
    else boot();
  },
  onState(state, text) {
    const line = byId("live-status");
    line.dataset.state = state;
    line.textContent = text;
  },
});

// --- the API key -------------------------------------------------------------------

function syncKeyButton(key) {
  byId("key-forget").hidden = !key;
}

onKeyChange((key) => {
  syncKeyButton(key);
  live.reconnectNow(); // its opening refetches everything with the new key
});
byId("key-forget").addEventListener("click", () => {
  setKey(null);
  ctx.notify("The API key is forgotten; the next request asks for one");
});
byId("key-cancel").addEventListener("click", () => byId("key-dialog").close("cancel"));

// "2 minutes ago" keeps telling the truth as time passes.
setInterval(() => {
  for (const time of document.querySelectorAll("time[datetime]")) time.textContent = ago(time.dateTime);
}, CLOCK_MS);

syncKeyButton(storedKey());
show(location.hash.slice(1));
live.start();
setTimeout(boot, BOOT_WAIT_MS);
