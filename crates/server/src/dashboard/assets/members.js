// The Members view: the cluster's members from /v2/members, each asked directly (through
// its first client URL, CORS) for its health, Raft state and v3 Status; a member that does
// not answer is shown as down.

import { call, getJSON, v3, hexId, humanBytes, el } from "./api.js";

const PERIOD_MS = 2000;

export class MembersView {
  constructor(root) {
    this.body = root.querySelector("#members-table tbody");
    this.followers = root.querySelector("#followers-table tbody");
    this.updated = root.querySelector("#members-updated");
    this.list = [];
    this.selfId = null;
    this.listeners = [];
  }

  start() {
    this.refresh();
    setInterval(() => this.refresh(), PERIOD_MS);
  }

  // Called after each refresh (the header shows this member's name).
  onUpdate(f) {
    this.listeners.push(f);
  }

  nameOf(id) {
    const m = this.list.find((m) => m.id === id);
    return m && m.name ? m.name : id;
  }

  async refresh() {
    try {
      const [members, self] = await Promise.all([getJSON("", "/v2/members"), getJSON("", "/v2/stats/self")]);
      this.list = (members.members || []).sort((a, b) => (a.name || "~").localeCompare(b.name || "~"));
      this.selfId = self.id;
    } catch (e) {
      this.updated.textContent = "cannot list members: " + e.message;
      return;
    }
    const states = await Promise.all(this.list.map((m) => this.probe(m)));
    this.render(states);
    const leader = states.find((s) => s.role === "leader");
    this.renderFollowers(leader);
    this.updated.textContent = "updated " + new Date().toLocaleTimeString();
    for (const f of this.listeners) f(this);
  }

  // What one member says about itself, each question asked independently.
  async probe(member) {
    const base = member.id === this.selfId ? "" : (member.clientURLs || [])[0];
    const state = { member, base, role: "unknown" };
    if (base === undefined) {
      state.role = "unstarted";
      return state;
    }
    const [health, self, status] = await Promise.allSettled([
      call(base, "/health").then(async (r) => ({ ok: r.ok, body: await r.json() })),
      getJSON(base, "/v2/stats/self"),
      v3(base, "maintenance/status"),
    ]);
    if ([health, self, status].every((r) => r.status === "rejected" && r.reason.status === 0)) {
      state.role = "down";
      state.why = health.reason.message;
      return state;
    }
    if (health.status === "fulfilled") {
      state.healthy = health.value.ok && String(health.value.body.health) === "true";
      state.healthWhy = health.value.body.reason || "";
    }
    if (status.status === "fulfilled") state.status = status.value;
    if (member.isLearner) state.role = "learner";
    else if (self.status === "fulfilled") state.role = self.value.state === "StateLeader" ? "leader" : "follower";
    if (state.status && hexId(state.status.leader) === member.id) state.role = "leader";
    return state;
  }

  render(states) {
    const rows = states.map((s) => {
      const m = s.member;
      const st = s.status || {};
      const health =
        s.healthy === undefined
          ? el("span", { class: "muted" }, "?")
          : el("span", { class: "badge " + (s.healthy ? "healthy" : "unhealthy"), title: s.healthWhy }, s.healthy ? "healthy" : "unhealthy");
      return el(
        "tr",
        { class: s.role === "down" ? "down" : "", "data-name": m.name, "data-state": s.role },
        el("td", {}, m.name || el("em", { class: "muted" }, "(not started)")),
        el("td", {}, el("code", {}, m.id)),
        el("td", {}, el("span", { class: "badge " + s.role, title: s.why || "" }, s.role), s.why ? el("span", { class: "muted small" }, " " + s.why) : null),
        el("td", {}, s.role === "down" ? "" : health),
        el("td", {}, st.raftTerm || ""),
        el("td", {}, st.raftIndex || ""),
        el("td", {}, (st.header && st.header.revision) || ""),
        el("td", {}, st.dbSize ? humanBytes(st.dbSize) : ""),
        el("td", {}, st.version || ""),
        el("td", { class: "urls" }, (m.peerURLs || []).join(", ")),
        el("td", { class: "urls" }, (m.clientURLs || []).join(", "))
      );
    });
    this.body.replaceChildren(...rows);
  }

  async renderFollowers(leader) {
    let stats = null;
    if (leader) stats = await getJSON(leader.base, "/v2/stats/leader").catch(() => null);
    const ms = (v) => (v === undefined ? "" : v.toFixed(2) + " ms");
    const rows = Object.entries((stats && stats.followers) || {}).map(([id, f]) =>
      el(
        "tr",
        {},
        el("td", {}, this.nameOf(id), " ", el("code", { class: "muted small" }, id)),
        el("td", {}, ms(f.latency.current)),
        el("td", {}, ms(f.latency.average)),
        el("td", {}, ms(f.latency.maximum)),
        el("td", {}, String(f.counts.success)),
        el("td", {}, String(f.counts.fail))
      )
    );
    if (!rows.length) rows.push(el("tr", {}, el("td", { colSpan: 6, class: "muted" }, leader ? "no followers" : "no leader")));
    this.followers.replaceChildren(...rows);
  }
}
