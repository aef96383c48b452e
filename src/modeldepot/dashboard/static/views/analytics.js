// Usage: generations per day (stacked by model) and the average generation time per day,
// from /models/analytics; trends and scores from /models/analytics/performance.

import { get } from "../api.js";
import { lines, seriesClass, stackedBars } from "../charts.js";
import { byId, h, put as fillWith, table } from "../dom.js";
import * as fmt from "../format.js";

export function createAnalyticsView() {
  const period = byId("analytics-period");

  async function refresh() {
    const [usage, performance] = await Promise.all([
      get(`/models/analytics?period=${encodeURIComponent(period.value)}`),
      get("/models/analytics/performance"),
    ]);
    const models = Object.values(usage.models);
    const labels = (models[0]?.last_30_days_usage || []).map((day) => day.date.slice(5));
    const used = models.filter((m) => m.total_uses > 0);
    renderSummary(usage);
    renderCharts(labels, used.length ? used : models);
    renderTable(models, performance.performance_trends);
  }

  function renderSummary(usage) {
    const summary = usage.summary;
    fillWith(
      byId("analytics-summary"),
      `${usage.range.start_date} to ${usage.range.end_date} (${usage.range.days} days, UTC): `,
      `${summary.total_generations} generations with ${summary.total_models_used} model(s)`,
      summary.most_used_model ? `; most used: ${summary.most_used_model}` : "",
      summary.average_success_rate !== null ? `; success rate ${fmt.score(summary.average_success_rate)}` : "",
      ".",
    );
  }

  function legend(models) {
    return h(
      "ul",
      { class: "legend" },
      models.map((m, i) => h("li", {}, h("span", { class: `swatch ${seriesClass(i)}`, "aria-hidden": "true" }), m.model_id)),
    );
  }

  function renderCharts(labels, models) {
    const uses = models.map((m) => ({ name: m.model_id, values: m.last_30_days_usage.map((d) => d.uses) }));
    const times = models.map((m) => ({ name: m.model_id, values: m.last_30_days_usage.map((d) => d.avg_time) }));
    fillWith(
      byId("analytics-uses"),
      stackedBars({ title: "Generations per day, stacked by model", labels, series: uses, format: (v) => String(Math.round(v)) }),
      legend(models),
    );
    fillWith(
      byId("analytics-times"),
      lines({ title: "Average generation time per day, seconds", labels, series: times, format: fmt.seconds }),
      legend(models),
    );
    const days = models[0]?.last_30_days_usage.map((day) => day.date) || [];
    fillWith(
      byId("analytics-days"),
      h("summary", {}, "The charts' numbers as a table"),
      table(
        null,
        [{ label: "Day" }, ...models.map((m) => ({ label: `${m.model_id}: uses, avg time`, className: "num" }))],
        days.map((date, i) => [
          date,
          ...models.map((m) => `${m.last_30_days_usage[i].uses}, ${fmt.seconds(m.last_30_days_usage[i].avg_time)}`),
        ]),
      ),
    );
  }

  function renderTable(models, trends) {
    fillWith(
      byId("analytics-table"),
      table(
        null,
        [
          { label: "Model" },
          { label: "Uses", className: "num" },
          { label: "Per day", className: "num" },
          { label: "Avg time", className: "num" },
          { label: "Success", className: "num" },
          { label: "Trend" },
          { label: "7 / 30 days avg", className: "num" },
          { label: "Score", className: "num" },
          { label: "Last used" },
        ],
        models.map((m) => {
          const trend = trends[m.model_id] || {};
          return [
            m.model_id,
            String(m.total_uses),
            m.uses_per_day.toFixed(2),
            fmt.seconds(m.average_generation_time),
            fmt.score(m.success_rate),
            fmt.words(trend.trend),
            `${fmt.seconds(trend.last_7_days_avg)} / ${fmt.seconds(trend.last_30_days_avg)}`,
            fmt.score(trend.current_score),
            fmt.ago(m.last_used),
          ];
        }),
      ),
    );
  }

  return { refresh, period };
}
