// Shared helpers for the owner and courier apps. No framework, no build step.
// Safety rule: text from users and devices only ever reaches the page through
// textContent / DOM APIs, never through HTML parsing.

/** Build an element. attrs: {class, text, on: {click: fn}, ...attributes}. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = String(v);
    else if (k === "on") for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = !!v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

/** Call the hub API (session cookie, same origin). Resolves to parsed JSON or null. */
export async function api(method, path, body, { timeoutMs = 10000 } = {}) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  try {
    const res = await fetch(`/api/v1${path}`, {
      method,
      credentials: "same-origin",
      cache: "no-store",
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: ctl.signal,
    });
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!res.ok) {
      const e = data && data.error ? data.error : {};
      throw new ApiError(res.status, e.code, e.message);
    }
    return data;
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw new ApiError(0, "network", "Cannot reach the hub");
  } finally {
    clearTimeout(timer);
  }
}

const pad = (n) => String(n).padStart(2, "0");

/** HH:MM:SS in the viewer's local time. */
export function hms(ms) {
  if (ms === null || ms === undefined) return "—";
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function dateTime(ms) {
  if (ms === null || ms === undefined) return "—";
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hms(ms)}`;
}

/** A short human age: "0.4 s", "12 s", "5 min", "3 h". */
export function age(ms) {
  if (ms === null || ms === undefined || !isFinite(ms)) return "—";
  if (ms < 0) ms = 0;
  if (ms < 10000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 120000) return `${Math.round(ms / 1000)} s`;
  if (ms < 7200000) return `${Math.round(ms / 60000)} min`;
  return `${Math.round(ms / 3600000)} h`;
}

/** Say something to screen readers (polite) without moving focus. */
export function announce(text) {
  const r = document.getElementById("announcer");
  if (!r) return;
  r.textContent = "";
  setTimeout(() => { r.textContent = text; }, 50);
}

/** Show an error message in a form's error slot. */
export function showError(el, err) {
  el.textContent = err ? (err.message || String(err)) : "";
  el.hidden = !err;
}

/**
 * The live event socket (/api/v1/events) with the page's own watchdog: the hub pings
 * every second, so 2 s without any message means the link is gone, whatever the last
 * news was. Reconnects with back-off.
 */
export class EventsSocket {
  constructor({ onEvent, onLink, watchdogMs = 2000 }) {
    this.onEvent = onEvent;
    this.onLink = onLink;
    this.watchdogMs = watchdogMs;
    this.lastMessage = 0;
    this.up = false;
    this.backoff = 500;
    this.closed = false;
    this.timer = setInterval(() => this.check(), 250);
    this.connect();
  }
  connect() {
    if (this.closed) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    let ws;
    try { ws = new WebSocket(`${proto}//${location.host}/api/v1/events`); } catch { this.retry(); return; }
    this.ws = ws;
    this.openedAt = Date.now();
    ws.onmessage = (m) => {
      this.lastMessage = Date.now();
      this.backoff = 500;
      this.setUp(true);
      let ev;
      try { ev = JSON.parse(m.data); } catch { return; }
      if (ev && ev.type !== "ping") this.onEvent(ev);
    };
    ws.onclose = () => { if (this.ws === ws) { this.ws = null; this.setUp(false); this.retry(); } };
    ws.onerror = () => {};
  }
  retry() {
    if (this.closed || this.retryTimer) return;
    this.retryTimer = setTimeout(() => { this.retryTimer = null; this.connect(); }, this.backoff);
    this.backoff = Math.min(this.backoff * 2, 5000);
  }
  check() {
    const now = Date.now();
    const silentSince = Math.max(this.lastMessage, this.openedAt || 0);
    if (this.ws && now - silentSince > this.watchdogMs) {
      // Silent link: treat as lost, drop it and dial again.
      const ws = this.ws;
      this.ws = null;
      try { ws.close(); } catch { /* already gone */ }
      this.setUp(false);
      this.retry();
    }
  }
  /** Fresh = a message arrived within the watchdog window. */
  fresh() { return this.up && Date.now() - this.lastMessage <= this.watchdogMs; }
  setUp(up) {
    if (up !== this.up) { this.up = up; this.onLink(up); }
  }
  close() {
    this.closed = true;
    clearInterval(this.timer);
    clearTimeout(this.retryTimer);
    if (this.ws) { const ws = this.ws; this.ws = null; ws.close(); }
  }
}

/** Current position, as a promise. */
export function position(timeoutMs = 15000) {
  return new Promise((resolve, reject) => {
    if (!("geolocation" in navigator)) { reject(new Error("This browser cannot share its location.")); return; }
    navigator.geolocation.getCurrentPosition(
      (p) => resolve({ lat: p.coords.latitude, lon: p.coords.longitude, accuracy_m: p.coords.accuracy }),
      (e) => reject(new Error(e.code === 1 ? "Location permission was denied. Allow location to open the door." : "Could not get your location. Try again outside, near the door.")),
      { enableHighAccuracy: true, timeout: timeoutMs, maximumAge: 5000 },
    );
  });
}
