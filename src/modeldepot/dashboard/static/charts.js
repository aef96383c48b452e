// Small SVG charts drawn here (no library): stacked bars, lines, a capacity bar and
// horizontal bars. Colours come from the style sheet (classes series-0..7), sizes from
// the viewBox, so a chart scales with its container. Each chart is an image with a title
// for screen readers; the views put the same numbers in a table beside it.

import { s } from "./dom.js";

const WIDTH = 760;
const HEIGHT = 240;
const PAD = { top: 12, right: 12, bottom: 34, left: 56 };
const SERIES = 8;
let serial = 0;

export function seriesClass(index) {
  return `series-${index % SERIES}`;
}

/** The top of an axis of 4 steps of a round size; whole steps for counts. */
function axisMax(value, whole = false) {
  const raw = Math.max(value, whole ? 4 : 0) / 4;
  if (!(raw > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].find((m) => m * power >= raw) * power;
  return (whole ? Math.ceil(step) : step) * 4;
}

function frame(title, width = WIDTH, height = HEIGHT) {
  const id = `chart-title-${(serial += 1)}`;
  return s(
    "svg",
    // Drawn at its own size, shrunk (never enlarged) to fit: its text stays readable.
    { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-labelledby": id, class: "chart" },
    s("title", { id }, title),
  );
}

function yAxis(svg, max, format) {
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  for (let i = 0; i <= 4; i += 1) {
    const value = (max * i) / 4;
    const y = PAD.top + plotHeight - (plotHeight * i) / 4;
    svg.append(
      s("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y, class: i ? "grid" : "axis" }),
      s("text", { x: PAD.left - 6, y: y + 4, class: "tick", "text-anchor": "end" }, format(value)),
    );
  }
}

function xLabels(svg, labels, step, offset) {
  const every = Math.max(1, Math.ceil(labels.length / 10));
  labels.forEach((label, i) => {
    if (i % every !== 0 && i !== labels.length - 1) return;
    const x = PAD.left + offset + i * step;
    const anchor = x > WIDTH - PAD.right - 12 ? "end" : "middle";
    svg.append(s("text", { x, y: HEIGHT - PAD.bottom + 16, class: "tick", "text-anchor": anchor }, label));
  });
}

/** Bars per label, stacked by series: {labels, series: [{name, values}]} */
export function stackedBars({ title, labels, series, format = String }) {
  const svg = frame(title);
  const totals = labels.map((_, i) => series.reduce((sum, one) => sum + (one.values[i] || 0), 0));
  const max = axisMax(Math.max(0, ...totals), true);
  yAxis(svg, max, format);
  const plotWidth = WIDTH - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const step = plotWidth / Math.max(1, labels.length);
  const barWidth = Math.max(2, step * 0.7);
  labels.forEach((label, i) => {
    let base = PAD.top + plotHeight;
    series.forEach((one, k) => {
      const value = one.values[i] || 0;
      if (!value) return;
      const height = (plotHeight * value) / max;
      base -= height;
      svg.append(
        s(
          "rect",
          { x: PAD.left + i * step + (step - barWidth) / 2, y: base, width: barWidth, height, class: seriesClass(k) },
          s("title", {}, `${label} · ${one.name}: ${format(value)}`),
        ),
      );
    });
  });
  xLabels(svg, labels, step, step / 2);
  return svg;
}

/** One line per series over the labels; null values leave a gap. */
export function lines({ title, labels, series, format = String }) {
  const svg = frame(title);
  const values = series.flatMap((one) => one.values.filter((v) => v !== null && v !== undefined));
  const max = axisMax(Math.max(0, ...values));
  yAxis(svg, max, format);
  const plotWidth = WIDTH - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const step = labels.length > 1 ? plotWidth / (labels.length - 1) : 0;
  const at = (i, v) => [PAD.left + i * step, PAD.top + plotHeight - (plotHeight * v) / max];
  series.forEach((one, k) => {
    let path = "";
    let pen = false;
    one.values.forEach((v, i) => {
      if (v === null || v === undefined) {
        pen = false;
        return;
      }
      const [x, y] = at(i, v);
      path += `${pen ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)} `;
      pen = true;
      svg.append(
        s("circle", { cx: x, cy: y, r: 3, class: `point ${seriesClass(k)}` }, s("title", {}, `${labels[i]} · ${one.name}: ${format(v)}`)),
      );
    });
    if (path) svg.append(s("path", { d: path.trim(), class: `line ${seriesClass(k)}` }));
  });
  xLabels(svg, labels, step, 0);
  return svg;
}

/**
 * What fills the space models may use: segments [{name, value, className}] on a bar of
 * `total`, with markers [{at, label, className}] (the quota, the clean-up threshold).
 */
export function capacityBar({ title, total, segments, markers = [], format = String }) {
  const height = 92;
  const bar = { y: 24, height: 34 };
  const svg = frame(title, WIDTH, height);
  const left = 4;
  const width = WIDTH - 8;
  const scale = (v) => left + (width * Math.min(v, total)) / (total || 1);
  svg.append(
    s("rect", { x: left, y: bar.y, width, height: bar.height, class: "capacity-free" }, s("title", {}, `Capacity: ${format(total)}`)),
  );
  let x = left;
  for (const segment of segments) {
    const w = Math.max(segment.value > 0 ? 1 : 0, scale(segment.value) - left);
    svg.append(
      s("rect", { x, y: bar.y, width: w, height: bar.height, class: segment.className }, s("title", {}, `${segment.name}: ${format(segment.value)}`)),
    );
    x += w;
  }
  // Labels take turns below and above the bar, so two markers close together stay legible.
  markers.forEach((marker, i) => {
    const mx = scale(marker.at);
    const below = i % 2 === 0;
    const anchor = mx > WIDTH - 120 ? "end" : mx < 120 ? "start" : "middle";
    svg.append(
      s("line", { x1: mx, x2: mx, y1: bar.y - 8, y2: bar.y + bar.height + 8, class: `marker ${marker.className || ""}` }),
      s("text", { x: mx, y: below ? bar.y + bar.height + 22 : bar.y - 11, class: "tick", "text-anchor": anchor }, marker.label),
    );
  });
  return svg;
}

/** Horizontal bars [{name, value, className, note}] scaled to the largest. */
export function horizontalBars({ title, items, format = String }) {
  const row = 26;
  const labelWidth = 190;
  const height = Math.max(row, items.length * row) + 8;
  const svg = frame(title, WIDTH, height);
  const max = Math.max(1, ...items.map((item) => item.value));
  const room = WIDTH - labelWidth - 200;
  items.forEach((item, i) => {
    const y = 4 + i * row;
    const w = Math.max(item.value > 0 ? 2 : 0, (room * item.value) / max);
    svg.append(
      s("text", { x: labelWidth - 8, y: y + 16, class: "label", "text-anchor": "end" }, item.name),
      s("rect", { x: labelWidth, y: y + 3, width: w, height: row - 8, class: item.className || seriesClass(i) }, s("title", {}, `${item.name}: ${format(item.value)}`)),
      s("text", { x: labelWidth + w + 6, y: y + 16, class: "tick" }, `${format(item.value)}${item.note ? ` · ${item.note}` : ""}`),
    );
  });
  return svg;
}
