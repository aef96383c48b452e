// Asking for an API key when the service requires one (401 UNAUTHORIZED). The key is kept
// in sessionStorage: it lasts while this tab is open and is never written to disk.

import { byId } from "./dom.js";

let pending = null;

/** Open the key dialog (once, however many requests are waiting) and resolve to the key. */
export function requestKey(reason) {
  if (pending) return pending;
  const dialog = byId("key-dialog");
  const form = byId("key-form");
  const input = byId("key-input");
  byId("key-reason").textContent = reason;
  input.value = "";
  pending = new Promise((resolve, reject) => {
    const finish = (key) => {
      form.removeEventListener("submit", submitted);
      dialog.removeEventListener("close", closed);
      pending = null;
      if (key) resolve(key);
      else reject(new Error("No API key given: the service refuses requests without one"));
    };
    const submitted = (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) {
        input.setAttribute("aria-invalid", "true");
        input.focus();
        return;
      }
      input.removeAttribute("aria-invalid");
      finish(key);
      dialog.close("ok");
    };
    const closed = () => {
      if (pending) finish(null);
    };
    form.addEventListener("submit", submitted);
    dialog.addEventListener("close", closed);
  });
  dialog.showModal();
  input.focus();
  return pending;
}
