// Live view and lock state that never show stale as live (law 1).
//
// The page runs its own watchdog: the badge says LIVE only while the hub said "live"
// within the last WATCHDOG_MS *and* the picture shown is younger than the live window.
// No word from the hub for WATCHDOG_MS means OFFLINE ("connection lost"), whatever the
// last verdict was: a jammed phone must not freeze on LIVE either.

import { h, fill, api, hms, age } from "./lib.js";

export const LIVE_WINDOW_MS = 1500;
export const WATCHDOG_MS = 2000;
const POLL_MS = 500;

/** Fetch with a deadline; resolves to the Response or rejects. */
async function fetchWithin(url, ms) {
  const ctl = new AbortController();
  const t = setTimeout(() => ctl.abort(), ms);
  try {
    return await fetch(url, { credentials: "same-origin", cache: "no-store", signal: ctl.signal });
  } finally {
    clearTimeout(t);
  }
}

const LABELS = {
  live: "LIVE",
  stale: "STALE",
  offline: "OFFLINE",
};

/** A badge element whose accessible name says what it means. */
export function badge(kind = "offline") {
  const b = h("span", { class: "badge", role: "status", "aria-live": "polite" });
  setBadge(b, kind, "");
  return b;
}

export function setBadge(b, kind, detail) {
  if (b.dataset.state === kind && b.dataset.detail === detail) return;
  b.dataset.state = kind;
  b.dataset.detail = detail;
  b.className = `badge badge-${kind}`;
  b.textContent = LABELS[kind] || kind.toUpperCase();
  b.setAttribute("aria-label", `Live view ${LABELS[kind] || kind}${detail ? `: ${detail}` : ""}`);
}

/**
 * A camera's live view: image, capture time and age, LIVE/STALE/OFFLINE badge.
 * Uses the hub's live-view socket when it exists, otherwise polls frame.jpg and the
 * device every 500 ms; the same watchdog applies to both.
 */
export class LiveView {
  constructor(device, { socket = true } = {}) {
    this.device = device;
    this.mode = socket ? "socket" : "poll";
    this.hub = null; // {liveness, at}
    this.frame = null; // {capture, ageAt, recvAt}
    this.url = null;
    this.stopped = false;
    this.img = h("img", { class: "live-img", alt: `Picture from ${device.name}`, width: 320, height: 240 });
    this.placeholder = h("div", { class: "live-none", text: "No picture yet" });
    this.badge = badge("offline");
    this.captured = h("span", { class: "live-captured", text: "—" });
    this.ageEl = h("span", { class: "live-age", text: "—" });
    this.note = h("p", { class: "live-note", "aria-live": "polite" });
    this.img.hidden = true;
    this.el = h("figure", { class: "live", dataset: { device: device.id } },
      h("div", { class: "live-frame" }, this.img, this.placeholder, h("div", { class: "live-badge" }, this.badge)),
      h("figcaption", {},
        h("span", { text: "Captured " }), this.captured, h("span", { text: " · age " }), this.ageEl),
      this.note);
    this.render = this.render.bind(this);
    this.renderTimer = setInterval(this.render, 200);
    if (this.mode === "socket") this.openSocket(); else this.loop();
    this.render();
  }

  /**
   * The hub's live-view socket: a `frame` message per new frame (JPEG in base64) and a
   * `status` verdict every 250 ms. A socket that never opens (an older hub) falls back
   * to polling; one that goes silent is closed by the watchdog and dialled again.
   */
  openSocket() {
    if (this.stopped) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/api/v1/devices/${encodeURIComponent(this.device.id)}/live`);
    this.ws = ws;
    let opened = false;
    const openedAt = Date.now();
    let last = openedAt;
    ws.onopen = () => { opened = true; this.everOpened = true; };
    ws.onmessage = (m) => {
      const now = Date.now();
      last = now;
      let msg;
      try { msg = JSON.parse(m.data); } catch { return; }
      if (!msg || !msg.verdict) return;
      this.hub = { liveness: msg.verdict, at: now };
      if (msg.type === "frame" && msg.jpeg_base64) {
        try {
          const bin = atob(msg.jpeg_base64);
          const bytes = new Uint8Array(bin.length);
          for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
          this.showBlob(new Blob([bytes], { type: "image/jpeg" }));
          this.frame = { seq: msg.seq, capture: msg.capture_ms, ageAt: Number(msg.age_ms ?? Infinity), recvAt: now };
        } catch { /* a bad frame is skipped */ }
      } else if (msg.type === "status" && this.frame && msg.last_seq === this.frame.seq && msg.age_ms !== null && msg.age_ms !== undefined) {
        this.frame.ageAt = Number(msg.age_ms);
        this.frame.recvAt = now;
      }
    };
    const retry = () => {
      if (this.ws !== ws || this.stopped) return;
      this.ws = null;
      clearInterval(dog);
      try { ws.close(); } catch { /* gone */ }
      if (!opened && !this.everOpened) { this.mode = "poll"; this.loop(); return; }
      this.retryTimer = setTimeout(() => this.openSocket(), 500);
    };
    ws.onclose = retry;
    ws.onerror = () => {};
    // The socket's own watchdog: silent for WATCHDOG_MS means gone.
    const dog = setInterval(() => { if (Date.now() - last > WATCHDOG_MS) retry(); }, 250);
  }

  showBlob(blob) {
    const url = URL.createObjectURL(blob);
    this.img.src = url;
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = url;
    this.img.hidden = false;
    this.placeholder.hidden = true;
  }

  async loop() {
    while (!this.stopped) {
      const started = Date.now();
      await this.poll();
      const wait = Math.max(50, POLL_MS - (Date.now() - started));
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  async poll() {
    const id = encodeURIComponent(this.device.id);
    const [dev, frame] = await Promise.allSettled([
      api("GET", `/devices/${id}`, undefined, { timeoutMs: 1500 }),
      fetchWithin(`/api/v1/devices/${id}/frame.jpg`, 1500),
    ]);
    if (this.stopped) return;
    const now = Date.now();
    if (dev.status === "fulfilled" && dev.value) {
      this.hub = { liveness: dev.value.liveness, frozen: dev.value.possibly_frozen, at: now };
    }
    if (frame.status === "fulfilled" && frame.value.ok) {
      const r = frame.value;
      const capture = Number(r.headers.get("x-capture-ms"));
      const ageAt = Number(r.headers.get("x-age-ms"));
      const blob = await r.blob().catch(() => null);
      if (blob && !this.stopped) {
        this.hubFrameAt = now;
        if (!this.frame || this.frame.capture !== capture) this.showBlob(blob);
        this.frame = { capture, ageAt: isFinite(ageAt) ? ageAt : Infinity, recvAt: Date.now() };
      }
    } else if (frame.status === "fulfilled" && frame.value.status === 404) {
      this.hubFrameAt = now;
    }
  }

  /** The verdict now: {state, detail, lost}. */
  verdict(now = Date.now()) {
    if (!this.hub || now - this.hub.at > WATCHDOG_MS) {
      return { state: "offline", detail: "connection lost", lost: true };
    }
    const frameAge = this.frame ? this.frame.ageAt + (now - this.frame.recvAt) : Infinity;
    if (this.hub.liveness === "live" && frameAge < LIVE_WINDOW_MS) {
      return { state: "live", detail: `picture ${age(frameAge)} old` };
    }
    if (this.hub.liveness === "offline") {
      return { state: "offline", detail: "camera offline" };
    }
    if (this.hub.liveness === "live") {
      return { state: "stale", detail: "camera online, picture not current" };
    }
    return { state: "stale", detail: "camera not sending" };
  }

  render() {
    const now = Date.now();
    const v = this.verdict(now);
    setBadge(this.badge, v.state, v.detail);
    this.el.dataset.state = v.state;
    this.el.classList.toggle("live-lost", !!v.lost);
    this.captured.textContent = this.frame && isFinite(this.frame.capture) ? hms(this.frame.capture) : "—";
    this.ageEl.textContent = this.frame ? age(this.frame.ageAt + (now - this.frame.recvAt)) : "—";
    let note = "";
    if (v.lost) note = "Connection lost: this page has not heard from the hub for more than 2 s. The picture may be old.";
    else if (v.state === "offline") note = "The camera is offline. The picture shown is old.";
    else if (v.state === "stale") note = this.hub && this.hub.liveness === "live"
      ? "The camera is online but this picture is not current."
      : "The camera has stopped sending. The picture shown is old.";
    else if (this.hub && this.hub.frozen) note = "Warning: the picture has not changed for a while; the camera may be frozen.";
    if (this.note.textContent !== note) this.note.textContent = note;
  }

  stop() {
    this.stopped = true;
    clearInterval(this.renderTimer);
    clearTimeout(this.retryTimer);
    if (this.ws) { const ws = this.ws; this.ws = null; ws.close(); }
    if (this.url) URL.revokeObjectURL(this.url);
  }
}

/**
 * A lock's bolt as locked / unlocked / unknown since HH:MM:SS, by the same rule: only
 * a fresh signed report (as judged by the hub, heard within WATCHDOG_MS) counts.
 */
export class LockView {
  constructor(device) {
    this.device = device;
    this.stopped = false;
    this.last = null; // {dev, at}
    this.lostSince = null;
    this.value = h("strong", { class: "lock-state", role: "status", "aria-live": "polite" });
    this.detail = h("span", { class: "lock-detail" });
    // A garage-door opener's barrier is the door itself: its state is the door's.
    this.field = device.kind === "garage_opener" ? "door" : "bolt";
    this.el = h("div", { class: "lock", dataset: { device: device.id } }, h("span", { text: this.field === "door" ? "Garage door: " : "Door lock: " }), this.value, " ", this.detail);
    this.apply(device, Date.now());
    this.timer = setInterval(() => this.render(), 250);
    this.loop();
  }
  async loop() {
    while (!this.stopped) {
      try {
        const d = await api("GET", `/devices/${encodeURIComponent(this.device.id)}`, undefined, { timeoutMs: 1500 });
        if (!this.stopped) this.apply(d, Date.now());
      } catch { /* the watchdog shows it */ }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  apply(d, at) {
    this.last = { dev: d, at };
    this.lostSince = null;
    this.render();
  }
  render() {
    const now = Date.now();
    let state = "unknown";
    let detail = "";
    const s = this.last && this.last.dev.state;
    if (!this.last || now - this.last.at > WATCHDOG_MS) {
      if (!this.lostSince) this.lostSince = this.last ? this.last.at : now;
      detail = `since ${hms(this.lostSince)} (connection to the hub lost)`;
    } else if (!s || !s[this.field]) {
      detail = "(no report yet)";
    } else if (s[this.field] === "unknown") {
      const since = s.unknown_since_ms || this.last.dev.last_seen_ms;
      const was = s.last_reported && s.last_reported[this.field];
      detail = `since ${hms(since)}${was ? `; last report said ${String(was).toLowerCase()}` : ""}`;
    } else {
      state = s[this.field];
      const extra = [s.motion ? (s.motion === "stopped" ? "stopped part-way" : s.motion) : "", s.obstructed ? "OBSTRUCTED" : ""].filter(Boolean).join(", ");
      detail = `${extra ? `${extra} ` : ""}${s.reported_at_ms ? `(confirmed ${hms(s.reported_at_ms)})` : ""}`.trim();
    }
    const text = state;
    if (this.value.textContent !== text) this.value.textContent = text;
    this.value.className = `lock-state lock-${state}`;
    this.el.dataset.state = state;
    if (this.detail.textContent !== detail) this.detail.textContent = detail;
    if (s && typeof s.battery_pct === "number") this.el.dataset.battery = s.battery_pct;
  }
  stop() {
    this.stopped = true;
    clearInterval(this.timer);
  }
}

/** Empty an element, stopping any live views inside it first. */
export function clearViews(views) {
  for (const v of views.splice(0)) v.stop();
}

export { fill };
