// Every catalogue model: status, size, version, health, its download and what can be
// done with it. Rows are patched in place (a progress event touches one bar), so the
// button that has the keyboard focus keeps it while events stream in.

import { allPages, del, get, modelPath, post, put } from "../api.js";
import { byId, h, put as fillWith } from "../dom.js";
import * as fmt from "../format.js";

const ACTIVE = new Set(["QUEUED", "DOWNLOADING", "PAUSED", "VERIFYING"]);
const RUNNING = new Set(["QUEUED", "DOWNLOADING"]);
const PRIORITIES = ["critical", "high", "normal", "low"];
const SETTLE_FIRST_MS = 300;
const SETTLE_MAX_MS = 5000;
const SETTLE_WAIT_MS = 600000;

export function createModelsView(ctx) {
  const models = new Map(); // id -> {status, health, download, pinned, priority}
  const rows = new Map(); // id -> {tr, cells: {...}, keys: {...}}
  const alerts = new Map(); // id -> model_health_alert event
  const pendingRefresh = new Map();
  const tbody = byId("models-body");
  const summary = byId("models-summary");

  function model(id) {
    if (!models.has(id)) models.set(id, { id, status: null, health: null, download: null, pinned: false, priority: "normal" });
    return models.get(id);
  }

  async function refresh() {
    const [status, health, active, pins] = await Promise.all([
      allPages("/models/status/detailed", "models"),
      allPages("/models/health", "models"),
      allPages("/models/download/active", "active_downloads"),
      get("/models/pins"),
    ]);
    const pinned = new Set(pins.pins.map((pin) => pin.model_id));
    for (const id of [...models.keys()]) if (!(id in status.items)) models.delete(id);
    for (const [id, one] of Object.entries(status.items)) {
      const m = model(id);
      m.status = one;
      m.health = health.items[id] || null;
      m.pinned = pinned.has(id);
    }
    const activeIds = new Set(active.items.map((download) => download.model_id));
    for (const download of active.items) {
      const m = model(download.model_id);
      m.download = { ...(m.download || {}), ...download };
      m.priority = download.priority;
    }
    // A download that ended while the page was away: its final state, from the service.
    const stale = [...models.values()].filter((m) => m.download && ACTIVE.has(m.download.status) && !activeIds.has(m.id));
    await Promise.all(stale.map(finalProgress));
    renderSummary(status.answer.summary);
    renderAll();
  }

  async function refreshModel(id) {
    const [status, health, listing] = await Promise.all([
      get(`/models/status/detailed/${modelPath(id)}`),
      get(`/models/health/${modelPath(id)}`),
      get("/models/status/detailed?limit=1"), // for the summary of them all
    ]);
    renderSummary(listing.summary);
    const m = model(id);
    m.status = status;
    m.health = health.models[id] || null;
    if (m.health?.overall_health === "healthy") alerts.delete(id);
    renderRow(m);
    renderAlerts();
  }

  async function finalProgress(m) {
    try {
      m.download = await get(`/models/download/progress/${modelPath(m.id)}`);
    } catch (error) {
      if (error.status !== 404) throw error;
      m.download = null;
    }
  }

  function refreshModelSoon(id) {
    clearTimeout(pendingRefresh.get(id));
    pendingRefresh.set(
      id,
      setTimeout(() => {
        pendingRefresh.delete(id);
        refreshModel(id).catch((error) => ctx.fail(error));
      }, 150),
    );
  }

  function renderSummary(total) {
    fillWith(
      summary,
      `${total.total_models} models: ${total.available_models} available, ${total.downloading_models} downloading, `,
      `${total.corrupted_models} corrupted; ${fmt.bytes(total.total_storage_gb * 1e9)} on disk`,
    );
  }

  function renderAll() {
    const ordered = [...models.values()].sort((a, b) => a.id.localeCompare(b.id));
    ordered.forEach(renderRow);
    const wanted = ordered.map((m) => rows.get(m.id).tr);
    for (const [id, row] of rows) {
      if (!models.has(id)) {
        row.tr.remove();
        rows.delete(id);
      }
    }
    const current = [...tbody.children];
    if (wanted.length !== current.length || wanted.some((tr, i) => tr !== current[i])) tbody.replaceChildren(...wanted);
    byId("models-empty").hidden = ordered.length > 0;
    renderAlerts();
  }

  // --- one row ---------------------------------------------------------------------

  function newRow(id) {
    const cells = {};
    for (const name of ["name", "status", "size", "version", "health", "checked", "download", "actions"]) {
      cells[name] = h(name === "name" ? "th" : "td", { class: `col-${name}`, scope: name === "name" ? "row" : undefined });
    }
    const bar = h("progress", { max: 100, value: 0, "aria-label": `Download of ${id}` });
    const text = h("span", { class: "progress-text" });
    cells.download.append(bar, text);
    const tr = h("tr", { dataset: { modelId: id } }, Object.values(cells));
    const row = { tr, cells, bar, text, keys: {} };
    rows.set(id, row);
    return row;
  }

  /** Replace a cell's content only when what it shows changed. */
  function patch(row, name, key, build) {
    if (row.keys[name] === key) return;
    row.keys[name] = key;
    const cell = row.cells[name];
    const focused = cell.contains(document.activeElement) ? document.activeElement.dataset.action : null;
    fillWith(cell, build());
    if (focused) {
      const again = cell.querySelector(`[data-action="${focused}"]`) || cell.querySelector("button, select");
      if (again) again.focus();
    }
  }

  function renderRow(m) {
    const row = rows.get(m.id) || newRow(m.id);
    const st = m.status || {};
    const health = m.health || {};
    patch(row, "name", JSON.stringify([st.display_name, st.model_type]), () => [
      h("span", { class: "model-name" }, st.display_name || m.id),
      st.display_name && st.display_name !== m.id ? h("span", { class: "model-id" }, m.id) : null,
      st.model_type ? h("span", { class: "model-type" }, st.model_type) : null,
    ]);
    patch(row, "status", JSON.stringify([st.availability_status, m.pinned, st.source_error]), () => [
      badge(st.availability_status, "status"),
      m.pinned ? h("span", { class: "badge badge-pin" }, "Pinned") : null,
      st.source_error ? h("p", { class: "cell-note" }, st.source_error) : null,
    ]);
    patch(row, "size", JSON.stringify([st.size_bytes, st.file_count, st.missing_files?.length]), () => [
      fmt.bytes(st.size_bytes),
      h("span", { class: "cell-note" }, `${st.file_count ?? "?"} files${st.missing_files?.length ? `, ${st.missing_files.length} missing` : ""}`),
    ]);
    patch(row, "version", JSON.stringify([st.current_version, st.latest_version, st.update_available]), () => [
      h("code", { title: st.current_version || "not installed" }, fmt.commit(st.current_version)),
      st.update_available ? h("span", { class: "badge badge-update", title: `Newest: ${st.latest_version}` }, "Update available") : null,
    ]);
    patch(row, "health", JSON.stringify([health.overall_health, health.integrity_score, health.issues?.length]), () => [
      badge(health.overall_health, "health"),
      health.integrity_score !== null && health.integrity_score !== undefined
        ? h("span", { class: "cell-note" }, `integrity ${fmt.score(health.integrity_score)}`)
        : null,
      health.issues?.length ? h("span", { class: "cell-note" }, `${health.issues.length} bad file(s)`) : null,
    ]);
    patch(row, "checked", JSON.stringify([health.last_check]), () =>
      h("time", { datetime: health.last_check || undefined, title: fmt.when(health.last_check) }, fmt.ago(health.last_check)),
    );
    renderDownload(row, m.download);
    const actions = actionsFor(m);
    patch(row, "actions", JSON.stringify([actions.map((a) => a.action), m.priority]), () => [
      h("div", { class: "actions" }, actions.map((a) => actionButton(m, a)), prioritySelect(m)),
    ]);
  }

  function renderDownload(row, download) {
    row.cells.download.classList.toggle("idle", !download);
    if (!download) {
      row.bar.hidden = true;
      row.text.textContent = "";
      return;
    }
    row.bar.hidden = false;
    row.bar.value = download.progress_percent ?? 0;
    const parts = [fmt.percent(download.progress_percent ?? 0)];
    if (download.status === "DOWNLOADING") {
      parts.push(fmt.speed(download.speed_mbps), `ETA ${fmt.duration(download.eta_seconds)}`);
    } else {
      parts.push(fmt.words(download.status));
    }
    if (download.queue_position) parts.push(`#${download.queue_position} in queue`);
    if (download.error_message) parts.push(download.error_message);
    row.text.textContent = parts.join(" · ");
    row.bar.dataset.status = download.status || "";
  }

  function badge(value, kind) {
    return h("span", { class: `badge badge-${kind}`, dataset: { value: value || "none" } }, fmt.words(value || "unknown"));
  }

  // --- actions ---------------------------------------------------------------------

  function actionsFor(m) {
    const st = m.status || {};
    const downloading = m.download && ACTIVE.has(m.download.status) ? m.download.status : null;
    const installed = Boolean(st.current_version);
    const list = [];
    if (downloading && RUNNING.has(downloading)) list.push({ action: "pause", label: "Pause" });
    if (downloading === "PAUSED") list.push({ action: "resume", label: "Resume" });
    if (downloading) list.push({ action: "cancel", label: "Cancel" });
    if (!downloading && (!st.is_available || ["PARTIAL", "MISSING", "FAILED"].includes(st.availability_status))) {
      if (!installed || st.availability_status !== "CORRUPTED") list.push({ action: "start", label: "Download" });
    }
    if (installed && !downloading) {
      list.push({ action: "check", label: "Check" }, { action: "repair", label: "Repair" });
      if (st.update_available) list.push({ action: "update", label: "Update" });
      list.push({ action: "rollback", label: "Roll back" });
    }
    list.push(m.pinned ? { action: "unpin", label: "Unpin" } : { action: "pin", label: "Pin" });
    return list;
  }

  function actionButton(m, { action, label }) {
    return h(
      "button",
      { type: "button", class: `action action-${action}`, dataset: { action }, "aria-label": `${label} ${m.id}`, onclick: () => act(m.id, action) },
      label,
    );
  }

  function prioritySelect(m) {
    const select = h(
      "select",
      { "aria-label": `Priority of ${m.id}`, dataset: { action: "priority" }, title: "Priority of its download" },
      PRIORITIES.map((p) => h("option", { value: p, selected: p === m.priority }, fmt.words(p))),
    );
    select.addEventListener("change", () => setPriority(m.id, select.value));
    return select;
  }

  async function setPriority(id, priority) {
    const m = model(id);
    m.priority = priority;
    if (!m.download || !ACTIVE.has(m.download.status)) {
      ctx.notify(`${id} will download at ${priority} priority`);
      return;
    }
    await run(id, async () => {
      const answer = await post("/models/download/manage", { model_id: id, action: "set_priority", priority });
      return answer.message;
    });
  }

  const ACTIONS = {
    start: async (m) => {
      const answer = await post("/models/download/manage", { model_id: m.id, action: "start", priority: m.priority });
      m.download = { status: answer.new_status || "QUEUED", progress_percent: 0, download_id: answer.download_id };
      return answer.message;
    },
    pause: (m) => manage(m, "pause"),
    resume: (m) => manage(m, "resume"),
    cancel: (m) => manage(m, "cancel"),
    check: (m) => check(m.id),
    repair: (m) => repair(m),
    update: async (m) => {
      const answer = await post(`/models/revisions/${modelPath(m.id)}/update`, {});
      if (answer.download_id) m.download = { status: "QUEUED", progress_percent: 0, download_id: answer.download_id };
      return answer.message;
    },
    rollback: async (m) => (await post(`/models/revisions/${modelPath(m.id)}/rollback`, {})).message,
    pin: async (m) => {
      await put(`/models/pins/${modelPath(m.id)}`, {});
      m.pinned = true;
      return `${m.id} is pinned: clean-ups never remove it`;
    },
    unpin: async (m) => {
      await del(`/models/pins/${modelPath(m.id)}`);
      m.pinned = false;
      return `${m.id} is no longer pinned`;
    },
  };

  async function manage(m, action) {
    const answer = await post("/models/download/manage", { model_id: m.id, action });
    if (answer.new_status && m.download) m.download = { ...m.download, status: answer.new_status };
    return answer.message;
  }

  /**
   * Poll a check or repair record until it ends: neither announces its end when nothing
   * changes. Every 0.3 s at first, then less often (up to 5 s: a rate limit of 60 a
   * minute must leave room for the rest), for at most 10 minutes.
   */
  async function settled(path) {
    const deadline = Date.now() + SETTLE_WAIT_MS;
    let delay = SETTLE_FIRST_MS;
    for (;;) {
      const record = await get(path);
      if (record.status !== "queued" && record.status !== "running") return record;
      if (Date.now() > deadline) return null;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(SETTLE_MAX_MS, delay * 1.5);
    }
  }

  async function check(id) {
    const started = await post(`/models/health/${modelPath(id)}/check`, { check_type: "full", force_check: true });
    ctx.notify(`Full check of ${id} started: every file is hashed`);
    const record = await settled(`/models/health/checks/${encodeURIComponent(started.check_id)}`);
    await refreshModel(id);
    const health = model(id).health;
    if (!record) return `The check of ${id} is still running`;
    if (record.status === "failed") return `The check of ${id} could not finish${record.error ? `: ${record.error}` : ""}`;
    if (health?.overall_health === "healthy") return `Check of ${id}: every file is intact`;
    const issues = (health?.issues || []).map((issue) => `${issue.path}: ${issue.detail}`).join("; ");
    return `Check of ${id}: ${fmt.words(health?.overall_health)}${issues ? ` (${issues})` : ""}`;
  }

  async function repair(m) {
    const answer = await post(`/models/health/${modelPath(m.id)}/repair`, { repair_type: "auto" });
    if (answer.download_id) m.download = { status: "QUEUED", progress_percent: 0, download_id: answer.download_id };
    const did = answer.actions_taken.map(fmt.words).join(", ");
    ctx.notify(`Repairing ${m.id}: ${did}${answer.files.length ? ` (${answer.files.join(", ")})` : ""}`);
    renderRow(m);
    const record = await settled(`/models/health/repairs/${encodeURIComponent(answer.repair_id)}`);
    await refreshModel(m.id);
    if (!record) return `The repair of ${m.id} is still running`;
    if (record.status !== "completed") return `The repair of ${m.id} ${fmt.words(record.status).toLowerCase()}${record.error ? `: ${record.error}` : ""}`;
    return `Repair of ${m.id} finished: ${fmt.words(record.overall_health || "done").toLowerCase()}`;
  }

  async function run(id, work) {
    const row = rows.get(id);
    row?.tr.setAttribute("aria-busy", "true");
    try {
      const message = await work();
      if (message) ctx.notify(message);
    } catch (error) {
      ctx.fail(error);
    } finally {
      row?.tr.removeAttribute("aria-busy");
      const m = models.get(id);
      if (m) renderRow(m);
      refreshModelSoon(id);
    }
  }

  function act(id, action) {
    return run(id, () => ACTIONS[action](model(id)));
  }

  // --- health alerts ---------------------------------------------------------------

  function renderAlerts() {
    const list = byId("alerts-list");
    byId("alerts").hidden = alerts.size === 0;
    fillWith(
      list,
      [...alerts.values()].map((alert) =>
        h(
          "li",
          { class: `alert alert-${alert.severity}`, dataset: { modelId: alert.model_id } },
          h("strong", {}, `${alert.model_id}: `),
          alert.message,
          h("span", { class: "cell-note" }, ` Recommended: ${fmt.words(alert.recommended_action)}.`),
          h(
            "button",
            { type: "button", dataset: { action: "repair" }, "aria-label": `Repair ${alert.model_id}`, onclick: () => act(alert.model_id, "repair") },
            "Repair",
          ),
          h(
            "button",
            {
              type: "button",
              class: "quiet",
              "aria-label": `Dismiss the alert about ${alert.model_id}`,
              onclick: () => {
                alerts.delete(alert.model_id);
                renderAlerts();
              },
            },
            "Dismiss",
          ),
        ),
      ),
    );
  }

  // --- live events -----------------------------------------------------------------

  function onEvent(event) {
    if (event.type === "model_download_progress") {
      const m = model(event.model_id);
      const before = m.download?.status;
      m.download = { ...(m.download || {}), ...event };
      renderRow(m);
      if (before !== event.status) refreshModelSoon(event.model_id);
    } else if (event.type === "model_availability_change") {
      const m = model(event.model_id);
      if (m.status) m.status = { ...m.status, availability_status: event.new_status };
      renderRow(m);
      refreshModelSoon(event.model_id);
    } else if (event.type === "model_health_alert") {
      alerts.set(event.model_id, event);
      renderAlerts();
      ctx.alert(`Health alert for ${event.model_id}: ${event.message}`);
      refreshModelSoon(event.model_id);
    }
  }

  return { refresh, onEvent, models };
}
