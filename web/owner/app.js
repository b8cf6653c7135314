// Threshold owner app. Plain JS modules; every piece of user or device text is
// rendered with textContent (see shared/lib.js).

import { h, fill, api, ApiError, hms, dateTime, age, announce, showError, EventsSocket } from "/shared/lib.js";
import { LiveView, LockView, badge, setBadge, clearViews } from "/shared/live.js";

const main = document.getElementById("main");
const top = document.getElementById("top");
const linkEl = document.getElementById("link");
const critical = document.getElementById("critical");
const alertCount = document.getElementById("alert-count");

const app = {
  me: null,
  events: null,
  views: [], // live/lock views to stop when leaving a page
  alerts: [],
  features: {}, // optional APIs found on this hub: {clips, lockControl, webhooks, grants}
  refreshers: [], // called on relevant live events
};

// ---------- optional APIs (other parts of the hub may not have them yet) ----------

async function detectFeatures() {
  try {
    const doc = await api("GET", "/openapi.json");
    const paths = Object.keys((doc && doc.paths) || {});
    const has = (re) => paths.some((p) => re.test(p));
    app.features = {
      paths,
      clips: has(/clip|recording/),
      lockControl: paths.filter((p) => /\/devices\/\{[^}]+\}\/(lock|unlock|command)/.test(p) || /\/homes\/\{[^}]+\}\/(lock|unlock)/.test(p)),
      webhooks: has(/webhook/),
      grants: has(/grant|guest/),
      liveSocket: has(/\/devices\/\{[^}]+\}\/live/),
    };
  } catch {
    app.features = { paths: [] };
  }
}

// ---------- routing ----------

function route() {
  clearViews(app.views);
  app.refreshers = [];
  if (!app.me) return showLogin();
  const [, page, id] = (location.hash || "#/").split("/");
  for (const a of document.querySelectorAll("[data-nav]")) {
    const current = (a.dataset.nav === (page || "home")) || (a.dataset.nav === "home" && page === "device") || (a.dataset.nav === "deliveries" && page === "delivery");
    if (current) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const pages = { "": homePage, device: devicePage, deliveries: deliveriesPage, delivery: deliveryPage, alerts: alertsPage, settings: settingsPage };
  const fn = pages[page || ""] || homePage;
  fill(main, h("p", { class: "muted", text: "Loading…" }));
  fn(id ? decodeURIComponent(id) : undefined).then(() => {
    // After a navigation, screen readers start at the new page's content.
    if (focusAfterRoute) { focusAfterRoute = false; main.focus({ preventScroll: true }); }
  }).catch((e) => {
    if (e instanceof ApiError && e.status === 401) return signedOut();
    fill(main, h("p", { class: "error", role: "alert", text: e.message || String(e) }));
  });
}

let focusAfterRoute = false;
window.addEventListener("hashchange", () => { focusAfterRoute = true; route(); });

// ---------- sign in / out ----------

function showLogin(message) {
  top.hidden = true;
  critical.hidden = true;
  const err = h("p", { class: "error", role: "alert", hidden: true });
  const user = h("input", { id: "username", name: "username", autocomplete: "username", required: true, autocapitalize: "none" });
  const pass = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const btn = h("button", { type: "submit", text: "Sign in" });
  const form = h("form", { class: "card narrow", id: "login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title", text: "Sign in to Threshold" }),
    h("label", { for: "username", text: "Username" }), user,
    h("label", { for: "password", text: "Password" }), pass,
    err, btn);
  if (message) showError(err, { message });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    btn.disabled = true;
    showError(err, null);
    try {
      const r = await api("POST", "/auth/login", { username: user.value, password: pass.value });
      if (r.user.role !== "owner") {
        await api("POST", "/auth/logout").catch(() => {});
        throw new Error(r.user.role === "courier" ? "This is the owner app. Couriers sign in at /courier/." : "This app is for home owners.");
      }
      await signedIn(r.user);
    } catch (ex) {
      showError(err, ex.status === 401 ? { message: "Wrong username or password." } : ex);
      btn.disabled = false;
    }
  });
  fill(main, form);
  user.focus();
}

async function signedIn(user) {
  app.me = user;
  top.hidden = false;
  await detectFeatures();
  startEvents();
  loadAlerts().catch(() => {});
  // Setting the hash fires hashchange, which routes; route only once.
  if (!location.hash || location.hash === "#/login") location.hash = "#/";
  else route();
}

function signedOut(message) {
  app.me = null;
  if (app.events) { app.events.close(); app.events = null; }
  clearViews(app.views);
  showLogin(message || "Your session ended. Please sign in again.");
}

document.getElementById("signout").addEventListener("click", async () => {
  await api("POST", "/auth/logout").catch(() => {});
  app.me = null;
  if (app.events) { app.events.close(); app.events = null; }
  clearViews(app.views);
  location.hash = "#/";
  showLogin();
  announce("Signed out");
});

// ---------- live events ----------

function startEvents() {
  if (app.events) app.events.close();
  app.events = new EventsSocket({
    onLink: (up) => {
      linkEl.textContent = up ? "Connected" : "Connection lost";
      linkEl.className = up ? "link link-up" : "link link-down";
      linkEl.dataset.state = up ? "up" : "down";
    },
    onEvent: onEvent,
  });
  linkEl.textContent = "Connecting…";
  linkEl.className = "link link-down";
}

function onEvent(ev) {
  if (ev.type === "alert" && ev.data) {
    const a = ev.data;
    if (!app.alerts.some((x) => x.id === a.id)) app.alerts.unshift(a);
    updateAlertCount();
    if (a.severity === "critical") showCritical(a);
    else announce(`Alert: ${a.message}`);
  }
  for (const f of app.refreshers) f(ev);
}

function showCritical(a) {
  fill(critical,
    h("strong", { text: "Critical alert: " }),
    h("span", { class: "critical-message", text: a.message }),
    " ",
    h("a", { href: "#/alerts", text: "See alerts" }),
    " ",
    h("button", { type: "button", class: "secondary", text: "Dismiss", on: { click: () => { critical.hidden = true; } } }));
  critical.dataset.alertId = a.id;
  critical.dataset.kind = a.kind;
  critical.hidden = false;
}

async function loadAlerts() {
  app.alerts = (await api("GET", "/alerts?limit=200")) || [];
  updateAlertCount();
}

function updateAlertCount() {
  const n = app.alerts.filter((a) => !a.acked_ms).length;
  alertCount.textContent = String(n);
  alertCount.hidden = n === 0;
  alertCount.setAttribute("aria-label", `${n} unacknowledged`);
}

// ---------- helpers ----------

function debounce(fn, ms) {
  let t = null;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}

/** One device in a list; updated in place so focus and screen readers keep their place. */
function deviceItem(d) {
  const b = badge(d.liveness);
  const name = h("a", { href: `#/device/${encodeURIComponent(d.id)}`, class: "device-name" });
  const kind = h("span", { class: "muted" });
  const facts = h("div", { class: "muted small" });
  const li = h("li", { class: "device" }, h("div", { class: "device-head" }, name, kind, b), facts);
  const item = { li, d };
  item.update = (dev, linkLost) => {
    item.d = dev;
    // The page's own watchdog: a list not refreshed within 2 s shows nobody as live.
    const shown = linkLost ? "offline" : dev.liveness;
    setBadge(b, shown, linkLost ? "connection to the hub lost" : "");
    b.setAttribute("aria-label", `${dev.name} is ${shown.toUpperCase()}${linkLost ? " (connection to the hub lost)" : ""}`);
    li.dataset.device = dev.id;
    li.dataset.kind = dev.kind;
    li.dataset.liveness = shown;
    if (name.textContent !== dev.name) name.textContent = dev.name;
    kind.textContent = ` ${kindName(dev.kind)}`;
    const st = dev.state || {};
    const f = [];
    if (dev.kind === "lock" && st.bolt) f.push(linkLost || st.bolt === "unknown" ? `bolt unknown${st.unknown_since_ms ? ` since ${hms(st.unknown_since_ms)}` : ""}` : `bolt ${st.bolt}`);
    if ((dev.kind === "lock" || dev.kind === "contact_sensor" || dev.kind === "garage_opener") && st.door) f.push(linkLost ? "door unknown" : `door ${st.door}`);
    if (dev.kind === "garage_opener" && !linkLost && st.motion) f.push(st.motion === "stopped" ? "stopped part-way" : st.motion);
    if (dev.kind === "garage_opener" && !linkLost && st.obstructed) f.push("OBSTRUCTED");
    if (typeof st.battery_pct === "number") f.push(`battery ${st.battery_pct}%`);
    if (dev.possibly_frozen) f.push("picture may be frozen");
    if (dev.revoked) f.push("revoked");
    f.push(`last seen ${dev.last_seen_ms ? `${hms(dev.last_seen_ms)} (${age(Date.now() - dev.last_seen_ms)} ago)` : "never"}`);
    const text = f.join(" · ");
    if (facts.textContent !== text) facts.textContent = text;
  };
  item.update(d, false);
  return item;
}

function kindName(k) {
  return { camera: "camera", lock: "lock", contact_sensor: "door sensor", wifi_sensor: "Wi-Fi sensor", garage_opener: "garage-door opener" }[k] || k;
}

// ---------- pages ----------

async function homePage() {
  const homes = await api("GET", "/homes");
  const body = h("div", { class: "stack" }, h("h1", { text: "Your homes" }));
  if (!homes.length) body.append(h("p", { text: "No home yet. Add one to enrol devices." }));
  for (const home of homes) body.append(await homeCard(home));
  body.append(addHomeForm());
  fill(main, body);
}

async function homeCard(home) {
  const list = h("ul", { class: "devices", "aria-label": `Devices in ${home.name}` });
  const items = new Map();
  const empty = h("li", { class: "muted", text: "No devices yet." });
  const doors = doorsSection(home);
  const pairing = addDeviceForm(home);
  let lastOk = 0;
  const showDevices = (devs) => {
    const seen = new Set();
    for (const d of devs) {
      seen.add(d.id);
      const it = items.get(d.id);
      if (it) it.update(d, false);
      else { const n = deviceItem(d); items.set(d.id, n); list.append(n.li); }
    }
    for (const [id, it] of items) if (!seen.has(id)) { it.li.remove(); items.delete(id); }
    if (!devs.length && !empty.isConnected) list.append(empty);
    if (devs.length) empty.remove();
  };
  // Devices and doors come together, so a door's cameras and lock are never older
  // than the device list beside them.
  const load = async () => {
    const hid = encodeURIComponent(home.id);
    const [devs, doorRows] = await Promise.all([
      api("GET", `/homes/${hid}/devices`, undefined, { timeoutMs: 1500 }),
      api("GET", `/homes/${hid}/doors`, undefined, { timeoutMs: 1500 }),
    ]);
    lastOk = Date.now();
    showDevices(devs);
    doors.update(doorRows, devs, false);
    pairing.setDoors(doorRows);
  };
  await load();
  await doors.loadActivity();
  let busy = false;
  const refresh = async () => {
    if (busy) return;
    busy = true;
    try { await load(); } catch { /* the watchdog below shows it */ } finally { busy = false; }
  };
  doors.reload = refresh;
  app.refreshers.push((ev) => { if (ev.home_id === home.id && String(ev.type).startsWith("device.")) refresh(); });
  const poll = setInterval(refresh, 1000);
  const activity = setInterval(() => doors.loadActivity(), 5000);
  // The page's own watchdog: nothing heard from the hub for 2 s, nothing is shown as
  // live, locked or watched.
  const dog = setInterval(() => {
    if (Date.now() - lastOk > 2000) {
      for (const it of items.values()) it.update(it.d, true);
      doors.update(null, null, true);
    }
  }, 250);
  app.views.push({ stop: () => { clearInterval(poll); clearInterval(dog); clearInterval(activity); } });
  const history = historySection(home);
  const expected = expectedSection(home);
  return h("section", { class: "card", "aria-labelledby": `home-${home.id}`, dataset: { home: home.id } },
    h("h2", { id: `home-${home.id}`, text: home.name }),
    h("p", { class: "muted small", text: `In-home delivery ${home.in_home_enabled ? "on" : "off"}` }),
    list,
    doors.el,
    expected,
    history,
    pairing.el);
}

/**
 * "I expect a delivery from X today": the owner notes it; when that merchant's
 * delivery arrives for this home, the entry turns into a link to the live delivery and
 * follows its state.
 */
function expectedSection(home) {
  const hid = encodeURIComponent(home.id);
  const list = h("ul", { class: "expected" });
  const note = h("input", { id: `expect-note-${home.id}`, name: "note", required: true, maxlength: 200, placeholder: "e.g. shoes from Acme" });
  const merchant = h("select", { id: `expect-merchant-${home.id}`, name: "merchant" }, h("option", { value: "", text: "Any merchant" }));
  const err = h("p", { class: "error", role: "alert", hidden: true });
  const form = h("form", { class: "expect" },
    h("label", { for: `expect-note-${home.id}`, text: "I expect a delivery today" }), note,
    h("label", { for: `expect-merchant-${home.id}`, text: "From" }), merchant,
    h("button", { type: "submit", class: "secondary", text: "Expect it" }), err);
  const load = async () => {
    const items = await api("GET", `/homes/${hid}/expectations`, undefined, { timeoutMs: 3000 }).catch(() => null);
    if (!items) return;
    fill(list, items.length ? items.map((e) => h("li", { dataset: { expectation: e.id, state: e.delivery_state || "waiting" } },
      h("strong", { text: e.note }), " · ",
      e.delivery_id
        ? h("a", { href: `#/delivery/${encodeURIComponent(e.delivery_id)}`, class: "expectation-delivery", text: `arrived: ${stateWords(e.delivery_state)}` })
        : h("span", { class: "muted", text: `waiting (until ${hms(e.window_end_ms)})` }))) : h("li", { class: "muted", text: "Nothing expected." }));
  };
  api("GET", `/homes/${hid}/merchants`).then((ms) => {
    for (const m of ms) merchant.append(h("option", { value: m.dispatcher_id, text: m.display_name || m.dispatcher_id }));
  }).catch(() => {});
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(err, null);
    const end = new Date(); end.setHours(23, 59, 59, 999);
    try {
      await api("POST", `/homes/${hid}/expectations`, {
        note: note.value, dispatcher_id: merchant.value || undefined,
        window_start_ms: Date.now() - 3600e3, window_end_ms: end.getTime(),
      });
      note.value = "";
      announce("Noted: you will see it here when it arrives.");
      load();
    } catch (ex) { showError(err, ex); }
  });
  load();
  app.refreshers.push((ev) => { if (ev.home_id === home.id && (ev.type === "expectation.matched" || String(ev.type).startsWith("delivery."))) load(); });
  return h("section", { class: "expected-deliveries", dataset: { expectHome: home.id }, "aria-labelledby": `exp-${home.id}` },
    h("h3", { id: `exp-${home.id}`, text: "Expected deliveries" }), list, form);
}

/**
 * The last 24 hours at a glance: per camera, lock and sensor, coloured bands (live,
 * stale, offline; hatched where the hub knows nothing) and marks for entries and
 * incidents. Refreshed every minute while the page is open.
 */
function historySection(home) {
  const rows = h("div", { class: "strips" });
  const sec = h("section", { class: "history", "aria-labelledby": `hist-${home.id}` },
    h("h3", { id: `hist-${home.id}`, text: "Last 24 hours" }),
    rows,
    h("p", { class: "legend", text: "Green: live · amber: stale · red: offline · hatched: unknown · ticks: entries (dark) and incidents (red)" }));
  const load = async () => {
    let hist;
    try { hist = await api("GET", `/homes/${encodeURIComponent(home.id)}/history?hours=24`, undefined, { timeoutMs: 3000 }); } catch { return; }
    const span = Math.max(1, hist.to_ms - hist.from_ms);
    fill(rows, hist.devices.map((d) => {
      const strip = h("div", { class: "strip", dataset: { device: d.device_id }, role: "img",
        "aria-label": `${d.name}: ${d.bands.map((b) => `${b.state} from ${hms(b.from_ms)}`).join(", ")}` });
      for (const b of d.bands) {
        const band = h("span", { class: "band", dataset: { state: b.state }, title: `${b.state} ${hms(b.from_ms)}–${hms(b.to_ms)}` });
        band.style.flexGrow = String(b.to_ms - b.from_ms);
        strip.append(band);
      }
      for (const m of hist.marks.filter((m) => d.kind === "camera" || m.device_id === d.device_id)) {
        const mark = h("span", { class: "mark", dataset: { kind: m.kind }, title: `${m.kind} at ${hms(m.time_ms)}` });
        mark.style.left = `${(100 * (m.time_ms - hist.from_ms)) / span}%`;
        strip.append(mark);
      }
      return h("div", { class: "strip-row" }, h("span", { text: `${d.name} (${kindName(d.kind)})` }), strip);
    }));
  };
  load();
  const t = setInterval(load, 60_000);
  app.views.push({ stop: () => clearInterval(t) });
  sec.reload = load;
  return sec;
}

/** What a camera's state means for the door it watches: the hub's own verdict. */
function cameraVerdict(cam, linkLost) {
  if (linkLost) return "offline";
  if (!cam || cam.revoked) return "offline";
  const w = cam.state && cam.state.watching;
  if (w === "watching") return "live";
  if (typeof w === "string" && w.startsWith("camera_")) return w.slice(7);
  return cam.liveness === "live" ? "stale" : cam.liveness || "offline";
}

const VERDICT_WORDS = {
  live: ["LIVE", "watching"],
  stale: ["STALE", "no recent picture"],
  offline: ["OFFLINE", "offline"],
  frozen: ["FROZEN?", "picture may be frozen"],
  clock_skew: ["CLOCK WRONG", "camera clock is wrong"],
};

function setVerdict(b, name, verdict, linkLost) {
  const [word, meaning] = VERDICT_WORDS[verdict] || [verdict.toUpperCase(), verdict];
  const label = `${name}: ${word}, ${linkLost ? "connection to the hub lost" : meaning}`;
  if (b.dataset.state === verdict && b.getAttribute("aria-label") === label) return;
  b.dataset.state = verdict;
  b.className = `badge badge-small badge-${verdict === "live" ? "live" : verdict === "offline" ? "offline" : "stale"}`;
  b.textContent = word;
  b.setAttribute("aria-label", label);
}

/** A door's lock in words, by law 1: locked or unlocked only while the hub holds a
 * fresh signed report (and this page heard from the hub within 2 s). */
function doorLockWords(d, linkLost, lostSince) {
  if (!d.lock_id) return { state: "none", word: "NO LOCK", detail: "pair a lock for this door below" };
  const l = d.lock || {};
  if (linkLost) return { state: "unknown", word: "UNKNOWN", detail: `since ${hms(lostSince)} (connection to the hub lost)` };
  if (!l.fresh) {
    const since = l.unknown_since_ms;
    return { state: "unknown", word: "UNKNOWN", detail: since ? `since ${hms(since)}` : "no fresh report from the lock yet" };
  }
  const bits = [];
  if (isGarageDoor(d)) {
    // A garage door is its own barrier: closed is as locked as it gets.
    const moving = { opening: "OPENING", closing: "CLOSING", stopped: "STOPPED PART-WAY" }[l.motion];
    if (l.obstructed) bits.push("OBSTRUCTED: something is in the door's way");
    if (l.reported_at_ms) bits.push(`confirmed ${hms(l.reported_at_ms)}`);
    return { state: l.door || "unknown", word: moving || String(l.door || "unknown").toUpperCase(), detail: bits.join(" · ") };
  }
  if (l.door && l.door !== "unknown") bits.push(`door ${l.door}`);
  if (l.reported_at_ms) bits.push(`confirmed ${hms(l.reported_at_ms)}`);
  return { state: l.bolt || "unknown", word: String(l.bolt || "unknown").toUpperCase(), detail: bits.join(" · ") };
}

/** Whether the door's actuator is a garage-door opener (open/close, no bolt). */
function isGarageDoor(d) {
  return !!(d && d.lock && d.lock.actuator === "garage_opener");
}

/** The doors of a home: each door's lock (truthful), the cameras that watch it (only
 * they can vouch for it; the owner chooses), remote unlock and lock, recent activity,
 * and a new door. Updated in place every second with the device list. */
function doorsSection(home) {
  const list = h("ul", { class: "door-list" });
  const none = h("li", { class: "muted", text: "No door yet: add one, or pair a lock (it gets a door of its own)." });
  const items = new Map();
  const sec = { reload: async () => {} };
  let last = { doors: [], devs: [] };
  let lostSince = null;
  sec.update = (doors, devs, linkLost) => {
    if (linkLost) {
      if (!lostSince) lostSince = Date.now();
    } else {
      lostSince = null;
      last = { doors, devs };
    }
    const rows = last.doors;
    const seen = new Set();
    for (const d of rows) {
      seen.add(d.id);
      let it = items.get(d.id);
      if (!it) { it = doorItem(home, d, () => sec.reload(), () => sec.loadActivity()); items.set(d.id, it); list.append(it.li); }
      it.update(d, last.devs, linkLost, lostSince);
    }
    for (const [id, it] of items) if (!seen.has(id)) { it.li.remove(); items.delete(id); }
    if (!rows.length && !none.isConnected) list.append(none);
    if (rows.length) none.remove();
  };
  /** The owner's unlocks (override or not), locks and binding changes, per door. */
  sec.loadActivity = async () => {
    let tl;
    try { tl = await api("GET", `/homes/${encodeURIComponent(home.id)}/timeline?limit=200`, undefined, { timeoutMs: 3000 }); } catch { return; }
    for (const [id, it] of items) it.showActivity(tl.filter((t) => DOOR_KINDS.includes(t.kind) && doorOf(t) === id).slice(0, 4));
  };
  const name = h("input", { id: `doorname-${home.id}`, name: "name", required: true, maxlength: 80 });
  const err = h("p", { class: "error", role: "alert", hidden: true });
  const form = h("form", { class: "add-door" },
    h("label", { for: `doorname-${home.id}`, text: "New door" }),
    h("div", { class: "row nowrap" }, name, h("button", { type: "submit", class: "secondary", text: "Add door" })), err);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(err, null);
    try {
      const d = await api("POST", `/homes/${encodeURIComponent(home.id)}/doors`, { name: name.value });
      name.value = "";
      announce(`Door ${d.name} added. No camera watches it yet.`);
      await sec.reload();
    } catch (ex) { showError(err, ex); }
  });
  sec.el = h("section", { class: "doors", "aria-labelledby": `doors-${home.id}` },
    h("h3", { id: `doors-${home.id}`, text: "Doors" }), list, form);
  return sec;
}

const DOOR_KINDS = ["owner.unlock", "owner.lock", "door.changed"];
const doorOf = (t) => (t.detail && (t.detail.door_id || (t.detail.door && t.detail.door.door_id))) || null;

function doorActivityText(t) {
  const d = t.detail || {};
  if (t.kind === "owner.unlock") {
    if (!d.allowed) return `Your unlock was refused: ${(d.reasons || []).map(refusalWords).join(" ")}`;
    return d.camera_override ? "You unlocked it WITHOUT the camera (override, recorded)" : "You unlocked it";
  }
  if (t.kind === "owner.lock") return "You locked it";
  if (t.kind === "door.changed") return `Cameras changed: ${(d.camera_ids || []).length} now watch it`;
  return t.kind;
}

/** Why the hub refused the owner's unlock, in the owner's words. */
const REFUSALS = {
  no_camera_bound: "No camera watches this door.",
  camera_offline: "The door's camera is offline.",
  camera_stale: "The door's camera has sent no recent picture.",
  camera_clock_skew: "The door's camera clock is wrong, so its pictures cannot be trusted as live.",
  camera_frozen: "The door's camera picture has stopped changing.",
  camera_not_recording: "The door's camera is not recording.",
  hub_degraded: "The hub cannot vouch for the camera right now.",
  no_lock: "This door has no lock.",
  lock_offline: "The lock is not reachable.",
  parcel_mismatch: "The courier scanned another parcel than this delivery's.",
  outside_window: "It was outside the delivery window.",
  outside_geofence: "The courier was not at the address.",
  bad_position: "The courier's position was not usable.",
  not_assigned: "The courier is not assigned to this delivery.",
  owner_disabled: "You have turned in-home delivery off.",
  outside_owner_hours: "It was outside the hours you allow.",
  awaiting_owner_approval: "The merchant is waiting for your approval.",
  already_used: "This delivery's entry was already used.",
  delivery_ended: "The delivery had already ended.",
  delivery_compromised: "The delivery was stopped after a camera loss.",
};
const refusalWords = (code) => REFUSALS[code] || code.replaceAll("_", " ");
/** Reasons the owner's explicit override may set aside: only the camera's. */
const waivable = (code) => code.startsWith("camera_") || code === "no_camera_bound" || code === "hub_degraded";

/** The reason codes of an `entry_refused` answer (the hub names them in its message). */
function refusalCodes(ex) {
  const m = /\(([a-z_, ]+)\)/.exec(ex.message || "");
  return m ? m[1].split(",").map((s) => s.trim()).filter(Boolean) : [];
}

function doorItem(home, d0, reload, reloadActivity) {
  let d = d0;
  const nameEl = h("strong", { class: "door-name" });
  const lockBadge = h("span", { class: "lock-state" });
  const lockDetail = h("span", { class: "muted small door-lock-detail" });
  const lockLine = h("p", { class: "door-lock", role: "status", "aria-live": "polite" }, h("span", { text: "Lock: " }), lockBadge, " ", lockDetail);
  const watchers = h("ul", { class: "watchers" });
  const watchLine = h("div", { class: "door-watch" }, h("span", { class: "small", text: "Watched by:" }), watchers);
  const boxes = h("div", { class: "boxes" });
  const fieldStatus = h("p", { class: "muted small", "aria-live": "polite" });
  const save = h("button", { type: "button", class: "secondary", text: "Save cameras" });
  const legend = h("legend");
  const fieldset = h("fieldset", { class: "door-cameras" }, legend, boxes, save, fieldStatus);
  const edit = h("details", { class: "door-edit" }, h("summary", { text: "Change which cameras watch it" }), fieldset);
  const status = h("p", { class: "small door-status", "aria-live": "polite" });
  const activity = h("ol", { class: "timeline door-activity", "aria-label": "Recent activity" });
  let dirty = false;
  let boxFor = new Map();
  let pending = null; // {want, since}
  // The newest picture of the door's first camera, with its truthful age (from the
  // hub's headers: capture time on the hub's clock), refreshed every 5 s.
  const pictureImg = h("img", { class: "frame", alt: "", width: 160, height: 120 });
  const pictureAge = h("figcaption", { class: "small muted" });
  const picture = h("figure", { class: "door-picture", hidden: true }, pictureImg, pictureAge);
  let pictureUrl = null;
  let pictureCam = null;
  const loadPicture = async () => {
    if (!pictureCam) { picture.hidden = true; return; }
    try {
      const res = await fetch(`/api/v1/devices/${encodeURIComponent(pictureCam.id)}/frame.jpg`, { credentials: "same-origin", cache: "no-store" });
      if (!res.ok) { picture.hidden = true; return; }
      const ageMs = Number(res.headers.get("x-age-ms"));
      const url = URL.createObjectURL(await res.blob());
      pictureImg.src = url;
      pictureImg.alt = `Newest picture from ${pictureCam.name}`;
      if (pictureUrl) URL.revokeObjectURL(pictureUrl);
      pictureUrl = url;
      pictureAge.textContent = `${pictureCam.name}: captured ${age(ageMs)} ago`;
      picture.dataset.ageMs = String(ageMs);
      picture.hidden = false;
    } catch { /* the next turn tries again */ }
  };
  const pictureTimer = setInterval(loadPicture, 5000);
  app.views.push({ stop: () => { clearInterval(pictureTimer); if (pictureUrl) URL.revokeObjectURL(pictureUrl); } });
  const li = h("li", { class: "door" },
    h("div", { class: "door-head" }, nameEl, h("span", { class: "muted small door-flags" })),
    lockLine, watchLine, picture, edit);
  const controls = doorLockControls(d, status, (action) => {
    const garage = isGarageDoor(d);
    pending = { want: action === "lock" ? (garage ? "closed" : "locked") : (garage ? "open" : "unlocked"), since: Date.now(), limit: garage ? 40000 : 15000 };
    reload();
    reloadActivity();
  }, reloadActivity);
  li.append(controls, status, activity);
  boxes.addEventListener("change", () => { dirty = true; fieldStatus.textContent = "Not saved yet."; });
  save.addEventListener("click", async () => {
    const ids = [...boxFor.values()].filter((b) => b.checked).map((b) => b.value);
    save.disabled = true;
    try {
      await api("PATCH", `/homes/${encodeURIComponent(home.id)}/doors/${encodeURIComponent(d.id)}`, { camera_ids: ids });
      dirty = false;
      fieldStatus.textContent = ids.length
        ? `Saved: ${ids.length === 1 ? "1 camera watches" : `${ids.length} cameras watch`} ${d.name}.`
        : `Saved: no camera watches ${d.name}; nobody can be let in through it.`;
      await reload();
      reloadActivity();
    } catch (ex) { fieldStatus.textContent = `Not saved: ${ex.message}`; } finally { save.disabled = false; }
  });
  const update = (door, devs, linkLost, lostSince) => {
    d = door;
    controls.door = door;
    li.dataset.door = d.id;
    li.dataset.cameras = String((d.camera_ids || []).length);
    if (nameEl.textContent !== d.name) nameEl.textContent = d.name;
    const flags = d.accepts_deliveries ? "" : " · no deliveries through this door";
    li.querySelector(".door-flags").textContent = flags;
    legend.textContent = `Cameras that watch ${d.name}`;
    // The lock, truthfully.
    const lw = doorLockWords(d, linkLost, lostSince);
    li.dataset.lock = lw.state;
    lockBadge.textContent = lw.word;
    lockBadge.className = `lock-state lock-${lw.state}`;
    if (lockDetail.textContent !== lw.detail) lockDetail.textContent = lw.detail;
    controls.hidden = !d.lock_id;
    if (pending) {
      if (lw.state === pending.want) { status.textContent = `Confirmed by the lock: ${pending.want} at ${hms(Date.now())}.`; pending = null; }
      else if (Date.now() - pending.since > pending.limit) { status.textContent = `No confirmation after ${pending.limit / 1000} s; the door's state is shown above.`; pending = null; }
    }
    // The cameras that watch it, each with the hub's verdict.
    const cams = devs.filter((x) => x.kind === "camera");
    const bound = (d.camera_ids || []).map((id) => cams.find((c) => c.id === id) || { id, name: "a removed camera", revoked: true });
    const want = bound.map((c) => c.id).join(",");
    if (watchers.dataset.ids !== want) {
      watchers.dataset.ids = want;
      fill(watchers, bound.length ? bound.map((c) => h("li", { dataset: { camera: c.id } }, h("span", { class: "cam-name" }), " ", h("span", { class: "badge badge-small" })))
        : h("li", { class: "warn-text", text: "no camera: nobody can be let in through this door" }));
    }
    for (const c of bound) {
      const row = watchers.querySelector(`[data-camera="${CSS.escape(c.id)}"]`);
      if (!row) continue;
      const n = row.querySelector(".cam-name");
      if (n.textContent !== c.name) n.textContent = c.name;
      setVerdict(row.querySelector(".badge"), c.name, cameraVerdict(c, linkLost), linkLost);
    }
    li.dataset.watched = String(bound.some((c) => cameraVerdict(c, linkLost) === "live"));
    const first = bound.find((c) => !c.revoked) || null;
    if ((first && first.id) !== (pictureCam && pictureCam.id)) { pictureCam = first; loadPicture(); }
    // The binding editor: the home's cameras; the owner's unsaved choice is kept.
    const choices = cams.filter((c) => !c.revoked);
    const key = choices.map((c) => c.id).join(",");
    if (boxes.dataset.ids !== key) {
      boxes.dataset.ids = key;
      const was = new Map([...boxFor].map(([id, b]) => [id, b.checked]));
      boxFor = new Map();
      fill(boxes, choices.length ? choices.map((c) => {
        const id = `watch-${d.id}-${c.id}`;
        const box = h("input", { type: "checkbox", id, value: c.id });
        box.checked = dirty && was.has(c.id) ? was.get(c.id) : (d.camera_ids || []).includes(c.id);
        boxFor.set(c.id, box);
        return h("div", { class: "check" }, box, h("label", { for: id, text: c.name }));
      }) : h("p", { class: "muted small", text: "No camera in this home yet: pair one below." }));
      save.hidden = !choices.length;
    }
    for (const c of choices) {
      const l = boxes.querySelector(`label[for="watch-${CSS.escape(d.id)}-${CSS.escape(c.id)}"]`);
      if (l && l.textContent !== c.name) l.textContent = c.name;
      if (!dirty) boxFor.get(c.id).checked = (d.camera_ids || []).includes(c.id);
    }
  };
  const showActivity = (rows) => {
    fill(activity, rows.map((t) => h("li", { dataset: { kind: t.kind, override: t.detail && t.detail.camera_override ? "1" : "0" }, class: t.detail && t.detail.camera_override ? "incident" : "" },
      h("time", { text: hms(t.time_ms) }), " ", h("span", { text: doorActivityText(t) }))));
  };
  return { li, update, showActivity };
}

/**
 * Unlock and lock one door remotely, under the same rule as couriers: the door's own
 * camera must be watching. Refused only for camera reasons, the owner may take the
 * explicit second step "Unlock without camera"; that override is recorded as such on
 * the timeline, in the audit log and by the lock itself.
 */
function doorLockControls(d, status, onSent, onRefused) {
  const reasons = h("ul", { class: "reasons" });
  const override = h("button", { type: "button", class: "danger", id: `override-${d.id}`, text: "Unlock without camera (recorded as your override)" });
  const refusal = h("div", { class: "refusal", role: "alert", hidden: true },
    h("p", { class: "refusal-title", text: "Not unlocked. The door stays locked because:" }), reasons,
    h("p", { class: "small override-note", text: "No camera would see who comes in. You can still unlock it: that is your override, recorded on the timeline, in the audit log and in the lock's own log." }),
    override);
  let box;
  const send = async (action, withoutCamera) => {
    refusal.hidden = true;
    const door = box.door || d;
    status.textContent = action === "unlock" ? "Asking the hub…" : "Sending lock…";
    try {
      const r = await api("POST", `/doors/${encodeURIComponent(door.id)}/${action}`, action === "unlock" && withoutCamera ? { without_camera: true } : undefined);
      status.textContent = action === "unlock"
        ? `${r && r.camera_override ? "Unlocked WITHOUT the camera: recorded as your override." : "Unlock sent."} Waiting for the lock to confirm…`
        : "Lock sent. Waiting for the lock to confirm…";
      if (onSent) onSent(action);
    } catch (ex) {
      const codes = ex.code === "entry_refused" ? refusalCodes(ex) : [];
      if (!codes.length) { status.textContent = `Not done: ${ex.message}`; return; }
      status.textContent = "";
      fill(reasons, codes.map((c) => h("li", { dataset: { code: c }, text: refusalWords(c) })));
      // Only camera reasons can be overridden; a lock that is not there stays a refusal.
      const canOverride = action === "unlock" && !withoutCamera && codes.every(waivable);
      override.hidden = !canOverride;
      refusal.querySelector(".override-note").hidden = !canOverride;
      refusal.hidden = false;
      if (canOverride) override.focus();
      if (onRefused) onRefused();
    }
  };
  override.addEventListener("click", () => send("unlock", true));
  const [openWord, closeWord] = isGarageDoor(d) ? ["Open", "Close"] : ["Unlock", "Lock"];
  box = h("div", { class: "door-lock-controls" },
    h("div", { class: "row" },
      h("button", { type: "button", class: "secondary", dataset: { action: "unlock" }, text: openWord, "aria-label": `${openWord} ${d.name}`, on: { click: () => send("unlock", false) } }),
      h("button", { type: "button", dataset: { action: "lock" }, text: closeWord, "aria-label": `${closeWord} ${d.name}`, on: { click: () => send("lock", false) } })),
    refusal);
  return box;
}

/** What pairing a device for a door (or for none) will do, in words. */
function pairingHint(kind, door) {
  if (kind === "wifi_sensor") return "A Wi-Fi sensor watches the radio, not a door.";
  if (kind === "camera") return door
    ? `This camera will watch ${door.name}: while it is live, couriers can be let in there.`
    : "This camera will watch no door until you choose one under Doors; until then it vouches for nothing.";
  if (kind === "garage_opener") return door
    ? (door.lock_id ? `${door.name} already has a lock or opener: this one will get a new door named after it.` : `This opener will open and close ${door.name}; its own camera must watch it.`)
    : "This opener will get a new door named after it; bind the garage's camera to it under Doors.";
  if (kind === "lock") return door
    ? (door.lock_id ? `${door.name} already has a lock: this one will get a new door named after it.` : `This lock will be fitted to ${door.name}.`)
    : "This lock will get a new door named after it.";
  return door
    ? (door.contact_id ? `${door.name} already has a door sensor: this one will be on no door.` : `This sensor will report whether ${door.name} is open.`)
    : "This sensor goes on the home's only door without a sensor, if there is exactly one; otherwise on none.";
}

function addDeviceForm(home) {
  const uid = home.id;
  let doors = [];
  const door = h("select", { id: `door-${uid}`, name: "door", "aria-describedby": `door-hint-${uid}` });
  const hint = h("p", { class: "muted small", id: `door-hint-${uid}`, "aria-live": "polite" });
  const kind = h("select", { id: `kind-${uid}`, name: "kind" },
    h("option", { value: "camera", text: "Camera" }),
    h("option", { value: "lock", text: "Lock" }),
    h("option", { value: "contact_sensor", text: "Door sensor" }),
    h("option", { value: "garage_opener", text: "Garage-door opener" }),
    h("option", { value: "wifi_sensor", text: "Wi-Fi sensor" }));
  const doorField = h("div", {}, h("label", { for: `door-${uid}`, text: "For which door" }), door, hint);
  const name = h("input", { id: `devname-${uid}`, name: "name", required: true, maxlength: 100 });
  const err = h("p", { class: "error", role: "alert", hidden: true });
  const out = h("div", { class: "pairing", "aria-live": "polite" });
  let chosen = false; // the owner picked a door: keep it across refreshes
  const showHint = () => {
    doorField.hidden = kind.value === "wifi_sensor";
    const t = pairingHint(kind.value, doors.find((x) => x.id === door.value));
    if (hint.textContent !== t) hint.textContent = t;
  };
  const setDoors = (rows) => {
    const key = rows.map((x) => `${x.id}:${x.name}`).join("|");
    if (door.dataset.key !== key) {
      door.dataset.key = key;
      const keep = chosen ? door.value : (rows.length === 1 ? rows[0].id : "");
      fill(door, h("option", { value: "", text: "No door yet" }), rows.map((x) => h("option", { value: x.id, text: x.name })));
      door.value = rows.some((x) => x.id === keep) ? keep : "";
    }
    doors = rows;
    showHint();
  };
  door.addEventListener("change", () => { chosen = true; showHint(); });
  kind.addEventListener("change", showHint);
  const form = h("form", { class: "add-device" },
    h("h3", { text: "Add a device" }),
    h("label", { for: `kind-${uid}`, text: "Kind" }), kind,
    h("label", { for: `devname-${uid}`, text: "Name" }), name,
    doorField,
    err,
    h("button", { type: "submit", text: "Create pairing code" }),
    out);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(err, null);
    try {
      const forDoor = kind.value === "wifi_sensor" ? undefined : door.value || undefined;
      const r = await api("POST", `/homes/${encodeURIComponent(home.id)}/pairing-codes`, { kind: kind.value, name: name.value, door_id: forDoor });
      const agent = { contact_sensor: "contact", wifi_sensor: "wifi-sensor", garage_opener: "garage" }[kind.value] || kind.value;
      const https = location.protocol === "https:";
      const cmd = `threshold agent ${agent} --data-dir ./${kind.value} --hub ${location.origin}${https ? " --hub-ca hub-ca.pem" : ""} --pairing-code ${r.code}`;
      const loopback = ["127.0.0.1", "localhost", "[::1]"].includes(location.hostname);
      fill(out,
        h("p", { text: "Pairing code (works once, until " + hms(r.expires_at_ms) + "):" }),
        h("p", { class: "code", id: "pairing-code", text: r.code }),
        h("p", { class: "muted small", text: pairingHint(kind.value, doors.find((x) => x.id === forDoor)) }),
        h("p", { class: "muted small", text: "On the device, with the threshold program on it (the hub's own binary: the same container image, or built with cargo install --path crates/cli), run:" }),
        h("pre", { class: "cmd", id: "pairing-cmd", text: cmd }),
        https ? h("p", { class: "muted small" }, "First save this hub's certificate authority on the device as hub-ca.pem: ", h("a", { href: "/ca.pem", download: "hub-ca.pem", text: "ca.pem" }), ".") : null,
        loopback ? h("p", { class: "warn-text small", id: "pairing-loopback", text: `This page is open at ${location.hostname}, which reaches the hub only from this computer. A device elsewhere must use the hub's address on your network instead (start the hub on it, e.g. threshold demo --lan, and open this page there).` }) : null);
      announce(`Pairing code ${r.code.split("").join(" ")}`);
    } catch (ex) { showError(err, ex); }
  });
  setDoors([]);
  return { el: form, setDoors };
}

function addHomeForm() {
  const name = h("input", { id: "home-name", required: true, maxlength: 100 });
  const lat = h("input", { id: "home-lat", type: "number", step: "any", min: -90, max: 90, required: true });
  const lon = h("input", { id: "home-lon", type: "number", step: "any", min: -180, max: 180, required: true });
  const err = h("p", { class: "error", role: "alert", hidden: true });
  const here = h("button", { type: "button", class: "secondary", text: "Use my location" });
  here.addEventListener("click", () => navigator.geolocation && navigator.geolocation.getCurrentPosition((p) => {
    lat.value = p.coords.latitude.toFixed(6);
    lon.value = p.coords.longitude.toFixed(6);
  }, () => showError(err, { message: "Location not available; type it in." })));
  const form = h("form", { class: "card" },
    h("h2", { text: "Add a home" }),
    h("label", { for: "home-name", text: "Name" }), name,
    h("label", { for: "home-lat", text: "Latitude" }), lat,
    h("label", { for: "home-lon", text: "Longitude" }), lon,
    here, err, h("button", { type: "submit", text: "Add home" }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api("POST", "/homes", { name: name.value, lat: Number(lat.value), lon: Number(lon.value), time_zone: Intl.DateTimeFormat().resolvedOptions().timeZone || undefined });
      route();
    } catch (ex) { showError(err, ex); }
  });
  return form;
}

async function devicePage(id) {
  const d = await api("GET", `/devices/${encodeURIComponent(id)}`);
  const body = h("div", { class: "stack" },
    h("p", {}, h("a", { href: "#/", text: "← Home" })),
    h("h1", { text: d.name }),
    h("p", { class: "muted", text: `${kindName(d.kind)} · enrolled ${dateTime(d.enrolled_ms)}${d.revoked ? " · revoked" : ""}` }));
  if (d.kind === "camera") {
    const v = new LiveView(d, { socket: !!app.features.liveSocket });
    app.views.push(v);
    body.append(h("section", { class: "card", "aria-label": "Live view" }, v.el));
    body.append(await sourceProblem(d));
  }
  if (d.kind === "lock") {
    const v = new LockView(d);
    app.views.push(v);
    body.append(h("section", { class: "card", "aria-label": "Lock" }, v.el, lockControls(d, v)));
  }
  if (d.kind === "garage_opener") {
    const v = new LockView(d);
    app.views.push(v);
    body.append(h("section", { class: "card", "aria-label": "Garage door" }, v.el,
      h("p", { class: "muted small", text: "Open and close it from its door on the home screen: opening is held to the door's camera like any unlock." })));
    // The opener said something its agent could not understand, and nothing it did understand since.
    body.append(await sourceProblem(d, "device.opener_message_refused", ["device.door_opened", "device.door_closed", "device.door_stopped"], "Opener message not understood at"));
  }
  if (d.kind === "contact_sensor") {
    body.append(h("p", { text: `Door: ${(d.state && d.state.door) || "unknown"}` }));
  }
  const rm = h("button", { type: "button", class: "danger", text: "Revoke device" });
  rm.addEventListener("click", async () => {
    if (!confirm(`Revoke ${d.name}? It will stop being trusted at once.`)) return;
    await api("DELETE", `/devices/${encodeURIComponent(d.id)}`);
    location.hash = "#/";
  });
  if (!d.revoked) body.append(rm);
  fill(main, body);
}

/** Why a camera gives no pictures, in its own words: the newest of its signed
 * `source_problem` / `source_recovered` events (RTSP stream stalled, password refused,
 * no capture times, ...). Shown while the problem lasts; never a reason to show LIVE. */
async function sourceProblem(d, problem = "device.source_problem", cleared = ["device.source_recovered"], label = "Camera problem since") {
  const box = h("p", { id: "source-problem", class: "error", role: "status", hidden: true });
  let tl = [];
  try { tl = await api("GET", `/homes/${encodeURIComponent(d.home_id)}/timeline?limit=1000`, undefined, { timeoutMs: 3000 }); } catch { return box; }
  const last = tl.find((t) => t.device_id === d.id && (t.kind === problem || cleared.includes(t.kind)));
  if (last && last.kind === problem) {
    const det = (last.detail && last.detail.detail) || {};
    box.dataset.code = det.code || "";
    box.textContent = `${label} ${hms(last.time_ms)}: ${det.reason || det.code || "unknown"}`;
    box.hidden = false;
  }
  return box;
}

/** Remote lock/unlock of the lock's door, under the entry rule (with the recorded
 * override). The state shown is the confirmed one. */
function lockControls(d, view) {
  const paths = app.features.lockControl || [];
  const status = h("p", { class: "muted", "aria-live": "polite", id: "lock-command-status" });
  if (app.features.paths && app.features.paths.includes("/api/v1/doors/{id}/unlock")) {
    const box = h("div", { class: "row" });
    api("GET", `/homes/${encodeURIComponent(d.home_id)}/doors`).then((doors) => {
      const door = doors.find((x) => x.lock_id === d.id);
      if (!door) { box.append(h("p", { class: "muted small", text: "This lock is on no door." })); return; }
      const controls = doorLockControls(door, status, (action) => {
        const want = action === "lock" ? "locked" : "unlocked";
        const started = Date.now();
        const wait = setInterval(() => {
          if (view.el.dataset.state === want) { clearInterval(wait); status.textContent = `Confirmed by the lock: ${want} at ${hms(Date.now())}.`; }
          else if (Date.now() - started > 15000) { clearInterval(wait); status.textContent = "No confirmation from the lock after 15 s; its state is shown above."; }
        }, 250);
        app.views.push({ stop: () => clearInterval(wait) });
      });
      controls.querySelector("[data-action=unlock]").id = "remote-unlock";
      controls.querySelector("[data-action=lock]").id = "remote-lock";
      box.append(controls);
    }).catch(() => box.append(h("p", { class: "muted small", text: "Could not load this lock's door." })));
    return h("div", {}, box, status);
  }
  if (!paths.length) return h("p", { class: "muted small", text: "Remote lock and unlock are not available on this hub yet." });
  const send = async (action) => {
    let path; let body;
    if (paths.includes(`/api/v1/homes/{id}/lock/${action}`)) path = `/homes/${encodeURIComponent(d.home_id)}/lock/${action}`;
    else {
      const byDevice = paths.find((p) => p.endsWith(`/${action}`) && p.includes("/devices/"));
      const cmd = paths.find((p) => p.endsWith("/command"));
      if (byDevice) path = byDevice.replace("/api/v1", "").replace(/\{[^}]+\}/, encodeURIComponent(d.id));
      else if (cmd) { path = cmd.replace("/api/v1", "").replace(/\{[^}]+\}/, encodeURIComponent(d.id)); body = { command: action }; }
      else { status.textContent = "Not supported by this hub."; return; }
    }
    status.textContent = `Sent "${action}"; waiting for the lock to confirm…`;
    try {
      await api("POST", path, body === undefined ? {} : body);
      const want = action === "lock" ? "locked" : "unlocked";
      const started = Date.now();
      const wait = setInterval(() => {
        if (view.el.dataset.state === want) { clearInterval(wait); status.textContent = `Confirmed by the lock: ${want} at ${hms(Date.now())}.`; }
        else if (Date.now() - started > 15000) { clearInterval(wait); status.textContent = `No confirmation from the lock after 15 s; its state is shown above.`; }
      }, 250);
      app.views.push({ stop: () => clearInterval(wait) });
    } catch (ex) { status.textContent = `Refused: ${ex.message}`; }
  };
  return h("div", { class: "row" },
    h("button", { type: "button", id: "remote-lock", text: "Lock", on: { click: () => send("lock") } }),
    h("button", { type: "button", id: "remote-unlock", class: "secondary", text: "Unlock", on: { click: () => send("unlock") } }),
    status);
}

const UPCOMING = ["scheduled"];
const IN_PROGRESS = ["inside", "delivered", "camera_lost"];
const DONE = ["completed", "ended_after_camera_loss", "ended_unverified", "expired"];

/** A delivery's state in words for the owner. */
function stateWords(s) {
  return {
    scheduled: "scheduled",
    inside: "courier inside",
    delivered: "delivered, waiting for the lock",
    camera_lost: "INCIDENT: the camera stopped watching",
    completed: "completed: closed and locked",
    ended_after_camera_loss: "ended after the camera was lost: closed and locked",
    ended_unverified: "ENDED UNVERIFIED: not confirmed locked",
    expired: "expired",
  }[s] || s;
}

async function deliveriesPage() {
  const list = await api("GET", "/deliveries");
  const groups = [
    ["In progress", list.filter((d) => IN_PROGRESS.includes(d.state)), "progress"],
    ["Upcoming", list.filter((d) => UPCOMING.includes(d.state)), "upcoming"],
    ["Done", list.filter((d) => DONE.includes(d.state)), "done"],
  ];
  // The list does not say which upcoming deliveries wait for the owner's approval;
  // each upcoming one is asked (there are few).
  const waiting = new Set();
  await Promise.all(list.filter((d) => d.state === "scheduled").slice(0, 50).map(async (d) => {
    const full = await api("GET", `/deliveries/${encodeURIComponent(d.id)}`).catch(() => null);
    if (full && full.needs_approval) waiting.add(d.id);
  }));
  const body = h("div", { class: "stack" }, h("h1", { text: "Deliveries" }));
  for (const [title, items, key] of groups) {
    body.append(h("section", { class: "card", "aria-label": title, dataset: { group: key } },
      h("h2", { text: title }),
      items.length ? h("ul", { class: "deliveries" }, items.map((d) => h("li", { dataset: { delivery: d.id, state: d.state, approval: waiting.has(d.id) ? "needed" : "" } },
        h("a", { href: `#/delivery/${encodeURIComponent(d.id)}`, text: `Parcel ${d.parcel_ref}` }),
        h("span", { class: "muted small", text: ` · ${hms(d.window_start_ms)}–${hms(d.window_end_ms)} · ${stateWords(d.state)}` }),
        waiting.has(d.id) ? h("strong", { class: "needs-approval", text: " · needs your approval" }) : null)))
        : h("p", { class: "muted", text: "None." })));
  }
  const reload = debounce(() => route(), 500);
  app.refreshers.push((ev) => { if (String(ev.type).startsWith("delivery.")) reload(); });
  fill(main, body);
}

function timelineText(t) {
  const d = t.detail || {};
  switch (t.kind) {
    case "delivery.scheduled": return "Scheduled";
    case "decision": return d.allowed ? "Entry allowed" : `Entry refused: ${(d.reasons || []).map(refusalWords).join(" ")}`;
    case "unlock_sent": return "Unlock capability sent to the lock";
    case "delivered":
    case "delivery.delivered": return "Courier says: delivered";
    case "completed":
    case "delivery.completed": return "Completed: door closed and locked (confirmed)";
    case "incident.camera_lost": return `INCIDENT: camera went ${d.to || "offline"}`;
    case "delivery.camera_lost": return `INCIDENT: the camera stopped watching (${(d.camera || "not live").replaceAll("_", " ")}); courier told to leave`;
    case "delivery.ended_after_camera_loss": return "Incident ended: door closed and locked (confirmed)";
    case "delivery.ended_unverified": return "ENDED UNVERIFIED: the door was not confirmed closed and locked in time";
    case "delivery.expired": return "Expired: no entry in the window";
    case "door.opened": return "Door opened (authorised)";
    case "incident.door_opened_unwatched": return "INCIDENT: door opened while the camera was not watching";
    case "incident.door_opened_after_delivery": return "INCIDENT: door opened after delivery";
    case "incident.unauthorized_entry": return "INCIDENT: door opened without authorisation";
    case "owner.unlock": return d.allowed ? `You unlocked ${d.camera_override ? "WITHOUT the camera (override)" : "the door"}` : `Your unlock was refused: ${(d.reasons || []).map(refusalWords).join(" ")}`;
    case "device.door_opened": return "Door opened";
    case "device.door_closed": return "Door closed";
    case "device.bolt_locked": return "The lock locked";
    case "device.bolt_unlocked": return "The lock unlocked";
    case "device.token_accepted": return "The lock accepted the unlock capability";
    case "device.relocked": return "The lock relocked by itself";
    case "device.source_problem": return `Camera problem: ${(d.detail && (d.detail.reason || d.detail.code)) || "unknown"}`;
    case "device.source_recovered": return "Camera pictures flow again";
    case "device.close_commanded": return d.detail && d.detail.reason === "auto_close" ? "The garage opener closed the door by its own rule (left open too long)" : "The garage opener was told to close the door";
    case "device.close_while_obstructed": return "The garage was told to close while its safety sensor reported an obstruction";
    case "device.door_stopped": return "The garage door stopped part-way";
    case "device.obstruction_detected": return "OBSTRUCTION: the garage's safety sensor sees something in the door's way";
    case "device.obstruction_cleared": return "The garage's safety sensor is clear again";
    case "device.opener_message_refused": return `The garage opener's message was not understood: ${(d.detail && d.detail.reason) || "no reason given"}`;
    case "liveness": return `${d.from || "?"} → ${d.to || "?"}`;
    default:
      if (t.kind.startsWith("device.")) return `${t.kind.slice(7).replaceAll("_", " ")}${d.late ? " (reported late)" : ""}`;
      return t.kind.replaceAll("_", " ");
  }
}

/** Timeline entries worth seeing on camera: the recording at that moment is their evidence. */
const EVIDENCE_KINDS = new Set(["decision", "door.opened", "device.door_closed", "device.bolt_locked", "device.close_commanded",
  "device.obstruction_detected", "delivery.delivered", "delivery.camera_lost", "delivery.completed", "delivery.ended_after_camera_loss", "delivery.ended_unverified"]);

/** "See": moves the delivery's recording to the frame nearest this entry. */
function evidenceButton(t) {
  const b = h("button", { type: "button", class: "link small evidence", text: "see", "aria-label": `See the recording at ${hms(t.time_ms)}` });
  b.addEventListener("click", () => {
    const rec = document.getElementById("recording");
    if (rec && rec.seek && rec.seek(t.time_ms)) rec.scrollIntoView({ block: "nearest" });
    else announce("No recorded frame near that moment.");
  });
  return b;
}

async function deliveryPage(id) {
  const d = await api("GET", `/deliveries/${encodeURIComponent(id)}`);
  const body = h("div", { class: "stack" },
    h("p", {}, h("a", { href: "#/deliveries", text: "← Deliveries" })),
    h("h1", { text: `Parcel ${d.parcel_ref}` }),
    h("p", { class: "muted", text: `Window ${dateTime(d.window_start_ms)} – ${hms(d.window_end_ms)} · ${d.placement === "in_garage" ? "in garage" : "in home"}` }),
    h("p", {}, h("span", { text: "State: " }), h("strong", { id: "delivery-state", dataset: { state: d.state }, text: stateWords(d.state) }), d.compromised ? h("strong", { class: "error", text: " · INCIDENT: the camera was lost during this delivery" }) : null),
    d.door_name ? h("p", { class: "muted", text: `Door: ${d.door_name}` }) : null);
  if (d.state === "scheduled" && d.needs_approval) body.append(await approvalControls(d));
  if (IN_PROGRESS.includes(d.state)) {
    const devs = await api("GET", `/homes/${encodeURIComponent(d.home_id)}/devices`).catch(() => []);
    const doors = await api("GET", `/homes/${encodeURIComponent(d.home_id)}/doors`).catch(() => []);
    const door = doors.find((x) => x.id === d.door_id);
    const watching = door ? door.camera_ids : devs.map((x) => x.id);
    for (const cam of devs.filter((x) => x.kind === "camera" && !x.revoked && watching.includes(x.id))) {
      const v = new LiveView(cam, { socket: !!app.features.liveSocket });
      app.views.push(v);
      body.append(h("section", { class: "card", "aria-label": `Live view ${cam.name}` }, h("h2", { text: cam.name }), v.el));
    }
    // The delivery's door's lock (every lock only for a delivery without a door).
    for (const lock of devs.filter((x) => (x.kind === "lock" || x.kind === "garage_opener") && !x.revoked && (!door || x.id === door.lock_id))) {
      const v = new LockView(lock);
      app.views.push(v);
      body.append(h("section", { class: "card", "aria-label": "Lock" }, v.el));
    }
  }
  const tl = (d.timeline || []).slice().sort((a, b) => a.time_ms - b.time_ms);
  body.append(h("section", { class: "card", "aria-label": "Timeline" },
    h("h2", { text: "Timeline" }),
    tl.length ? h("ol", { class: "timeline" }, tl.map((t) => h("li", { dataset: { kind: t.kind }, class: t.kind.startsWith("incident") ? "incident" : "" },
      h("time", { text: hms(t.time_ms) }), " ", h("span", { text: timelineText(t) }),
      t.who ? h("span", { class: "muted small who", text: ` · ${t.who}` }) : null,
      EVIDENCE_KINDS.has(t.kind) || t.kind.startsWith("incident.") ? evidenceButton(t) : null))) : h("p", { class: "muted", text: "Nothing yet." })));
  if (app.features.clips && d.state !== "scheduled") {
    let sec = await clipsSection(d);
    body.append(sec);
    // Footage a camera kept during an outage arrives later: refresh while watching.
    const t = setInterval(async () => {
      const next = await clipsSection(d);
      if (next.dataset.frames !== sec.dataset.frames && sec.isConnected) { sec.replaceWith(next); sec = next; }
    }, 3000);
    app.views.push({ stop: () => clearInterval(t) });
  }
  const reload = debounce(() => route(), 400);
  app.refreshers.push((ev) => {
    if ((ev.data && ev.data.delivery_id === d.id) || ev.type === "alert") reload();
  });
  fill(main, body);
}

/** A delivery waiting for the owner: approve this one, or trust its merchant for good. */
async function approvalControls(d) {
  const hid = encodeURIComponent(d.home_id);
  // A trusted merchant's delivery waits only because the home asks for every approval.
  const merchants = await api("GET", `/homes/${hid}/merchants`).catch(() => []);
  const trusted = merchants.some((m) => m.dispatcher_id === d.dispatcher_id);
  const status = h("p", { "aria-live": "polite", id: "approval-status" });
  const btn = h("button", { type: "button", id: "approve", text: "Approve this delivery" });
  btn.addEventListener("click", async () => {
    btn.disabled = true;
    try {
      await api("POST", `/deliveries/${encodeURIComponent(d.id)}/approve`);
      announce("Delivery approved.");
      route();
    } catch (e) { status.textContent = e.message; btn.disabled = false; }
  });
  const trust = h("button", { type: "button", class: "secondary", id: "trust-merchant", text: "Always allow this merchant" });
  trust.addEventListener("click", async () => {
    trust.disabled = true;
    try {
      await api("PUT", `/homes/${hid}/merchants/${encodeURIComponent(d.dispatcher_id)}`);
      const now = await api("GET", `/deliveries/${encodeURIComponent(d.id)}`);
      trust.remove();
      sec.dataset.merchant = "trusted";
      if (now.needs_approval) {
        status.textContent = "This merchant is now allowed. Your home still asks you to approve each delivery (Settings), so approve this one too.";
      } else {
        btn.remove();
        sec.dataset.approval = "done";
        status.textContent = "This merchant is now allowed to deliver inside without asking; this delivery no longer waits for you. You can remove the merchant in Settings.";
      }
      status.focus();
    } catch (e) { status.textContent = e.message; trust.disabled = false; }
  });
  status.tabIndex = -1;
  const why = trusted
    ? "Your home asks you to approve each delivery. The courier cannot enter until you approve this one."
    : "This delivery comes from a merchant you have not allowed to deliver inside. The courier cannot enter until you approve it.";
  const sec = h("section", { class: "card approval", "aria-labelledby": "approval-title", dataset: { approval: "needed", merchant: trusted ? "trusted" : "unknown" } },
    h("h2", { id: "approval-title", text: "Needs your approval" }),
    h("p", { text: why }),
    h("div", { class: "row" }, btn, trusted ? null : trust), status);
  return sec;
}

/**
 * A delivery's recording, when the hub has the recording API: each camera's segments
 * (recovered ones marked: uploaded from the camera's own disk after an outage), gaps,
 * a frame-by-frame player and the AVI download.
 */
async function clipsSection(d) {
  const sec = h("section", { class: "card", id: "recording", "aria-label": "Recording" }, h("h2", { text: "Recording" }));
  if (!app.features.paths.includes("/api/v1/deliveries/{id}/recording")) {
    sec.append(h("p", { class: "muted", text: "Recordings are not available on this hub." }));
    return sec;
  }
  let r;
  try {
    r = await api("GET", `/deliveries/${encodeURIComponent(d.id)}/recording`);
  } catch (e) {
    sec.append(h("p", { class: "muted", text: e.status === 404 ? "No recording for this delivery." : `Recording not available: ${e.message}` }));
    return sec;
  }
  if (!r.frames.length) { sec.append(h("p", { class: "muted", text: "No frames recorded yet." })); return sec; }
  sec.dataset.frames = String(r.frames.length);
  const recovered = r.frames.filter((f) => f.recovered).length;
  if (recovered) sec.append(h("p", { class: "tag-recovered", text: `${recovered} frames were recovered from the camera's own storage after an outage.` }));
  const devs = await api("GET", `/homes/${encodeURIComponent(d.home_id)}/devices`).catch(() => []);
  const nameOf = (id) => (devs.find((x) => x.id === id) || {}).name || `Camera ${id.slice(0, 8)}`;
  for (const cam of r.cameras) {
    sec.append(h("h3", { text: `${nameOf(cam.device_id)} · ${cam.frames} frames` }));
    sec.append(h("ol", { class: "segments" }, cam.segments.map((s) => h("li", {
      class: s.recovered ? "clip-recovered" : "", dataset: { recovered: s.recovered ? "1" : "0" },
    }, h("time", { text: `${hms(s.from_ms)} – ${hms(s.to_ms)}` }), ` · ${s.frames} frames `,
      s.recovered ? h("strong", { class: "tag-recovered", text: "RECOVERED" }) : h("span", { class: "muted", text: "live" })))));
    if (cam.gaps.length) sec.append(h("p", { class: "error", text: `Missing frames: ${cam.gaps.map((g) => `${g.from_seq}–${g.to_seq}`).join(", ")}` }));
    if (cam.avi_url && cam.avi_url.startsWith("/api/v1/")) sec.append(h("p", {}, h("a", { href: cam.avi_url, download: "", text: "Download the clip (AVI)" })));
  }
  const p = player(r.frames);
  sec.seek = p.seek;
  sec.append(p);
  return sec;
}

/** Shows the recorded frames at their capture times; marks recovered ones. */
function player(frames) {
  const img = h("img", { class: "clip-img", alt: "Recorded frame", width: 320, height: 240 });
  const cap = h("p", { class: "small", "aria-live": "off" });
  const range = h("input", { type: "range", min: 0, max: frames.length - 1, value: 0, id: "clip-pos", "aria-label": "Position in the recording" });
  const play = h("button", { type: "button", text: "Play" });
  let i = 0; let timer = null;
  const show = (k) => {
    i = Math.max(0, Math.min(frames.length - 1, k));
    const f = frames[i];
    if (f.url && f.url.startsWith("/api/v1/")) img.src = f.url;
    range.value = String(i);
    cap.textContent = `${hms(f.capture_ms)} · frame ${f.seq}${f.recovered ? " · RECOVERED" : ""}`;
    cap.className = f.recovered ? "small tag-recovered" : "small";
  };
  const stopPlay = () => { clearTimeout(timer); timer = null; play.textContent = "Play"; };
  const step = () => {
    if (i >= frames.length - 1) { stopPlay(); return; }
    const gap = Math.min(1000, Math.max(40, frames[i + 1].capture_ms - frames[i].capture_ms));
    show(i + 1);
    timer = setTimeout(step, gap);
  };
  play.addEventListener("click", () => { if (timer) stopPlay(); else { play.textContent = "Pause"; if (i >= frames.length - 1) show(0); step(); } });
  range.addEventListener("input", () => { stopPlay(); show(Number(range.value)); });
  app.views.push({ stop: stopPlay });
  show(0);
  const el = h("div", { class: "player" }, img, cap, range, play);
  // The frame captured nearest `timeMs` (within 10 s), if any: evidence for a timeline entry.
  el.seek = (timeMs) => {
    let best = -1;
    frames.forEach((f, k) => { if (best < 0 || Math.abs(f.capture_ms - timeMs) < Math.abs(frames[best].capture_ms - timeMs)) best = k; });
    if (best < 0 || Math.abs(frames[best].capture_ms - timeMs) > 10000) return false;
    stopPlay();
    show(best);
    return true;
  };
  return el;
}

async function alertsPage() {
  await loadAlerts();
  const list = h("ul", { class: "alerts" });
  const render = () => fill(list, app.alerts.length ? app.alerts.map((a) => {
    const ack = h("button", { type: "button", class: "secondary", text: "Acknowledge", "aria-label": `Acknowledge: ${a.message}` });
    ack.addEventListener("click", async () => {
      ack.disabled = true;
      try {
        await api("POST", `/alerts/${encodeURIComponent(a.id)}/ack`);
        a.acked_ms = Date.now();
        // The banner of an acknowledged alert has said what it had to say.
        if (critical.dataset.alertId === a.id) critical.hidden = true;
        updateAlertCount(); render(); announce("Alert acknowledged");
      } catch (e) { ack.disabled = false; announce(e.message); }
    });
    return h("li", { class: `alert sev-${a.severity === "critical" ? "critical" : a.severity === "warning" ? "warning" : "info"}${a.acked_ms ? " acked" : ""}`, dataset: { alert: a.id, kind: a.kind, severity: a.severity } },
      h("div", {}, h("strong", { text: a.severity.toUpperCase() }), " ", h("time", { text: dateTime(a.created_ms) })),
      h("p", { class: "alert-message", text: a.message }),
      a.delivery_id ? h("a", { href: `#/delivery/${encodeURIComponent(a.delivery_id)}`, text: "Delivery" }) : null,
      a.acked_ms ? h("span", { class: "muted small", text: ` Acknowledged ${hms(a.acked_ms)}` }) : ack);
  }) : h("li", { class: "muted", text: "No alerts." }));
  render();
  app.refreshers.push((ev) => { if (ev.type === "alert") render(); });
  fill(main, h("div", { class: "stack" }, h("h1", { text: "Alerts" }), list));
}

const DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const toMin = (v) => { const [a, b] = v.split(":").map(Number); return a * 60 + b; };
const toHHMM = (m) => `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;

async function settingsPage() {
  const homes = await api("GET", "/homes");
  const body = h("div", { class: "stack" }, h("h1", { text: "Settings" }));
  for (const home of homes) body.append(homeSettings(home));
  if (app.features.paths.includes("/api/v1/homes/{id}/guests")) for (const home of homes) body.append(await guestsSection(home));
  if (app.features.paths.includes("/api/v1/webhooks")) body.append(await webhooksSection());
  if (!homes.length) body.append(h("p", { text: "Add a home first." }));
  body.append(await pushSection());
  body.append(trustSection(homes));
  fill(main, body);
}

/** Trusting this hub on a phone (the /trust page), and each home's audit record to keep. */
function trustSection(homes) {
  const exportPath = (home) => `/api/v1/homes/${encodeURIComponent(home.id)}/audit/export`;
  const records = homes.filter(() => app.features.paths.includes("/api/v1/homes/{id}/audit/export")).map((home) =>
    h("li", {}, h("a", { href: exportPath(home), download: `threshold-audit-${home.id}.jsonl`, text: `Audit record of ${home.name}` })));
  return h("section", { class: "card", id: "trust", "aria-labelledby": "trust-title" },
    h("h2", { id: "trust-title", text: "This hub" }),
    h("p", {}, h("a", { href: "/trust", id: "trust-link", text: "Trust this hub on a phone" }),
      h("span", { class: "muted", text: ": its certificate's fingerprint, how to install it, and a QR code to open the app on the phone." })),
    records.length ? h("ul", { class: "plain" }, records) : null,
    records.length ? h("p", { class: "muted small", text: "Keep the audit record somewhere the hub cannot write; check it with threshold audit verify --export FILE --key KEY --home ID." }) : null);
}

function homeSettings(home) {
  const u = home.id;
  const hours = home.allowed_hours || {};
  const limited = hours.start_minute !== undefined;
  const enabled = h("input", { type: "checkbox", id: `inhome-${u}`, checked: home.in_home_enabled });
  const approval = h("input", { type: "checkbox", id: `approval-${u}`, checked: home.approval_required });
  const restrict = h("input", { type: "checkbox", id: `restrict-${u}`, checked: limited });
  const start = h("input", { type: "time", id: `start-${u}`, value: toHHMM(limited ? hours.start_minute : 480) });
  const end = h("input", { type: "time", id: `end-${u}`, value: toHHMM(limited ? hours.end_minute : 1200) });
  const days = DAYS.map((name, i) => h("label", { class: "day" },
    h("input", { type: "checkbox", value: i + 1, checked: !limited || !hours.days || hours.days.includes(i + 1) }), name));
  const status = h("p", { "aria-live": "polite", class: "muted" });
  // The home's time zone (an IANA name); a home without one takes this browser's.
  const zone = home.time_zone || Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const merchants = h("ul", { class: "merchants" });
  const loadMerchants = async () => {
    const ms = await api("GET", `/homes/${encodeURIComponent(home.id)}/merchants`).catch(() => []);
    fill(merchants, ...ms.map((m) => {
      const rm = h("button", { type: "button", class: "secondary", text: "Remove", "aria-label": `Remove ${m.name}: its deliveries will wait for your approval` });
      rm.addEventListener("click", async () => {
        rm.disabled = true;
        try {
          await api("DELETE", `/homes/${encodeURIComponent(home.id)}/merchants/${encodeURIComponent(m.dispatcher_id)}`);
          announce(`${m.name} removed: its deliveries will wait for your approval.`);
        } catch (e) { announce(e.message); }
        loadMerchants();
      });
      return h("li", { class: "row", dataset: { merchant: m.dispatcher_id } },
        h("span", {}, h("strong", { text: m.name }), h("span", { class: "muted small", text: ` allowed since ${dateTime(m.trusted_ms)}` })), rm);
    }));
    if (!ms.length) merchants.append(h("li", { class: "muted", text: "None: every delivery waits for your approval." }));
  };
  loadMerchants();
  const form = h("form", { class: "card", dataset: { home: home.id } },
    h("h2", { text: home.name }),
    h("div", { class: "check" }, enabled, h("label", { for: `inhome-${u}`, text: "Allow in-home delivery" })),
    h("div", { class: "check" }, approval, h("label", { for: `approval-${u}`, text: "Ask me to approve each delivery" })),
    h("div", { class: "check" }, restrict, h("label", { for: `restrict-${u}`, text: "Only at these hours" })),
    h("fieldset", {}, h("legend", { text: `Allowed hours (local time in ${zone})` }),
      h("label", { for: `start-${u}`, text: "From" }), start,
      h("label", { for: `end-${u}`, text: "To" }), end,
      h("div", { class: "days", role: "group", "aria-label": "Days" }, days)),
    h("button", { type: "submit", text: "Save" }), status,
    h("h3", { text: "Merchants allowed to deliver inside" }), merchants);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const allowed = restrict.checked ? {
      start_minute: toMin(start.value), end_minute: toMin(end.value),
      days: days.map((l) => l.querySelector("input")).filter((c) => c.checked).map((c) => Number(c.value)),
    } : {};
    try {
      await api("PUT", `/homes/${encodeURIComponent(home.id)}/settings`, { in_home_enabled: enabled.checked, approval_required: approval.checked, allowed_hours: allowed, time_zone: zone });
      status.textContent = `Saved at ${hms(Date.now())}.`;
    } catch (ex) { status.textContent = `Not saved: ${ex.message}`; }
  });
  return form;
}

function b64urlBytes(s) {
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** Web Push: critical alerts as system notifications while no page is open. */
async function pushSection() {
  const status = h("p", { id: "push-status", "aria-live": "polite" });
  const sec = h("section", { class: "card", id: "push", "aria-labelledby": "push-title" },
    h("h2", { id: "push-title", text: "Notifications" }),
    h("p", { class: "muted", text: "Alerts appear on this page live while it is open." }), status);
  let key;
  try { key = (await api("GET", "/push/key")).public_key; } catch {
    status.textContent = "Push notifications are not available on this hub.";
    return sec;
  }
  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
    status.textContent = "This browser cannot receive push notifications.";
    return sec;
  }
  const on = h("button", { type: "button", id: "push-on", text: "Notify me of critical alerts on this device" });
  const off = h("button", { type: "button", id: "push-off", class: "secondary", text: "Stop notifications on this device" });
  sec.append(on, off);
  const show = async () => {
    const reg = await navigator.serviceWorker.getRegistration("/");
    const sub = reg && await reg.pushManager.getSubscription();
    on.hidden = !!sub;
    off.hidden = !sub;
    status.textContent = sub ? "Critical alerts are pushed to this device." : "Push notifications are off on this device.";
    status.dataset.state = sub ? "on" : "off";
  };
  on.addEventListener("click", async () => {
    on.disabled = true;
    try {
      const reg = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
      await navigator.serviceWorker.ready;
      if (await Notification.requestPermission() !== "granted") throw new Error("Notifications are blocked for this site in the browser's settings.");
      const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64urlBytes(key) });
      await api("POST", "/push/subscriptions", sub.toJSON());
      await show();
      announce("Notifications on");
    } catch (e) {
      status.textContent = `Could not turn on notifications: ${e.message || e}`;
    } finally { on.disabled = false; }
  });
  off.addEventListener("click", async () => {
    const reg = await navigator.serviceWorker.getRegistration("/");
    const sub = reg && await reg.pushManager.getSubscription();
    if (sub) {
      await api("DELETE", "/push/subscriptions", { endpoint: sub.endpoint }).catch(() => {});
      await sub.unsubscribe().catch(() => {});
    }
    await show();
  });
  await show().catch(() => { status.textContent = "Push notifications are off on this device."; });
  return sec;
}

/** Webhooks: add (the signing secret is shown once), remove, and each one's delivery log. */
async function webhooksSection() {
  const sec = h("section", { class: "card", id: "webhooks", "aria-labelledby": "wh-title" }, h("h2", { id: "wh-title", text: "Webhooks" }));
  const list = h("ul", { class: "plain" });
  const out = h("div", { "aria-live": "polite" });
  const load = async () => {
    const items = await api("GET", "/webhooks").catch(() => []);
    fill(list, items.length ? items.map((w) => {
      const log = h("div", { class: "small" });
      const showLog = h("button", { type: "button", class: "secondary", text: "Delivery log", "aria-label": `Delivery log of ${w.url}` });
      showLog.addEventListener("click", async () => {
        const rows = await api("GET", `/webhooks/${encodeURIComponent(w.id)}/deliveries`).catch((e) => { log.textContent = e.message; return null; });
        if (!rows) return;
        fill(log, rows.length ? h("ol", { class: "timeline" }, rows.map((r) => h("li", {},
          h("time", { text: hms(r.created_ms) }), ` ${r.event_type} · ${r.state} · ${r.attempts} attempt(s)${r.last_status ? ` · HTTP ${r.last_status}` : ""}${r.last_error ? ` · ${r.last_error}` : ""}`)))
          : h("p", { class: "muted", text: "Nothing sent yet." }));
      });
      const del = h("button", { type: "button", class: "secondary", text: "Remove", "aria-label": `Remove webhook ${w.url}` });
      del.addEventListener("click", async () => { await api("DELETE", `/webhooks/${encodeURIComponent(w.id)}`).catch((e) => announce(e.message)); load(); });
      return h("li", { class: "device" }, h("strong", { text: w.url }), w.description ? h("span", { class: "muted", text: ` ${w.description}` }) : null,
        h("div", { class: "row" }, showLog, del), log);
    }) : h("li", { class: "muted", text: "No webhooks." }));
  };
  const url = h("input", { id: "wh-url", type: "url", required: true });
  const desc = h("input", { id: "wh-desc", maxlength: 100 });
  const err = h("p", { class: "error", role: "alert", hidden: true });
  const form = h("form", {}, h("label", { for: "wh-url", text: "Endpoint URL" }), url,
    h("label", { for: "wh-desc", text: "Description (optional)" }), desc, err, h("button", { type: "submit", text: "Add webhook" }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(err, null);
    try {
      const w = await api("POST", "/webhooks", { url: url.value, description: desc.value || undefined });
      fill(out, h("p", { text: "Signing secret (shown once; verify each request with it):" }), h("pre", { class: "cmd", text: w.secret || "" }));
      url.value = ""; desc.value = "";
      load();
    } catch (ex) { showError(err, ex); }
  });
  await load();
  sec.append(list, out, form);
  return sec;
}

/** Guest access grants of one home: create (the guest's secret is shown once), list, revoke. */
async function guestsSection(home) {
  const u = home.id;
  const sec = h("section", { class: "card", "aria-labelledby": `g-title-${u}`, dataset: { guests: u } }, h("h2", { id: `g-title-${u}`, text: `Guest access · ${home.name}` }));
  const list = h("ul", { class: "plain" });
  const out = h("div", { "aria-live": "polite" });
  const load = async () => {
    const items = await api("GET", `/homes/${encodeURIComponent(home.id)}/guests`).catch(() => []);
    fill(list, items.length ? items.map((g) => {
      const revoked = !!g.revoked_ms;
      const del = h("button", { type: "button", class: "secondary", text: "Revoke", "aria-label": `Revoke access for ${g.name}` });
      del.addEventListener("click", async () => { await api("DELETE", `/homes/${encodeURIComponent(home.id)}/guests/${encodeURIComponent(g.id)}`).catch((e) => announce(e.message)); load(); });
      const win = (g.weekly || []).map((w) => `${DAYS[w.day - 1]} ${toHHMM(w.start_minute)}–${toHHMM(w.end_minute)}`).join(", ");
      return h("li", { class: "device" }, h("strong", { text: g.name }),
        h("div", { class: "muted small", text: `${dateTime(g.valid_from_ms)} → ${dateTime(g.valid_until_ms)}${win ? ` · ${win}` : ""}${g.camera_required ? " · camera required" : ""}${revoked ? ` · revoked ${dateTime(g.revoked_ms)}` : ""}` }),
        revoked ? null : del);
    }) : h("li", { class: "muted", text: "No guests." }));
  };
  const name = h("input", { id: `g-name-${u}`, required: true, maxlength: 80 });
  const from = h("input", { id: `g-from-${u}`, type: "date", required: true, value: new Date().toISOString().slice(0, 10) });
  const until = h("input", { id: `g-until-${u}`, type: "date", required: true, value: new Date(Date.now() + 7 * 864e5).toISOString().slice(0, 10) });
  const start = h("input", { id: `g-start-${u}`, type: "time", value: "09:00" });
  const end = h("input", { id: `g-end-${u}`, type: "time", value: "17:00" });
  const days = DAYS.map((n, i) => h("label", { class: "day" }, h("input", { type: "checkbox", value: i + 1, checked: i < 5 }), n));
  const cam = h("input", { type: "checkbox", id: `g-cam-${u}`, checked: true });
  const err = h("p", { class: "error", role: "alert", hidden: true });
  const form = h("form", {},
    h("label", { for: `g-name-${u}`, text: "Guest name" }), name,
    h("label", { for: `g-from-${u}`, text: "From" }), from,
    h("label", { for: `g-until-${u}`, text: "Until (end of day)" }), until,
    h("fieldset", {}, h("legend", { text: "Weekly hours" }),
      h("label", { for: `g-start-${u}`, text: "From" }), start, h("label", { for: `g-end-${u}`, text: "To" }), end,
      h("div", { class: "days", role: "group", "aria-label": "Days" }, days)),
    h("div", { class: "check" }, cam, h("label", { for: `g-cam-${u}`, text: "Only while the camera is live" })),
    err, h("button", { type: "submit", text: "Grant access" }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(err, null);
    const weekly = days.map((l) => l.querySelector("input")).filter((c) => c.checked)
      .map((c) => ({ day: Number(c.value), start_minute: toMin(start.value), end_minute: toMin(end.value) }));
    try {
      const g = await api("POST", `/homes/${encodeURIComponent(home.id)}/guests`, {
        name: name.value,
        valid_from_ms: new Date(`${from.value}T00:00`).getTime(),
        valid_until_ms: new Date(`${until.value}T23:59:59`).getTime(),
        weekly, utc_offset_minutes: -new Date().getTimezoneOffset(), camera_required: cam.checked,
      });
      const link = `${location.origin}/guest/#${encodeURIComponent(g.secret || "")}`;
      fill(out, h("p", { text: `Send ${g.name} this link (shown once; it is their key):` }),
        h("pre", { class: "cmd", id: "guest-link", text: link }));
      name.value = "";
      load();
    } catch (ex) { showError(err, ex); }
  });
  await load();
  sec.append(list, out, form);
  return sec;
}

// ---------- start ----------

(async () => {
  try {
    const me = await api("GET", "/me");
    if (me.role !== "owner") { showLogin(); return; }
    await signedIn(me);
  } catch (e) {
    showLogin(e.status === 0 ? "Cannot reach the hub." : undefined);
  }
})();
