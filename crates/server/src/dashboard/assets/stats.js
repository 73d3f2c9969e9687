// The Stats view: one member's /metrics scraped every second, turned into rates and
// average latencies between two scrapes, and drawn.

import { call, getJSON, el } from "./api.js";
import { LineChart } from "./chart.js";
import { parse, total, histograms } from "./prom.js";

const PERIOD_MS = 1000;
const WINDOW_S = 300;

export class StatsView {
  constructor(root, members) {
    this.members = members; // the Members view: names members and knows this one's ID
    this.select = root.querySelector("#stats-member");
    this.error = root.querySelector("#stats-error");
    const chart = (id) => new LineChart(root.querySelector("#chart-" + id), WINDOW_S);
    this.charts = { writes: chart("writes"), reads: chart("reads"), fsync: chart("fsync"), peers: chart("peers") };
    this.nows = {};
    for (const id of Object.keys(this.charts)) this.nows[id] = root.querySelector("#now-" + id);
    this.select.addEventListener("change", () => this.restart());
    this.prev = null;
    this.base = "";
  }

  // Starts sampling; the charts keep filling while other views are shown.
  start() {
    if (this.timer) return;
    this.sample();
    this.timer = setInterval(() => this.sample(), PERIOD_MS);
  }

  shown() {
    this.fillSelect();
    for (const c of Object.values(this.charts)) c.draw();
  }

  fillSelect() {
    const known = new Set([...this.select.options].map((o) => o.value));
    for (const m of this.members.list) {
      const value = m.id === this.members.selfId ? "" : (m.clientURLs || [])[0];
      if (value === undefined || known.has(value)) continue;
      this.select.append(el("option", { value }, m.name || m.id));
    }
    this.select.value = this.base;
  }

  restart() {
    this.base = this.select.value;
    this.prev = null;
    for (const c of Object.values(this.charts)) c.clear();
  }

  async sample() {
    const base = this.base;
    let now;
    try {
      const [metrics, store] = await Promise.all([
        call(base, "/metrics").then((r) => r.text()),
        getJSON(base, "/v2/stats/store").catch(() => null),
      ]);
      now = { time: Date.now(), samples: parse(metrics), store };
    } catch (e) {
      this.error.textContent = (base || "this member") + ": " + e.message;
      this.prev = null;
      return;
    }
    if (base !== this.base) return; // another member was chosen meanwhile
    this.error.textContent = "";
    if (this.prev) this.plot(this.prev, now);
    this.prev = now;
  }

  plot(a, b) {
    const seconds = (b.time - a.time) / 1000;
    const rate = (name, filter) => {
      const x = total(a.samples, name, filter);
      const y = total(b.samples, name, filter);
      return x === null || y === null ? null : Math.max(0, y - x) / seconds;
    };
    const v2Gets = (s) => (s ? s.getsSuccess + s.getsFail : null);
    const gets = a.store && b.store ? Math.max(0, v2Gets(b.store) - v2Gets(a.store)) / seconds : null;
    this.show("writes", b.time, {
      "Raft proposals": rate("etcd_server_proposals_committed_total"),
      "keyspace revisions": rate("etcd_debugging_mvcc_current_revision"),
    });
    this.show("reads", b.time, {
      "gRPC Range": rate("grpc_server_handled_total", { grpc_method: "Range" }) || 0,
      "v2 GET": gets,
    });
    this.show("fsync", b.time, averages(a.samples, b.samples, "etcd_disk_wal_fsync_duration_seconds", null, () => "fsync"));
    const name = (id) => this.members.nameOf(id);
    this.show("peers", b.time, averages(a.samples, b.samples, "etcd_network_peer_round_trip_time_seconds", "To", name));
  }

  show(id, time, values) {
    this.charts[id].add(time, values);
    const parts = Object.entries(values)
      .filter(([, v]) => v !== null && Number.isFinite(v))
      .map(([k, v]) => k + " " + (Math.round(v * 100) / 100));
    this.nows[id].textContent = parts.join(" · ");
  }
}

// The mean of a histogram's observations between two scrapes, in ms, per `by` label.
function averages(a, b, name, by, label) {
  const before = histograms(a, name, by);
  const after = histograms(b, name, by);
  const out = {};
  for (const [key, h] of Object.entries(after)) {
    const prev = before[key] || { sum: 0, count: 0 };
    const n = h.count - prev.count;
    if (n > 0) out[label(key)] = ((h.sum - prev.sum) / n) * 1000;
  }
  return out;
}
