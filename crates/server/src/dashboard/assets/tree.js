// A tree of keys: directories open and close, their children loaded when first opened;
// a reload keeps what was open and what was selected.

import { el } from "./api.js";

export class Tree {
  // load(node) -> Promise<[{name, path, dir, ...}]>: a directory's children.
  // select(node): a key or directory was clicked.
  constructor(ul, { load, select }) {
    this.ul = ul;
    this.load = load;
    this.select = select;
    this.openPaths = new Set();
    this.selected = null;
    this.root = null;
  }

  async reload(root) {
    this.root = { ...root, dir: true };
    this.openPaths.add(root.path);
    await this.expand(this.root);
    this.render();
  }

  // Shows nothing (the listing failed).
  clear() {
    this.root = null;
    this.render();
  }

  async expand(node) {
    node.children = await this.load(node);
    for (const child of node.children) {
      if (child.dir && this.openPaths.has(child.path)) await this.expand(child);
    }
  }

  // Opens every directory above `path` and selects it (for a key just created).
  reveal(path) {
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) this.openPaths.add(parts.slice(0, i).join("/") || "/");
    this.selected = path;
  }

  async toggle(node) {
    if (this.openPaths.has(node.path)) {
      this.openPaths.delete(node.path);
    } else {
      this.openPaths.add(node.path);
      if (!node.children) await this.expand(node);
    }
    this.render();
  }

  render() {
    const children = (this.root && this.root.children) || [];
    this.ul.replaceChildren(...(children.length ? this.items(children) : [el("li", { class: "muted" }, "(no keys)")]));
  }

  items(nodes) {
    return nodes.map((node) => {
      const open = node.dir && this.openPaths.has(node.path);
      const label = el("span", {
        class: node.path === this.selected ? "selected" : "",
        title: node.path,
        "data-path": node.path,
        onclick: async () => {
          this.selected = node.path;
          if (node.dir) await this.toggle(node);
          else this.render();
          this.select(node);
        },
      }, node.name);
      const kids = open && node.children ? el("ul", {}, this.items(node.children)) : null;
      return el("li", { class: (node.dir ? "dir" : "leaf") + (open ? " open" : "") }, label, kids);
    });
  }
}
