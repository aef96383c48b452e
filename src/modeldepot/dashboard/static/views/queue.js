// The download queue (running first, then in the order they will run) and the wait
// queue of generation requests held until their model is available.

import { allPages, del } from "../api.js";
import { byId, h, put as fillWith, table } from "../dom.js";
import * as fmt from "../format.js";

const OPEN = new Set(["WAITING", "READY"]);
const MAX_SUGGESTIONS = 10;

export function createQueueView(ctx) {
  const suggestions = [];

  async function refresh() {
    const [downloads, waiting] = await Promise.all([
      allPages("/models/download/active", "active_downloads"),
      allPages("/models/fallback/queue?sort=created_at&order=desc", "data"),
    ]);
    renderDownloads(downloads.items, downloads.answer);
    renderWaiting(waiting.items);
  }

  function renderDownloads(items, answer) {
    fillWith(
      byId("queue-downloads"),
      items.length
        ? [
            h("p", {}, `${answer.total_active} active, ${fmt.speed(answer.total_bandwidth_usage_mbps)} in all.`),
            table(
              null,
              [
                { label: "#", className: "num" },
                { label: "Model" },
                { label: "Status" },
                { label: "Priority" },
                { label: "Progress", className: "num" },
                { label: "Speed", className: "num" },
                { label: "ETA", className: "num" },
              ],
              items.map((d, i) => [
                String(i + 1),
                d.model_id,
                fmt.words(d.status),
                fmt.words(d.priority),
                fmt.percent(d.progress_percent),
                fmt.speed(d.speed_mbps),
                fmt.duration(d.eta_seconds),
              ]),
            ),
          ]
        : h("p", {}, "No download is running or queued."),
    );
  }

  function renderWaiting(entries) {
    fillWith(
      byId("queue-waiting"),
      entries.length
        ? table(
            null,
            [
              { label: "Entry" },
              { label: "Model" },
              { label: "Status" },
              { label: "Priority" },
              { label: "Position", className: "num" },
              { label: "Estimated wait", className: "num" },
              { label: "Queued" },
              { label: "Expires" },
              { label: "" },
            ],
            entries.map((e) => [
              h("code", {}, e.queue_id),
              e.model_id,
              h("span", { class: "badge badge-queue", dataset: { value: e.status } }, fmt.words(e.status)),
              fmt.words(e.priority),
              e.position ?? "—",
              e.estimated_wait_time_minutes === null ? "—" : fmt.duration(e.estimated_wait_time_minutes * 60),
              fmt.ago(e.created_at),
              e.status === "READY" ? fmt.ago(e.claim_until) : e.status === "WAITING" ? fmt.ago(e.wait_until) : e.reason || "—",
              OPEN.has(e.status)
                ? h("button", { type: "button", "aria-label": `Withdraw ${e.queue_id}`, onclick: () => withdraw(e.queue_id) }, "Withdraw")
                : "",
            ]),
          )
        : h("p", {}, "No generation request is waiting for a model."),
    );
  }

  async function withdraw(queueId) {
    try {
      await del(`/models/fallback/queue/${encodeURIComponent(queueId)}`);
      ctx.notify(`${queueId} withdrawn`);
      await refresh();
    } catch (error) {
      ctx.fail(error);
    }
  }

  function onSuggestion(event) {
    suggestions.unshift(event);
    suggestions.length = Math.min(suggestions.length, MAX_SUGGESTIONS);
    fillWith(
      byId("queue-suggestions"),
      h(
        "ul",
        {},
        suggestions.map((s) =>
          h(
            "li",
            {},
            `${fmt.ago(s.timestamp)}: use ${s.suggested_model} instead of ${s.requested_model} `,
            `(compatibility ${fmt.score(s.compatibility_score)}${s.user_action_required ? ", needs your action" : ""})`,
          ),
        ),
      ),
    );
  }

  return { refresh, onSuggestion };
}
