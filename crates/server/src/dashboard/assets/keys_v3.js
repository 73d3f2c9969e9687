// The v3 key browser, through the JSON gateway: the keys under a prefix (keys_only Range)
// shown as a tree split at '/', a key's value, revisions and lease TTL; put (with a new
// lease for a TTL), delete a key or a whole prefix. Keys and values are bytes: they are
// sent as base64 and shown as UTF-8.

import { v3, el, bytesToB64, b64ToBytes, utf8, prefixEnd, hexId } from "./api.js";
import { Tree } from "./tree.js";
import { meta, field, statusLine, attempt, button } from "./detail.js";

// The most keys listed at once; the note says when there are more.
const LIST_LIMIT = 5000;
const SLASH = 0x2f;

export class KeysV3View {
  constructor(root) {
    this.detail = root.querySelector(".detail-pane");
    this.note = root.querySelector(".note");
    this.prefix = root.querySelector(".prefix");
    this.tree = new Tree(root.querySelector(".tree"), {
      load: async (node) => node.children || [],
      select: (node) => (node.dir ? this.showPrefix(node) : this.show(node.key)),
    });
    root.querySelector("[data-act=refresh]").addEventListener("click", () => this.refresh());
    root.querySelector("[data-act=new]").addEventListener("click", () => this.create(this.prefix.value));
    this.prefix.addEventListener("change", () => this.refresh());
    this.reset();
  }

  // Forgets what was shown (after a sign-in or sign-out) and lists the keys again.
  reset() {
    this.detail.replaceChildren(el("p", { class: "muted" }, "Choose a key, or create one."));
    if (this.loaded) this.refresh();
  }

  shown() {
    if (!this.loaded) this.refresh();
    this.loaded = true;
  }

  async refresh() {
    const prefix = utf8.encode(this.prefix.value);
    const range = prefix.length ? { key: bytesToB64(prefix), range_end: bytesToB64(prefixEnd(prefix)) } : { key: "AA==", range_end: "AA==" };
    try {
      const body = await v3("", "kv/range", { ...range, keys_only: true, limit: LIST_LIMIT });
      const keys = (body.kvs || []).map((kv) => b64ToBytes(kv.key));
      this.note.textContent = body.more ? "showing the first " + keys.length + " of " + body.count + " keys" : keys.length + (keys.length === 1 ? " key" : " keys");
      await this.tree.reload({ path: "", children: buildTree(keys) });
    } catch (e) {
      this.note.textContent = "cannot list keys: " + e.message;
      this.tree.clear();
    }
  }

  // A key's detail pane; `note` is shown as the outcome of what was just done.
  async show(keyB64, note) {
    const status = statusLine();
    const title = el("h3", {}, display(b64ToBytes(keyB64)));
    let kv;
    try {
      kv = ((await v3("", "kv/range", { key: keyB64 })).kvs || [])[0];
    } catch (e) {
      this.detail.replaceChildren(title, status);
      status.fail(e);
      return;
    }
    if (!kv) {
      this.detail.replaceChildren(title, el("p", { class: "muted" }, "no such key (deleted?)"));
      return;
    }
    const bytes = b64ToBytes(kv.value);
    const text = strictUtf8(bytes);
    let lease = null;
    if (kv.lease) lease = await v3("", "kv/lease/timetolive", { ID: kv.lease }).catch(() => null);
    const value = el("textarea", { name: "value", value: text === null ? "" : text });
    const ttl = el("input", { type: "number", name: "ttl", min: 0 });
    const save = async () => {
      if (await attempt(status, () => put(keyB64, value.value, ttl.value, kv.lease))) await this.show(keyB64, "saved");
    };
    const remove = async () => {
      if (!confirm("Delete " + display(b64ToBytes(keyB64)) + "?")) return;
      if (await attempt(status, () => v3("", "kv/deleterange", { key: keyB64 }))) {
        this.detail.replaceChildren(el("p", { class: "muted" }, display(b64ToBytes(keyB64)) + " deleted."));
        await this.refresh();
      }
    };
    this.detail.replaceChildren(
      title,
      meta([
        ["key (base64)", keyB64],
        ["create revision", kv.create_revision],
        ["mod revision", kv.mod_revision],
        ["version", kv.version],
        ["lease", kv.lease ? hexId(kv.lease) : "none"],
        ["TTL (s)", lease ? lease.TTL + " of " + lease.grantedTTL : ""],
        ["value", text === null ? "not UTF-8; base64 " + kv.value : ""],
      ]),
      field("value", value),
      field("TTL in seconds: grants a new lease (empty: keep the key's lease; 0: none)", ttl),
      el("div", { class: "actions" }, button("Save", save, "primary"), button("Delete", remove, "danger")),
      status
    );
    if (note) status.ok(note);
  }

  // A prefix's pane: how many keys it holds, a new key under it, delete them all.
  async showPrefix(node) {
    const status = statusLine();
    const prefix = b64ToBytes(node.path);
    const range = { key: node.path, range_end: bytesToB64(prefixEnd(prefix)) };
    let count = "?";
    try {
      count = (await v3("", "kv/range", { ...range, count_only: true })).count || "0";
    } catch (e) {
      status.fail(e);
    }
    const remove = async () => {
      if (!confirm("Delete the " + count + " keys under " + display(prefix) + "?")) return;
      if (await attempt(status, () => v3("", "kv/deleterange", range))) {
        this.detail.replaceChildren(el("p", { class: "muted" }, "keys under " + display(prefix) + " deleted."));
        await this.refresh();
      }
    };
    this.detail.replaceChildren(
      el("h3", {}, display(prefix) + "…"),
      meta([["keys under this prefix", count]]),
      el("div", { class: "actions" },
        button("New key here…", () => this.create(utf8.decode(prefix))),
        button("Delete all", remove, "danger")),
      status
    );
  }

  create(prefix) {
    const status = statusLine();
    const key = el("input", { type: "text", name: "key", value: prefix });
    const value = el("textarea", { name: "value" });
    const ttl = el("input", { type: "number", name: "ttl", min: 0 });
    const submit = async () => {
      const keyB64 = bytesToB64(utf8.encode(key.value));
      if (await attempt(status, () => put(keyB64, value.value, ttl.value, "0"))) {
        await this.refresh();
        await this.show(keyB64, "created");
      }
    };
    this.detail.replaceChildren(
      el("h3", {}, "New key"),
      field("key", key),
      field("value", value),
      field("TTL in seconds (grants a lease; empty: none)", ttl),
      el("div", { class: "actions" }, button("Create", submit, "primary")),
      status
    );
    key.focus();
  }
}

// Put `text` at the key; a TTL grants a fresh lease for it, "0" detaches any lease, and
// an empty TTL keeps `currentLease`.
async function put(keyB64, text, ttl, currentLease) {
  let lease = currentLease || "0";
  if (ttl === "0") lease = "0";
  else if (ttl) lease = (await v3("", "lease/grant", { TTL: ttl })).ID;
  const body = { key: keyB64, value: bytesToB64(utf8.encode(text)) };
  if (lease !== "0") body.lease = lease;
  return v3("", "kv/put", body);
}

// Sorted keys -> nested nodes split after each '/': directories are the prefixes (their
// `path` is the prefix's base64), leaves the keys (`key`).
function buildTree(keys) {
  const root = { children: [], index: new Map() };
  for (const key of keys) {
    let parent = root;
    let start = 0;
    for (let i = 0; i < key.length; i++) {
      if (key[i] !== SLASH || i === key.length - 1) continue;
      const prefix = key.subarray(0, i + 1);
      const id = bytesToB64(prefix);
      let dir = parent.index.get(id);
      if (!dir) {
        dir = { name: display(key.subarray(start, i + 1)), path: id, dir: true, children: [], index: new Map() };
        parent.index.set(id, dir);
        parent.children.push(dir);
      }
      parent = dir;
      start = i + 1;
    }
    const id = bytesToB64(key);
    parent.children.push({ name: display(key.subarray(start)), path: "k:" + id, key: id, dir: false });
  }
  return root.children;
}

function strictUtf8(bytes) {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (_) {
    return null;
  }
}

// Bytes as text: UTF-8 where it is, \xNN for the rest.
function display(bytes) {
  const text = strictUtf8(bytes);
  if (text !== null) return text;
  return Array.from(bytes, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : "\\x" + b.toString(16).padStart(2, "0"))).join("");
}
