// Threshold courier app: today's deliveries, scan, "I'm at the door", the decision
// with its reasons, the recording banner, the leave instruction, "Delivered".

import { h, fill, api, ApiError, hms, announce, showError, EventsSocket, position } from "/shared/lib.js";

const main = document.getElementById("main");
const top = document.getElementById("top");
const linkEl = document.getElementById("link");
const leave = document.getElementById("leave");
const recording = document.getElementById("recording");

const app = { me: null, events: null, inside: null, timers: [], page: null };
/** Set by the LEAVE NOW acknowledgement: the next page draw focuses the instruction. */
let focusLeave = false;

function clearTimers() { for (const t of app.timers.splice(0)) clearInterval(t); }

function route() {
  clearTimers();
  if (app.me === null) return showLogin();
  const [, page, id] = (location.hash || "#/").split("/");
  const run = page === "delivery" && id ? () => deliveryPage(decodeURIComponent(id)) : listPage;
  run().catch((e) => {
    if (e instanceof ApiError && e.status === 401) { app.me = null; return showLogin("Your session ended. Please sign in again."); }
    fill(main, h("p", { class: "error", role: "alert", text: e.message }));
  });
}
window.addEventListener("hashchange", route);

function showLogin(message) {
  top.hidden = true;
  const err = h("p", { class: "error", role: "alert", hidden: true });
  const user = h("input", { id: "username", autocomplete: "username", required: true, autocapitalize: "none" });
  const pass = h("input", { id: "password", type: "password", autocomplete: "current-password", required: true });
  const btn = h("button", { type: "submit", text: "Sign in" });
  const form = h("form", { class: "card narrow", id: "login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title", text: "Courier sign in" }),
    h("label", { for: "username", text: "Username" }), user,
    h("label", { for: "password", text: "Password" }), pass, err, btn);
  if (message) showError(err, { message });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    btn.disabled = true;
    showError(err, null);
    try {
      const r = await api("POST", "/auth/login", { username: user.value, password: pass.value });
      if (r.user.role !== "courier") {
        await api("POST", "/auth/logout").catch(() => {});
        throw new Error("This app is for couriers. Home owners sign in at /.");
      }
      signedIn(r.user);
    } catch (ex) {
      showError(err, ex.status === 401 ? { message: "Wrong username or password." } : ex);
      btn.disabled = false;
    }
  });
  fill(main, form);
  user.focus();
}

function signedIn(user) {
  app.me = user;
  top.hidden = false;
  if (app.events) app.events.close();
  app.events = new EventsSocket({
    onLink: (up) => {
      linkEl.textContent = up ? "Connected" : "Connection lost";
      linkEl.className = up ? "link link-up" : "link link-down";
      linkEl.dataset.state = up ? "up" : "down";
      // Inside a home without a link to the hub, nobody can tell the courier to leave.
      if (!up && app.inside) showInsideWarning();
    },
    onEvent,
  });
  // Setting the hash fires hashchange, which routes; route only once.
  if (!location.hash || location.hash === "#") location.hash = "#/";
  else route();
}

document.getElementById("signout").addEventListener("click", async () => {
  await api("POST", "/auth/logout").catch(() => {});
  app.me = null;
  if (app.events) { app.events.close(); app.events = null; }
  showLogin();
});

document.getElementById("leave-ack").addEventListener("click", () => {
  leave.hidden = true;
  document.body.classList.remove("leaving");
  // Back to that delivery's page, which now gives the one instruction that holds.
  const id = leave.dataset.delivery;
  focusLeave = true;
  if (id && location.hash !== `#/delivery/${encodeURIComponent(id)}`) location.hash = `#/delivery/${encodeURIComponent(id)}`;
  else route();
});

function onEvent(ev) {
  const id = ev.data && ev.data.delivery_id;
  if (ev.type === "delivery.leave_now") {
    app.inside = null;
    recording.hidden = true;
    document.getElementById("leave-text").textContent = (ev.data && ev.data.message) || "The camera is not watching. Leave now and close the door behind you.";
    leave.dataset.delivery = id || "";
    leave.hidden = false;
    document.body.classList.add("leaving");
    if (navigator.vibrate) navigator.vibrate([400, 200, 400, 200, 400]);
    document.getElementById("leave-ack").focus();
  } else if (ev.type === "delivery.entry_granted" && app.page === id) {
    app.inside = id;
    recording.hidden = false;
  } else if (app.page === id && String(ev.type).startsWith("delivery.") && STOPPED.includes(ev.type.slice("delivery.".length))) {
    // The delivery was stopped or ended: the page shows that state, and only that.
    if (ev.type !== "delivery.camera_lost") announce(endWords(ev.type.slice("delivery.".length)));
    route();
  }
}

function showInsideWarning() {
  const w = document.getElementById("inside-warning");
  if (w) w.hidden = false;
}

async function listPage() {
  app.page = null;
  const list = await api("GET", "/deliveries");
  const now = Date.now();
  const today = list.filter((d) => !ENDED.includes(d.state) || d.window_end_ms > now - 12 * 3600e3)
    .sort((a, b) => a.window_start_ms - b.window_start_ms);
  fill(main, h("div", { class: "stack" },
    h("h1", { text: "Today's deliveries" }),
    today.length ? h("ul", { class: "deliveries big" }, today.map((d) => h("li", { dataset: { delivery: d.id, state: d.state } },
      h("a", { href: `#/delivery/${encodeURIComponent(d.id)}`, class: "delivery-link" },
        h("strong", { text: `Parcel ${d.parcel_ref}` }),
        d.address ? h("span", { class: "address", text: ` ${d.address.replace(/\n/g, ", ")}` }) : "",
        h("span", { class: "small", text: ` ${hms(d.window_start_ms)}–${hms(d.window_end_ms)} · ${stateWords(d.state)}` })))))
      : h("p", { text: "No deliveries assigned to you today." })));
}

/** Every state in words; the terminal ones say how the delivery ended. */
function stateWords(s) {
  return {
    scheduled: "to deliver",
    inside: "inside now",
    delivered: "waiting for the lock",
    camera_lost: "stopped: leave and close the door",
    completed: "done",
    ended_after_camera_loss: "ended: the door is closed and locked",
    ended_unverified: "ended: the door could not be confirmed locked",
    expired: "expired: the window passed",
  }[s] || s;
}

const ENDED = ["completed", "ended_after_camera_loss", "ended_unverified", "expired"];
/** States after which the page must change what it asks of the courier. */
const STOPPED = ["camera_lost", ...ENDED];

/** How a delivery ended, in words for the courier. */
function endWords(s) {
  return {
    completed: "Done: the door is confirmed closed and locked. Thank you.",
    ended_after_camera_loss: "The door is confirmed closed and locked. You may go: this delivery has ended (the camera stopped watching, so it is not marked delivered).",
    ended_unverified: "This delivery has ended, but the door was not confirmed closed and locked. The customer has been told.",
    expired: "This delivery has expired: its window passed before the door was opened.",
  }[s] || `This delivery has ended: ${stateWords(s)}.`;
}

/**
 * Poll the delivery while the page waits for the hub (the lock's confirmation); when
 * it is stopped or ends, the page is drawn again for that state. Ends with the page.
 */
function watchState(d, shown) {
  const t = setInterval(async () => {
    try {
      const now = await api("GET", `/deliveries/${encodeURIComponent(d.id)}`, undefined, { timeoutMs: 3000 });
      if (now.state !== shown && STOPPED.includes(now.state)) {
        clearInterval(t);
        if (ENDED.includes(now.state)) announce(endWords(now.state));
        if (app.page === d.id) route();
      }
    } catch { /* keep waiting */ }
  }, 1000);
  app.timers.push(t);
}

/** The one instruction after the camera stopped watching: leave, close the door; the
 * hub secures it. Waits for the lock's confirmation. */
function leaveSection(d) {
  watchState(d, d.state);
  if (isGarage(d)) {
    return h("section", { class: "card warn", id: "leave-instruction", role: "alert" },
      h("h2", { text: "Leave the garage now", tabindex: "-1" }),
      h("p", { text: "The camera stopped watching, so this delivery was stopped. Step out of the garage now and stay clear of the door: the hub is closing it. Do not go back in." }),
      h("p", { id: "secured", "aria-live": "polite", text: "Waiting for the garage to report it is closed…" }));
  }
  const title = h("h2", { text: "Leave now and close the door", tabindex: "-1" });
  return h("section", { class: "card warn", id: "leave-instruction", role: "alert" },
    title,
    h("p", { text: "The camera stopped watching, so this delivery was stopped. Step out and close the door behind you; the hub and the lock will lock it. Do not go back in." }),
    h("p", { id: "secured", "aria-live": "polite", text: "Waiting for the lock to confirm the door is closed and locked…" }));
}

/** Whether the delivery's door is a garage door (its opener is the actuator): the
 * courier does not close it, the hub does. */
function isGarage(d) {
  return !!(d && d.lock && d.lock.actuator === "garage_opener");
}

async function deliveryPage(id) {
  app.page = id;
  const d = await api("GET", `/deliveries/${encodeURIComponent(id)}`);
  app.garage = isGarage(d);
  if (d.state === "inside" && !d.compromised) { app.inside = id; recording.hidden = false; } else {
    recording.hidden = true;
    if (app.inside === id) app.inside = null;
  }
  const body = h("div", { class: "stack" },
    h("p", {}, h("a", { href: "#/", text: "← Today" })),
    h("h1", { text: `Parcel ${d.parcel_ref}` }),
    d.address ? h("p", { class: "address", id: "delivery-address", text: d.address }) : "",
    h("p", { class: "muted", text: `Window ${hms(d.window_start_ms)}–${hms(d.window_end_ms)} · ${d.placement === "in_garage" ? "place it in the garage" : "place it inside the door"}` }),
    h("p", {}, "Status: ", h("strong", { id: "delivery-state", text: stateWords(d.state) })));
  const decision = h("section", { id: "decision", class: "card", "aria-live": "assertive", hidden: true });
  const warning = h("p", { id: "inside-warning", class: "warn", role: "alert", hidden: true, text: "No connection to the hub. If you are inside, finish quickly, leave and close the door." });
  if (d.state === "scheduled") body.append(doorForm(d, decision));
  body.append(decision, warning);
  if (d.state === "inside" || d.state === "delivered") body.append(deliveredSection(d));
  if (d.state === "camera_lost") body.append(leaveSection(d));
  if (ENDED.includes(d.state)) {
    body.append(h("p", { class: d.state === "completed" || d.state === "ended_after_camera_loss" ? "ok" : "warn", id: "ended", dataset: { ended: d.state }, text: endWords(d.state) }));
  }
  fill(main, body);
  if (focusLeave && d.state === "camera_lost") main.querySelector("#leave-instruction h2").focus();
  focusLeave = false;
}

function doorForm(d, decision) {
  const parcel = h("input", { id: "parcel", name: "parcel", required: true, autocomplete: "off", inputmode: "text", maxlength: 128 });
  const err = h("p", { class: "error", role: "alert", hidden: true });
  const scanBox = h("div", { class: "scan", hidden: true });
  const kids = [h("label", { for: "parcel", text: "Parcel barcode" }), parcel];
  if ("BarcodeDetector" in window && navigator.mediaDevices) {
    const scan = h("button", { type: "button", class: "secondary", text: "Scan barcode with camera" });
    scan.addEventListener("click", () => startScan(parcel, scanBox, err));
    kids.push(scan, scanBox);
  } else {
    kids.push(h("p", { class: "muted small", text: "Type the code printed under the barcode." }));
  }
  const go = h("button", { type: "submit", class: "big", id: "at-door", text: "I'm at the door" });
  const form = h("form", { class: "card", id: "door-form" }, ...kids, err, go);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(err, null);
    go.disabled = true;
    go.textContent = "Getting your location…";
    try {
      const pos = await position();
      go.textContent = "Asking the hub…";
      const r = await api("POST", `/deliveries/${encodeURIComponent(d.id)}/entry`, { ...pos, parcel_ref: parcel.value.trim() });
      showDecision(decision, r, d);
      if (r.allowed) {
        app.inside = d.id;
        recording.hidden = false;
        form.remove();
        decision.after(deliveredSection({ ...d, state: "inside" }));
      }
    } catch (ex) {
      showError(err, ex);
    } finally {
      go.disabled = false;
      go.textContent = "I'm at the door";
    }
  });
  return form;
}

function showDecision(el, r) {
  el.hidden = false;
  el.dataset.allowed = r.allowed ? "1" : "0";
  el.className = `card decision ${r.allowed ? "allowed" : "refused"}`;
  if (r.allowed && app.garage) {
    fill(el, h("h2", { text: "Garage opening: go in" }),
      h("p", { text: "Place the parcel inside the garage and step out, then press Delivered: the garage closes by itself. Stay clear of the door. The camera is recording." }),
      r.token_expires_at_ms ? h("p", { class: "small", text: `The opening is valid until ${hms(r.token_expires_at_ms)}.` }) : null);
    announce("Garage opening. Go in.");
  } else if (r.allowed) {
    fill(el, h("h2", { text: "Door unlocked: go in" }),
      h("p", { text: "Place the parcel just inside, step out and close the door. The camera is recording." }),
      r.token_expires_at_ms ? h("p", { class: "small", text: `The unlock is valid until ${hms(r.token_expires_at_ms)}.` }) : null);
    announce("Door unlocked. Go in.");
  } else {
    fill(el, h("h2", { text: "Not allowed to enter" }),
      h("p", { text: "The door stays locked because:" }),
      h("ul", { class: "reasons" }, (r.reasons || []).map((x) => h("li", { dataset: { code: x.code }, text: x.message }))),
      h("p", { class: "small", text: "Leave the parcel according to your normal instructions." }));
    announce(`Not allowed to enter. ${(r.reasons || []).map((x) => x.message).join(". ")}`);
  }
}

function deliveredSection(d) {
  const status = h("p", { id: "delivered-status", "aria-live": "polite" });
  const btn = h("button", { type: "button", class: "big", id: "delivered", text: "Delivered" });
  const garage = isGarage(d);
  const waiting = () => {
    status.textContent = garage ? "The garage is closing. Waiting for it to report closed…" : "Waiting for the lock to confirm the door is closed and locked…";
  };
  btn.addEventListener("click", async () => {
    btn.disabled = true;
    try {
      await api("POST", `/deliveries/${encodeURIComponent(d.id)}/delivered`);
      btn.hidden = true;
      waiting();
    } catch (e) {
      status.textContent = e.message;
      btn.disabled = false;
      // Refused because the delivery was stopped meanwhile: show what holds now.
      if (e.code === "delivery_compromised") route();
    }
  });
  if (d.state === "delivered") { btn.hidden = true; waiting(); }
  // Stopped (camera lost) or ended, before or after "Delivered": the page changes.
  watchState(d, d.state);
  return h("section", { class: "card" },
    h("p", { text: garage
      ? "When the parcel is inside and you are out of the garage, press Delivered: the garage closes by itself. Stay clear of the door."
      : "When the parcel is inside and you are out: close the door, then press Delivered." }),
    btn, status);
}

async function startScan(input, box, err) {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
  } catch {
    showError(err, { message: "Camera not available; type the code instead." });
    return;
  }
  const video = h("video", { playsinline: true, muted: true, "aria-label": "Camera preview for scanning" });
  video.srcObject = stream;
  const stop = h("button", { type: "button", class: "secondary", text: "Stop scanning" });
  fill(box, video, stop);
  box.hidden = false;
  await video.play().catch(() => {});
  // eslint-disable-next-line no-undef
  const detector = new BarcodeDetector();
  let done = false;
  const end = () => { done = true; for (const t of stream.getTracks()) t.stop(); box.hidden = true; fill(box); };
  stop.addEventListener("click", end);
  while (!done) {
    try {
      const codes = await detector.detect(video);
      if (codes.length) { input.value = codes[0].rawValue; announce("Barcode read"); end(); break; }
    } catch { /* keep trying */ }
    await new Promise((r) => setTimeout(r, 250));
  }
}

(async () => {
  try {
    const me = await api("GET", "/me");
    if (me.role !== "courier") { showLogin(); return; }
    signedIn(me);
  } catch (e) {
    showLogin(e.status === 0 ? "Cannot reach the hub." : undefined);
  }
})();
