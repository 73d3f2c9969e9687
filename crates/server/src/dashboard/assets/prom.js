// Prometheus's text exposition format (0.0.4), read: the samples of one scrape.

// [{name, labels: {k: v}, value}] for every sample line; comments and blank lines skipped.
export function parse(text) {
  const samples = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const sample = parseLine(line);
    if (sample) samples.push(sample);
  }
  return samples;
}

function parseLine(line) {
  const nameEnd = line.search(/[{\s]/);
  if (nameEnd < 0) return null;
  const name = line.slice(0, nameEnd);
  let i = nameEnd;
  const labels = {};
  if (line[i] === "{") {
    i++;
    while (i < line.length && line[i] !== "}") {
      const eq = line.indexOf("=", i);
      const key = line.slice(i, eq).trim().replace(/^,/, "").trim();
      i = eq + 1;
      if (line[i] !== '"') return null;
      i++;
      let value = "";
      // Label values escape backslash, double quote and newline.
      while (i < line.length && line[i] !== '"') {
        if (line[i] === "\\") {
          i++;
          value += line[i] === "n" ? "\n" : line[i];
        } else {
          value += line[i];
        }
        i++;
      }
      labels[key] = value;
      i++;
      while (line[i] === "," || line[i] === " ") i++;
    }
    i++;
  }
  const [value] = line.slice(i).trim().split(/\s+/);
  return { name, labels, value: number(value) };
}

function number(text) {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  return Number(text);
}

function matches(sample, name, filter) {
  if (sample.name !== name) return false;
  return Object.entries(filter || {}).every(([k, v]) => sample.labels[k] === v);
}

// The sum of every series of `name` whose labels include `filter`; null if none exists.
export function total(samples, name, filter) {
  let sum = null;
  for (const s of samples) {
    if (matches(s, name, filter)) sum = (sum || 0) + s.value;
  }
  return sum;
}

// A histogram's `_sum` and `_count`, per value of `by` (a label), or under "" without it.
export function histograms(samples, name, by) {
  const out = {};
  for (const s of samples) {
    const part = s.name === name + "_sum" ? "sum" : s.name === name + "_count" ? "count" : null;
    if (!part) continue;
    const key = by ? s.labels[by] || "" : "";
    out[key] = out[key] || { sum: 0, count: 0 };
    out[key][part] += s.value;
  }
  return out;
}
