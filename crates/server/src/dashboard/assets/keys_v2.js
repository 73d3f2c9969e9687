// The v2 key browser: the /v2/keys tree, one directory listing at a time; a key's value,
// TTL and indexes; set, update a TTL, create, delete.

import { v2keys, el } from "./api.js";
import { Tree } from "./tree.js";
import { meta, field, statusLine, attempt, button } from "./detail.js";

export class KeysV2View {
  constructor(root) {
    this.detail = root.querySelector(".detail-pane");
    this.tree = new Tree(root.querySelector(".tree"), {
      load: (node) => this.list(node.path),
      select: (node) => this.show(node.path),
    });
    root.querySelector("[data-act=refresh]").addEventListener("click", () => this.refresh());
    root.querySelector("[data-act=new]").addEventListener("click", () => this.create(this.currentDir()));
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
    try {
      await this.tree.reload({ path: "/" });
    } catch (e) {
      this.tree.clear();
      this.detail.replaceChildren(el("p", { class: "error" }, "cannot list /: " + e.message));
    }
  }

  async list(dir) {
    try {
      const body = await v2keys("GET", dir, { sorted: "true" });
      return (body.node.nodes || []).map((n) => ({ name: n.key.split("/").pop(), path: n.key, dir: !!n.dir }));
    } catch (e) {
      if (e.status === 404) return []; // deleted meanwhile
      throw e;
    }
  }

  currentDir() {
    const sel = this.tree.selected;
    if (!sel) return "/";
    const node = this.lastShown;
    if (node && node.key === sel && node.dir) return sel + "/";
    return sel.slice(0, sel.lastIndexOf("/") + 1);
  }

  // The key's detail pane; `note` is shown as the outcome of what was just done.
  async show(key, note) {
    const status = statusLine();
    let node;
    try {
      node = (await v2keys("GET", key)).node;
    } catch (e) {
      this.detail.replaceChildren(el("h3", {}, key), status);
      status.fail(e);
      return;
    }
    this.lastShown = node;
    const value = el("textarea", { name: "value", value: node.value || "" });
    const ttl = el("input", { type: "number", name: "ttl", min: 0, value: node.ttl || "" });
    const save = async () => {
      const params = node.dir ? { dir: "true", prevExist: "true", ttl: ttl.value } : { value: value.value, ttl: ttl.value };
      if (await attempt(status, () => v2keys("PUT", key, params))) await this.show(key, "saved");
    };
    const remove = async () => {
      if (!confirm("Delete " + key + (node.dir ? " and everything under it" : "") + "?")) return;
      const params = node.dir ? { recursive: "true" } : {};
      if (await attempt(status, () => v2keys("DELETE", key, params))) {
        this.detail.replaceChildren(el("p", { class: "muted" }, key + " deleted."));
        await this.refresh();
      }
    };
    this.detail.replaceChildren(
      el("h3", {}, key),
      meta([
        ["type", node.dir ? "directory" : "key"],
        ["created index", node.createdIndex],
        ["modified index", node.modifiedIndex],
        ["TTL (s)", node.ttl],
        ["expires", node.expiration],
      ]),
      node.dir ? null : field("value", value),
      field("TTL in seconds (empty: none)", ttl),
      el("div", { class: "actions" },
        button("Save", save, "primary"),
        node.dir ? button("New key here…", () => this.create(key + "/")) : null,
        button("Delete", remove, "danger")),
      status
    );
    if (note) status.ok(note);
  }

  // The form for a new key or directory under `dir`.
  create(dir) {
    const status = statusLine();
    const key = el("input", { type: "text", name: "key", value: dir });
    const value = el("textarea", { name: "value" });
    const ttl = el("input", { type: "number", name: "ttl", min: 0 });
    const isDir = el("input", { type: "checkbox", name: "dir" });
    const submit = async () => {
      const params = isDir.checked ? { dir: "true" } : { value: value.value };
      if (ttl.value) params.ttl = ttl.value;
      params.prevExist = "false";
      if (await attempt(status, () => v2keys("PUT", key.value, params))) {
        const path = "/" + key.value.replace(/^\/+/, "");
        this.tree.reveal(path);
        await this.refresh();
        await this.show(path, "created");
      }
    };
    this.detail.replaceChildren(
      el("h3", {}, "New key"),
      field("key", key),
      field("value", value),
      field("TTL in seconds (empty: none)", ttl),
      el("label", {}, isDir, " a directory"),
      el("div", { class: "actions" }, button("Create", submit, "primary")),
      status
    );
    key.focus();
  }
}
