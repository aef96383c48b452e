// How numbers, sizes, speeds and times read on the page. Sizes are in 10^3 steps, as the
// API counts them (size_mb is 10^6 bytes, *_gb 10^9).

const SIZE_UNITS = ["B", "kB", "MB", "GB", "TB", "PB"];

export function bytes(count) {
  if (count === null || count === undefined) return "—";
  let value = Number(count);
  let unit = 0;
  while (Math.abs(value) >= 1000 && unit < SIZE_UNITS.length - 1) {
    value /= 1000;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${SIZE_UNITS[unit]}`;
}

/** A speed given in MB/s (10^6 bytes a second). */
export function speed(mbps) {
  if (mbps === null || mbps === undefined) return "—";
  return `${bytes(mbps * 1e6)}/s`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const total = Math.max(0, Math.round(seconds));
  if (total < 60) return `${total} s`;
  const minutes = Math.floor(total / 60);
  if (minutes < 60) return `${minutes} min ${total % 60} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} days`;
}

export function percent(value, digits = 1) {
  if (value === null || value === undefined) return "—";
  return `${Number(value).toFixed(digits)} %`;
}

/** A 0..1 score as a percentage. */
export function score(value) {
  return value === null || value === undefined ? "—" : percent(value * 100, 0);
}

export function seconds(value) {
  if (value === null || value === undefined) return "—";
  return `${Number(value).toFixed(value >= 100 ? 0 : 1)} s`;
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const STEPS = [
  [60, "second"],
  [60, "minute"],
  [24, "hour"],
  [30, "day"],
  [12, "month"],
  [Infinity, "year"],
];

/** "3 minutes ago" for an ISO time; "never" for null. */
export function ago(iso, now = Date.now()) {
  if (!iso) return "never";
  let value = (Date.parse(iso) - now) / 1000;
  for (const [size, unit] of STEPS) {
    if (Math.abs(value) < size) return relative.format(Math.round(value), unit);
    value /= size;
  }
  return iso;
}

const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export function when(iso) {
  return iso ? absolute.format(new Date(iso)) : "—";
}

export function commit(sha) {
  return sha ? sha.slice(0, 7) : "—";
}

/** "DOWNLOADING" -> "Downloading", "safe_to_remove" -> "Safe to remove". */
export function words(code) {
  if (!code) return "—";
  const text = String(code).replaceAll("_", " ").toLowerCase();
  return text.charAt(0).toUpperCase() + text.slice(1);
}
