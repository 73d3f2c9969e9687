// Calls to musubi's (and etcd's) public HTTP APIs, and the small helpers every view shares.

// A member that does not answer within this is shown as down rather than waited for.
export const TIMEOUT_MS = 2500;

// The error a failed call throws: the API's own message (v2 `message`/`cause`, the v3
// gateway's `error`), or why the member could not be reached.
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

// Who the page calls as, once signed in: v2 takes the user and password (HTTP basic
// auth), v3 a token from Authenticate. Kept in memory only: a reload signs out.
const session = { user: null, password: null, token: null };

// Signs in as `user` for both APIs. The v3 token is asked for now, so a wrong password
// shows at once; a cluster without v3 auth leaves v2's basic auth alone in use.
export async function signIn(user, password) {
  session.user = user;
  session.password = password;
  session.token = null;
  try {
    await authenticate();
  } catch (e) {
    if (!/authentication is not enabled/.test(e.message)) {
      signOut();
      throw e;
    }
  }
}

export function signOut() {
  session.user = session.password = session.token = null;
}

export function signedInAs() {
  return session.user;
}

async function authenticate() {
  const body = await json(await call("", "/v3/auth/authenticate", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name: session.user, password: session.password }),
  }));
  session.token = body.token;
}

// fetch() with a deadline. `base` is a member's client URL, or "" for this page's member.
export async function call(base, path, init = {}) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
  try {
    return await fetch(base + path, { ...init, signal: abort.signal, cache: "no-store" });
  } catch (e) {
    throw new ApiError(e.name === "AbortError" ? "no answer in " + TIMEOUT_MS + " ms" : "unreachable", 0);
  } finally {
    clearTimeout(timer);
  }
}

// The JSON body of a reply; a non-2xx reply becomes an ApiError with the API's message.
export async function json(resp) {
  const text = await resp.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch (_) {
    if (!resp.ok) throw new ApiError(text.trim() || resp.statusText, resp.status);
    throw new ApiError("not JSON: " + text.slice(0, 80), resp.status);
  }
  if (!resp.ok) {
    const msg = body.error || [body.message, body.cause].filter(Boolean).join(": ") || resp.statusText;
    throw new ApiError(msg, resp.status);
  }
  return body;
}

export async function getJSON(base, path) {
  return json(await call(base, path));
}

// One v3 JSON gateway call (`/v3/kv/range`, `/v3/maintenance/status`, ...). The token
// is this member's (etcd's simple tokens are), so only calls to it carry one; an expired
// token is renewed once.
export async function v3(base, path, body) {
  const send = () => {
    const headers = { "Content-Type": "application/json" };
    if (base === "" && session.token) headers.Authorization = session.token;
    return call(base, "/v3/" + path, { method: "POST", headers, body: JSON.stringify(body || {}) });
  };
  try {
    return await json(await send());
  } catch (e) {
    if (base !== "" || !session.token || !/invalid auth token/.test(e.message)) throw e;
    await authenticate();
    return json(await send());
  }
}

// A v2 keys call with a form body (PUT, POST) or none (GET, DELETE).
export async function v2keys(method, key, params) {
  const query = new URLSearchParams(params || {});
  const path = "/v2/keys" + encodeKeyPath(key);
  const init = { method, headers: {} };
  if (session.user !== null) {
    init.headers.Authorization = "Basic " + bytesToB64(utf8.encode(session.user + ":" + session.password));
  }
  let url = path;
  if (method === "PUT" || method === "POST") {
    init.body = query;
  } else if ([...query].length) {
    url += "?" + query;
  }
  return json(await call("", url, init));
}

// Each segment of a v2 key, percent-encoded, the slashes kept.
export function encodeKeyPath(key) {
  return key.split("/").map(encodeURIComponent).join("/");
}

// Bytes <-> the gateway's base64. Keys and values are bytes; they are shown as UTF-8.
export function bytesToB64(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

export function b64ToBytes(b64) {
  const s = atob(b64 || "");
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

export const utf8 = {
  encode: (text) => new TextEncoder().encode(text),
  decode: (bytes) => new TextDecoder().decode(bytes),
};

// The smallest key after every key that starts with `prefix` (etcd's prefix range end);
// [0] means "to the end of the keyspace".
export function prefixEnd(prefix) {
  const end = Array.from(prefix);
  while (end.length) {
    if (end[end.length - 1] < 0xff) {
      end[end.length - 1]++;
      return Uint8Array.from(end);
    }
    end.pop();
  }
  return Uint8Array.of(0);
}

// The gateway prints uint64 member IDs in decimal; v2 and etcdctl print them in hex.
export function hexId(decimal) {
  return decimal ? BigInt(decimal).toString(16) : "";
}

// Bytes as etcdctl shows them (go-humanize's SI units).
export function humanBytes(n) {
  n = Number(n || 0);
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}

// el("td", {class: "x"}, "text", child): builds DOM without HTML strings, so keys and
// values are always text, never markup.
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k in node && k !== "list") node[k] = v;
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c !== undefined && c !== null && c !== false) node.append(c);
  }
  return node;
}
