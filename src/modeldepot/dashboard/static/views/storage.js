// Where the space goes: the capacity with the quota and the clean-up threshold, each
// model's size, the clean-up candidates, and a clean-up that is previewed (dry run)
// before anything is removed.

import { allPages, get, post } from "../api.js";
import { capacityBar, horizontalBars, seriesClass } from "../charts.js";
import { byId, h, put as fillWith, table } from "../dom.js";
import * as fmt from "../format.js";

export function createStorageView(ctx) {
  let installed = [];
  let lastPreview = null;

  async function refresh() {
    const [storage, recommendations, config] = await Promise.all([
      allPages("/models/storage", "models_storage"),
      get("/models/analytics/cleanup"),
      get("/config/current"),
    ]);
    installed = storage.items;
    const answer = storage.answer;
    renderCapacity(answer.storage_summary, answer.unmanaged_repositories, config.storage);
    renderModels(storage.items, answer.cleanup_suggestions);
    renderCandidates(recommendations);
    renderChoices();
  }

  function renderCapacity(summary, unmanaged, storageConfig) {
    const total = summary.total_capacity_bytes;
    const segments = installed
      .slice()
      .sort((a, b) => b.size_bytes - a.size_bytes)
      .map((m, i) => ({ name: m.model_id, value: m.size_bytes, className: seriesClass(i) }));
    const foreign = unmanaged.reduce((sum, repo) => sum + repo.size_bytes, 0);
    if (foreign) segments.push({ name: "Other repositories", value: foreign, className: "unmanaged" });
    const markers = [];
    if (summary.quota_gb) markers.push({ at: summary.quota_gb * 1e9, label: `quota ${fmt.bytes(summary.quota_gb * 1e9)}`, className: "quota" });
    const threshold = storageConfig.cleanup_threshold_percent;
    markers.push({ at: (total * threshold) / 100, label: `clean-up at ${threshold} %`, className: "threshold" });
    fillWith(
      byId("storage-capacity"),
      h(
        "p",
        { class: "lead" },
        `${fmt.bytes(summary.used_space_bytes)} used of ${fmt.bytes(total)} (${fmt.percent(summary.usage_percent)}); `,
        `${fmt.bytes(summary.available_space_bytes)} left. `,
        summary.quota_gb ? `Quota ${fmt.bytes(summary.quota_gb * 1e9)}. ` : "No quota. ",
        `${fmt.bytes(summary.reserve_gb * 1e9)} kept free on the disk.`,
      ),
      capacityBar({
        title: `Space models may use: ${fmt.bytes(summary.used_space_bytes)} of ${fmt.bytes(total)} used`,
        total,
        segments,
        markers,
        format: fmt.bytes,
      }),
      h("p", { class: "cell-note" }, `Models directory: ${summary.models_directory}`),
    );
  }

  function renderModels(items, suggestions) {
    const candidates = new Set(suggestions.candidates);
    const sorted = items.slice().sort((a, b) => b.size_bytes - a.size_bytes);
    const target = byId("storage-models");
    if (!sorted.length) {
      fillWith(target, h("p", {}, "No model has files on disk yet."));
      return;
    }
    fillWith(
      target,
      horizontalBars({
        title: "Size of each installed model, largest first",
        items: sorted.map((m, i) => ({
          name: m.model_id,
          value: m.size_bytes,
          className: candidates.has(m.model_id) ? "candidate" : seriesClass(i),
          note: [m.pinned ? "pinned" : null, candidates.has(m.model_id) ? "clean-up candidate" : null, m.storage_tier]
            .filter(Boolean)
            .join(", "),
        })),
        format: fmt.bytes,
      }),
      h(
        "details",
        {},
        h("summary", {}, "The same as a table"),
        table(
          null,
          [{ label: "Model" }, { label: "Size", className: "num" }, { label: "Tier" }, { label: "Last used" }, { label: "Pinned" }],
          sorted.map((m) => [m.model_id, fmt.bytes(m.size_bytes), fmt.words(m.storage_tier), fmt.ago(m.last_accessed), m.pinned ? "yes" : "no"]),
        ),
      ),
    );
  }

  function renderCandidates(answer) {
    const target = byId("storage-candidates");
    if (!answer.recommendations.length) {
      fillWith(target, h("p", {}, "No model is a clean-up candidate: nothing installed is idle and unprotected."));
      return;
    }
    fillWith(
      target,
      h("p", {}, `Removing them all would free ${fmt.bytes(answer.potential_savings_bytes)}.`),
      table(
        null,
        [
          { label: "Model" },
          { label: "Why" },
          { label: "Size", className: "num" },
          { label: "Idle since" },
          { label: "Confidence", className: "num" },
          { label: "Advice" },
        ],
        answer.recommendations.map((r) => [
          r.model_id,
          r.reason,
          fmt.bytes(r.size_bytes),
          fmt.ago(r.idle_since),
          fmt.score(r.confidence),
          fmt.words(r.action),
        ]),
      ),
      answer.protected.length
        ? h("p", { class: "cell-note" }, `Protected: ${answer.protected.map((p) => `${p.model_id} (${p.reason})`).join("; ")}`)
        : null,
    );
  }

  // --- the clean-up form -----------------------------------------------------------

  function renderChoices() {
    const box = byId("cleanup-models");
    const checked = new Set([...box.querySelectorAll("input:checked")].map((input) => input.value));
    fillWith(
      box,
      installed.length
        ? installed.map((m) =>
            h(
              "label",
              { class: "check" },
              h("input", { type: "checkbox", name: "models_to_remove", value: m.model_id, checked: checked.has(m.model_id) }),
              ` ${m.model_id} (${fmt.bytes(m.size_bytes)})`,
            ),
          )
        : h("p", { class: "cell-note" }, "Nothing installed."),
    );
  }

  function requestFromForm(form, dryRun) {
    const data = new FormData(form);
    const type = data.get("cleanup_type");
    const body = { cleanup_type: type, dry_run: dryRun };
    if (type === "manual") {
      body.models_to_remove = data.getAll("models_to_remove");
    } else {
      const days = String(data.get("min_unused_days") || "").trim();
      if (days !== "") body.min_unused_days = Number(days);
      body.preserve_frequently_used = data.get("preserve_frequently_used") === "on";
    }
    return body;
  }

  function showFieldErrors(form, error) {
    for (const old of form.querySelectorAll(".field-error")) old.remove();
    for (const { field, message } of error?.fieldErrors || []) {
      const name = field.replace(/^body\./, "");
      const input = form.querySelector(`[name="${CSS.escape(name)}"]`);
      const place = input?.closest(".field") || byId("cleanup-status");
      place.append(h("p", { class: "field-error" }, `${fmt.words(name)}: ${message}`));
    }
  }

  async function submit(form, dryRun) {
    const body = requestFromForm(form, dryRun);
    if (!dryRun) {
      const what = lastPreview?.models_removed?.length ? lastPreview.models_removed.join(", ") : "the models the preview showed";
      if (!window.confirm(`Remove ${what}? This deletes their files.`)) return;
    }
    showFieldErrors(form, null);
    try {
      const result = await post("/models/cleanup", body);
      if (dryRun) lastPreview = result;
      renderResult(result);
      ctx.notify(
        dryRun
          ? `Preview: ${result.models_removed.length} model(s) would be removed, freeing ${fmt.bytes(result.space_freed_bytes)}`
          : `Clean-up removed ${result.models_removed.length} model(s) and freed ${fmt.bytes(result.space_freed_bytes)}`,
      );
      byId("cleanup-run").disabled = !dryRun || result.models_removed.length === 0;
      if (!dryRun) await refresh();
    } catch (error) {
      showFieldErrors(form, error);
      ctx.fail(error);
    }
  }

  function renderResult(result) {
    const decisions = result.decisions;
    fillWith(
      byId("cleanup-result"),
      h(
        "h3",
        {},
        result.dry_run
          ? `Preview: ${result.models_removed.length} would be removed, ${fmt.bytes(result.space_freed_bytes)} freed`
          : `Removed ${result.models_removed.length}, ${fmt.bytes(result.space_freed_bytes)} freed`,
      ),
      decisions.length
        ? table(
            null,
            [{ label: "Model" }, { label: "Outcome" }, { label: "Why" }, { label: "Size", className: "num" }],
            decisions.map((d) => [
              d.model_id,
              h("span", { class: "badge badge-outcome", dataset: { value: d.outcome } }, result.dry_run && d.outcome === "removed" ? "Would be removed" : fmt.words(d.outcome)),
              d.reason,
              fmt.bytes(d.size_bytes),
            ]),
            { class: "cleanup-decisions" },
          )
        : h("p", {}, "Nothing to decide: no model matched."),
    );
  }

  function wire() {
    const form = byId("cleanup-form");
    const syncType = () => {
      const manual = form.elements.cleanup_type.value === "manual";
      byId("cleanup-auto").hidden = manual;
      byId("cleanup-manual").hidden = !manual;
    };
    form.addEventListener("change", (event) => {
      if (event.target.name === "cleanup_type") syncType();
      byId("cleanup-run").disabled = true; // a changed request needs a new preview
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submit(form, true);
    });
    byId("cleanup-run").addEventListener("click", () => submit(form, false));
    syncType();
  }

  wire();
  return { refresh };
}
