// The pieces of a key's detail pane, shared by the v2 and v3 views.

import { el } from "./api.js";

// A definition list of [label, value] pairs; empty values are left out.
export function meta(pairs) {
  return el("dl", { class: "meta" }, pairs.filter(([, v]) => v !== "" && v !== null && v !== undefined).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
}

export function field(label, input) {
  return el("div", { class: "field" }, el("label", {}, label), input);
}

// A line that shows the outcome of the last action.
export function statusLine() {
  const line = el("div", { class: "status" });
  line.ok = (text) => {
    line.className = "status muted";
    line.textContent = text;
  };
  line.fail = (e) => {
    line.className = "status error";
    line.textContent = e.message || String(e);
  };
  return line;
}

// Runs `action`, reporting failure on `status`; resolves to whether it succeeded.
export async function attempt(status, action) {
  try {
    await action();
    return true;
  } catch (e) {
    status.fail(e);
    return false;
  }
}

export function button(text, onclick, kind) {
  return el("button", { class: kind || "", onclick, type: "button" }, text);
}
