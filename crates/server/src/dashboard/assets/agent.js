// The Agent view: the members a `musubi agent` knows, from `/v1/members` on its
// -http-addr (CORS; the same document `serf members -format json` prints). The agent's
// address is typed once and kept in the page's query string (`?agent=host:port`), so a
// bookmark or a reload keeps it; the store knows nothing of the agent.

import { getJSON, el } from "./api.js";

const PERIOD_MS = 2000;
const PARAM = "agent";

export class AgentView {
  constructor(root) {
    this.form = root.querySelector("#agent-form");
    this.table = root.querySelector("#agent-table");
    this.body = this.table.querySelector("tbody");
    this.updated = root.querySelector("#agent-updated");
    this.address = new URLSearchParams(location.search).get(PARAM) || "";
    this.form.elements.address.value = this.address;
    // Answers can overtake each other (a slow agent times out after a period): only the
    // newest request's answer is shown.
    this.asked = 0;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.use(this.form.elements.address.value.trim());
    });
  }

  start() {
    this.refresh();
    setInterval(() => this.refresh(), PERIOD_MS);
  }

  // A new address: into the URL (keeping the other parameters and the #tab), then asked.
  use(address) {
    this.address = address;
    const url = new URL(location.href);
    if (address) url.searchParams.set(PARAM, address);
    else url.searchParams.delete(PARAM);
    history.replaceState(null, "", url);
    this.body.replaceChildren();
    this.refresh();
  }

  async refresh() {
    const ask = ++this.asked;
    if (!this.address) {
      this.table.classList.remove("stale");
      this.updated.textContent = "no agent: type the address of its -http-addr";
      this.updated.className = "muted small";
      return;
    }
    const base = /^https?:\/\//.test(this.address) ? this.address.replace(/\/+$/, "") : "http://" + this.address;
    let doc;
    try {
      doc = await getJSON(base, "/v1/members");
    } catch (e) {
      if (ask !== this.asked) return;
      this.updated.textContent = "cannot list the agent's members at " + base + ": " + e.message;
      this.updated.className = "error";
      // The last answer's rows stay, greyed: what was known, not what is.
      this.table.classList.add("stale");
      return;
    }
    if (ask !== this.asked) return;
    this.table.classList.remove("stale");
    const list = (doc.members || []).sort((a, b) => a.name.localeCompare(b.name));
    this.render(list);
    const counts = {};
    for (const m of list) counts[m.status] = (counts[m.status] || 0) + 1;
    const summary = Object.entries(counts).map(([status, n]) => n + " " + status).join(", ");
    this.updated.textContent = list.length + " members (" + summary + ") · updated " + new Date().toLocaleTimeString();
    this.updated.className = "muted small";
  }

  render(list) {
    const rows = list.map((m) => {
      const tags = Object.entries(m.tags || {}).map(([k, v]) => k + "=" + v).join(", ");
      const p = m.protocol || {};
      return el(
        "tr",
        { class: "agent-" + m.status, "data-name": m.name, "data-status": m.status },
        el("td", {}, m.name),
        el("td", {}, el("code", {}, m.addr)),
        el("td", {}, el("span", { class: "badge " + m.status }, m.status)),
        el("td", { class: "tags" }, tags),
        el("td", { title: "speaks " + p.version + "; understands " + p.min + " to " + p.max }, p.version + " [" + p.min + ", " + p.max + "]")
      );
    });
    if (!rows.length) rows.push(el("tr", {}, el("td", { colSpan: 5, class: "muted" }, "no members")));
    this.body.replaceChildren(...rows);
  }
}
