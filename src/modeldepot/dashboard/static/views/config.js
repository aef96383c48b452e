// The runtime configuration as a form: GET /config/current fills it, the OpenAPI
// document's ConfigUpdate schema gives each field its type, label and help, and saving
// sends only what changed (PUT /config/update). A 422 puts each of details.errors[]
// beside its field.

import { get, put, request } from "../api.js";
import { byId, h, put as fillWith } from "../dom.js";
import * as fmt from "../format.js";

const SECTIONS = ["storage", "downloads", "features", "health_monitoring", "rate_limits"];

const UNITS = [
  [/_per_minute$/, " per minute"],
  [/_gb$/, " (GB)"],
  [/_mbps$/, " (MB/s)"],
  [/_percent$/, " (%)"],
  [/_hours$/, " (hours)"],
  [/_minutes$/, " (minutes)"],
];

/** "max_storage_gb" -> "Max storage (GB)". */
function labelFor(key) {
  for (const [pattern, unit] of UNITS) if (pattern.test(key)) return fmt.words(key.replace(pattern, "")) + unit;
  return fmt.words(key);
}

export function createConfigView(ctx) {
  const form = byId("config-form");
  let current = null;
  let schemas = null;
  let edited = false; // the person's edits survive a refetch (a reconnection, say)

  async function loadSchemas() {
    try {
      const document = await request("GET", "/openapi.json");
      const components = document.components.schemas;
      const resolve = (node) => (node?.$ref ? components[node.$ref.split("/").pop()] : node);
      const update = components.ConfigUpdate;
      return Object.fromEntries(SECTIONS.map((name) => [name, resolve(update.properties[name])?.properties || {}]));
    } catch {
      return {}; // no labels or help: the fields still work, typed by their values
    }
  }

  async function refresh() {
    if (!schemas) schemas = await loadSchemas();
    const fresh = await get("/config/current");
    if (edited && current) return;
    current = fresh;
    render();
  }

  function kindOf(value, schema) {
    if (schema?.type === "boolean" || typeof value === "boolean") return "boolean";
    if (schema?.type === "integer") return "integer";
    if (schema?.type === "number" || typeof value === "number") return "number";
    return "string";
  }

  function field(section, key, value) {
    const schema = schemas?.[section]?.[key];
    const name = `${section}.${key}`;
    const id = `config-${section}-${key}`;
    const kind = kindOf(value, schema);
    const help = schema?.description ? h("p", { class: "help", id: `${id}-help` }, schema.description) : null;
    const describedBy = help ? `${id}-help` : undefined;
    const label = labelFor(key);
    if (kind === "boolean") {
      return h(
        "div",
        { class: "field field-check" },
        h("input", { type: "checkbox", id, name, checked: value, "aria-describedby": describedBy, dataset: { kind } }),
        h("label", { for: id }, label),
        help,
      );
    }
    const attrs = { id, name, value: value ?? "", "aria-describedby": describedBy, dataset: { kind } };
    if (kind === "string") Object.assign(attrs, { type: "text", spellcheck: "false" });
    else Object.assign(attrs, { type: "number", step: kind === "integer" ? "1" : "any", inputmode: "decimal" });
    return h("div", { class: "field" }, h("label", { for: id }, label), h("input", attrs), help);
  }

  function render() {
    const setAside = current.set_aside;
    fillWith(
      byId("config-set-aside"),
      setAside
        ? h(
            "p",
            { class: "warning" },
            `The saved configuration ${setAside.file} no longer validated at start-up and was set aside`,
            setAside.moved_to ? ` (moved to ${setAside.moved_to})` : "",
            ": the service runs on the defaults. Fix the values below and save them again.",
          )
        : null,
    );
    fillWith(
      byId("config-fields"),
      SECTIONS.filter((section) => current[section]).map((section) =>
        h(
          "fieldset",
          {},
          h("legend", {}, fmt.words(section)),
          Object.entries(current[section]).map(([key, value]) => field(section, key, value)),
        ),
      ),
    );
  }

  function clearErrors() {
    for (const old of form.querySelectorAll(".field-error")) old.remove();
    for (const input of form.querySelectorAll("[aria-invalid]")) {
      input.removeAttribute("aria-invalid");
      const ids = (input.getAttribute("aria-describedby") || "").split(" ").filter((id) => !id.endsWith("-error"));
      if (ids.length) input.setAttribute("aria-describedby", ids.join(" "));
      else input.removeAttribute("aria-describedby");
    }
    fillWith(byId("config-errors"));
  }

  function showError(name, message) {
    const input = form.elements.namedItem(name);
    if (!(input instanceof HTMLElement)) {
      byId("config-errors").append(h("li", {}, `${name}: ${message}`));
      return null;
    }
    const id = `${input.id}-error`;
    input.closest(".field").append(h("p", { class: "field-error", id }, message));
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", [input.getAttribute("aria-describedby"), id].filter(Boolean).join(" "));
    return input;
  }

  /** The changed values as a partial update, and the fields the browser could not read. */
  function changes() {
    const update = {};
    const problems = [];
    for (const input of form.querySelectorAll("[data-kind]")) {
      const [section, key] = input.name.split(".");
      const old = current[section][key];
      let value;
      if (input.dataset.kind === "boolean") value = input.checked;
      else if (input.dataset.kind === "string") value = input.value;
      else if (input.value.trim() === "" || input.validity.badInput) {
        problems.push([input.name, "Enter a number"]);
        continue;
      } else value = Number(input.value);
      if (value !== old) (update[section] ||= {})[key] = value;
    }
    return { update, problems };
  }

  async function save(event) {
    event.preventDefault();
    clearErrors();
    const { update, problems } = changes();
    if (problems.length) {
      problems.map(([name, message]) => showError(name, message))[0]?.focus();
      ctx.fail(new Error("Some values are not numbers: see the fields marked"));
      return;
    }
    if (!Object.keys(update).length) {
      ctx.notify("Nothing changed");
      return;
    }
    try {
      const result = await put("/config/update", update);
      const pending = result.pending_restart.length ? `; after a restart: ${result.pending_restart.join(", ")}` : "";
      ctx.notify(`Saved: ${result.updated_settings.join(", ") || "no value changed"}${pending}`);
      edited = false;
      await refresh();
    } catch (error) {
      const invalid = error.fieldErrors.map(({ field: name, message }) => showError(name, message)).filter(Boolean);
      invalid[0]?.focus();
      ctx.fail(error);
    }
  }

  form.addEventListener("submit", save);
  form.addEventListener("input", () => {
    edited = true;
  });
  form.addEventListener("reset", (event) => {
    event.preventDefault();
    edited = false;
    clearErrors();
    refresh().catch((error) => ctx.fail(error));
  });
  return { refresh };
}
