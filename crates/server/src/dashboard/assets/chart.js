// A line chart on a canvas: several named series over the same time window, y from 0 to
// a rounded maximum, a legend. Redrawn whole on each sample (a few hundred points).

// The x axis spans the samples so far, at least this long, at most the window.
const MIN_SPAN_MS = 60 * 1000;

const COLORS = ["#2a6fdb", "#e07b00", "#2e7d32", "#8e24aa", "#c62828", "#00838f"];

export class LineChart {
  constructor(canvas, windowSeconds) {
    this.canvas = canvas;
    this.windowMs = windowSeconds * 1000;
    this.series = new Map(); // name -> [[timeMs, value]]
  }

  // Adds one point per series at `time` (ms); a series missing from `values` gets none.
  add(time, values) {
    for (const [name, value] of Object.entries(values)) {
      if (value === null || !Number.isFinite(value)) continue;
      if (!this.series.has(name)) this.series.set(name, []);
      this.series.get(name).push([time, value]);
    }
    for (const points of this.series.values()) {
      while (points.length && points[0][0] < time - this.windowMs) points.shift();
    }
    this.now = time;
    // How many points are drawn, for a look from outside (the tests).
    this.canvas.dataset.points = Math.max(0, ...[...this.series.values()].map((p) => p.length));
    this.draw();
  }

  clear() {
    this.series.clear();
    this.canvas.dataset.points = 0;
    this.draw();
  }

  draw() {
    const c = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = c.clientWidth || c.width;
    const height = c.clientHeight || c.height;
    c.width = width * ratio;
    c.height = height * ratio;
    const g = c.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const pad = { left: 48, right: 8, top: 8, bottom: 20 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    let max = 0;
    for (const points of this.series.values()) for (const [, v] of points) max = Math.max(max, v);
    const top = niceCeiling(max);
    const end = this.now || Date.now();
    let first = end;
    for (const points of this.series.values()) if (points.length) first = Math.min(first, points[0][0]);
    const span = Math.min(this.windowMs, Math.max(MIN_SPAN_MS, end - first));
    const x = (t) => pad.left + plotW * (1 - (end - t) / span);
    const y = (v) => pad.top + plotH * (1 - v / top);

    g.font = "11px system-ui, sans-serif";
    g.strokeStyle = "#e3e7ee";
    g.fillStyle = "#6b7585";
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const v = (top * i) / 4;
      g.beginPath();
      g.moveTo(pad.left, y(v));
      g.lineTo(pad.left + plotW, y(v));
      g.stroke();
      g.textAlign = "right";
      g.fillText(formatTick(v), pad.left - 4, y(v) + 4);
    }
    g.textAlign = "left";
    g.fillText(span >= 120000 ? "-" + Math.round(span / 60000) + " min" : "-" + Math.round(span / 1000) + " s", pad.left, height - 5);
    g.textAlign = "right";
    g.fillText("now", pad.left + plotW, height - 5);

    let legendX = pad.left + 6;
    let colour = 0;
    for (const [name, points] of this.series) {
      const stroke = COLORS[colour++ % COLORS.length];
      g.strokeStyle = stroke;
      g.lineWidth = 1.6;
      g.beginPath();
      points.forEach(([t, v], i) => (i ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
      g.stroke();
      g.fillStyle = stroke;
      if (points.length === 1) g.fillRect(x(points[0][0]) - 2, y(points[0][1]) - 2, 4, 4);
      g.textAlign = "left";
      g.fillRect(legendX, pad.top + 4, 10, 3);
      g.fillText(name, legendX + 14, pad.top + 9);
      legendX += g.measureText(name).width + 30;
    }
    if (!this.series.size) {
      g.fillStyle = "#6b7585";
      g.textAlign = "center";
      g.fillText("no samples yet", pad.left + plotW / 2, pad.top + plotH / 2);
    }
  }
}

// 1, 2 or 5 times a power of ten, at least `max` (and at least 1 so an idle chart has an axis).
function niceCeiling(max) {
  if (max <= 0) return 1;
  const power = Math.pow(10, Math.floor(Math.log10(max)));
  for (const step of [1, 2, 5, 10]) if (step * power >= max) return step * power;
  return 10 * power;
}

function formatTick(v) {
  if (v === 0) return "0";
  if (v >= 1000) return (v / 1000).toFixed(v % 1000 ? 1 : 0) + "k";
  return Number(v.toPrecision(3)).toString();
}
