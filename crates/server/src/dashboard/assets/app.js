// The dashboard's entry: one view per tab, chosen by the URL's #fragment. Members and
// stats are sampled from the start (the charts fill while another tab is shown); the key
// browsers load when first shown.

import { MembersView } from "./members.js";
import { StatsView } from "./stats.js";
import { KeysV2View } from "./keys_v2.js";
import { KeysV3View } from "./keys_v3.js";

const section = (name) => document.getElementById("view-" + name);

const members = new MembersView(section("members"));
const views = {
  members,
  stats: new StatsView(section("stats"), members),
  "keys-v2": new KeysV2View(section("keys-v2")),
  "keys-v3": new KeysV3View(section("keys-v3")),
};

members.onUpdate((m) => {
  document.getElementById("member-name").textContent = "member " + m.nameOf(m.selfId) + " (" + m.selfId + ")";
  views.stats.fillSelect();
});

function route() {
  const name = location.hash.slice(1) in views ? location.hash.slice(1) : "members";
  for (const [key, view] of Object.entries(views)) {
    section(key).classList.toggle("active", key === name);
    document.querySelector('nav a[data-view="' + key + '"]').classList.toggle("active", key === name);
    if (key === name && view.shown) view.shown();
  }
}

window.addEventListener("hashchange", route);
members.start();
views.stats.start();
route();
