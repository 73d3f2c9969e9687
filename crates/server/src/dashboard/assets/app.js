// The dashboard's entry: one view per tab, chosen by the URL's #fragment. Members and
// stats are sampled from the start (the charts fill while another tab is shown), and so
// are the agent's members once its address is given; the key browsers load when first
// shown.

import { MembersView } from "./members.js";
import { StatsView } from "./stats.js";
import { KeysV2View } from "./keys_v2.js";
import { KeysV3View } from "./keys_v3.js";
import { AgentView } from "./agent.js";
import { signIn, signOut, signedInAs } from "./api.js";

const section = (name) => document.getElementById("view-" + name);

const members = new MembersView(section("members"));
const views = {
  members,
  stats: new StatsView(section("stats"), members),
  "keys-v2": new KeysV2View(section("keys-v2")),
  "keys-v3": new KeysV3View(section("keys-v3")),
  agent: new AgentView(section("agent")),
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

// Signing in or out reloads the key views, whose answers depend on who asks.
const form = document.getElementById("signin");
function showSession(error) {
  const user = signedInAs();
  const who = form.querySelector(".who");
  who.textContent = error || (user === null ? "" : "signed in as " + user);
  who.className = error ? "who error" : "who muted";
  for (const name of ["user", "password"]) form.elements[name].hidden = user !== null;
  form.querySelector("button[type=submit]").hidden = user !== null;
  form.elements.signout.hidden = user === null;
}
function sessionChanged() {
  views["keys-v2"].reset();
  views["keys-v3"].reset();
}
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await signIn(form.elements.user.value, form.elements.password.value);
    form.elements.password.value = "";
    showSession();
    sessionChanged();
  } catch (e) {
    showSession("sign-in failed: " + e.message);
  }
});
form.elements.signout.addEventListener("click", () => {
  signOut();
  showSession();
  sessionChanged();
});
showSession();

window.addEventListener("hashchange", route);
members.start();
views.stats.start();
views.agent.start();
route();
