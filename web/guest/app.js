// The guest's page (a cleaner, a neighbour): opened from the link the owner shares,
// `/guest/#<secret>`. The secret stays in the fragment, which browsers never send to a
// server nor put in a Referer. It shows whose door, when the link works, whether it
// works now and whether the door's camera is watching, and unlocks under the same rule
// as a courier's entry.
import { api, ApiError, dateTime, fill, h } from "/shared/lib.js";

const main = document.getElementById("main");
const secret = decodeURIComponent(location.hash.slice(1));

/** Why the link does not work now, in words. */
const STATE_WORDS = {
  active: "Your access is active now.",
  not_yet: "Your access has not started yet.",
  expired: "Your access has ended.",
  revoked: "The owner has withdrawn this access.",
  outside_hours: "Your access is outside its hours right now.",
};

/** The camera's state, in words. */
function cameraWords(c) {
  if (c === "live") return "The door's camera is watching.";
  if (c === "waived") return "The owner lets you in without the camera.";
  return "The door's camera is not watching right now, so the door cannot be opened.";
}

/** A refusal's reasons, in words. */
const REASON_WORDS = {
  revoked: "the owner has withdrawn this access",
  outside_validity: "it is outside the dates of your access",
  outside_weekly_window: "it is outside your hours",
  no_camera_bound: "no camera watches this door",
  camera_offline: "the door's camera is offline",
  camera_stale: "the door's camera picture is not fresh",
  camera_clock_skew: "the door's camera clock is wrong",
  camera_frozen: "the door's camera picture has stopped changing",
  camera_not_recording: "the camera is not recording",
  no_lock: "this door has no lock",
  lock_offline: "the lock is not connected",
  hub_degraded: "the hub cannot vouch for the camera right now",
};

let shown = null;

async function draw() {
  let s;
  try {
    s = await api("POST", "/guest/status", { secret });
  } catch (e) {
    const text = e instanceof ApiError && e.status === 404
      ? "This link is not valid. Ask the owner for a new one."
      : "Cannot reach the hub. Check your connection; this page keeps trying.";
    fill(main, h("div", { class: "stack" }, h("h1", { text: "Guest access" }), h("p", { class: "warn", id: "guest-state", dataset: { state: "invalid" }, text })));
    return;
  }
  const key = JSON.stringify([s.state, s.camera]);
  if (key === shown) return;
  shown = key;
  const result = h("section", { id: "guest-result", class: "card", "aria-live": "assertive", hidden: true });
  const can = s.state === "active" && (s.camera === "live" || s.camera === "waived");
  const btn = h("button", { type: "button", class: "big", id: "guest-unlock", text: "Unlock the door", disabled: !can });
  btn.addEventListener("click", async () => {
    btn.disabled = true;
    result.hidden = false;
    try {
      const r = await api("POST", "/guest/unlock", { secret });
      fill(result, r.allowed
        ? h("p", { class: "ok", id: "guest-allowed", text: "The door is unlocking. Close it behind you; it locks again by itself." })
        : h("p", { class: "warn", id: "guest-refused", text: `Not now: ${r.reasons.map((x) => REASON_WORDS[x] || x).join("; ")}.` }));
    } catch (e) {
      fill(result, h("p", { class: "warn", text: e.status === 429 ? "Too many tries; wait a few minutes." : e.message }));
    }
    setTimeout(() => { btn.disabled = !can; }, 3000);
  });
  fill(main, h("div", { class: "stack" },
    h("h1", { text: `Hello ${s.name}` }),
    h("p", { id: "guest-door", text: [s.door_name || "The door", s.home_name ? `at ${s.home_name}` : ""].join(" ") }),
    s.address ? h("p", { class: "address", text: s.address }) : "",
    h("p", { class: "muted", text: `From ${dateTime(s.valid_from_ms)} until ${dateTime(s.valid_until_ms)}` }),
    h("p", { id: "guest-state", dataset: { state: s.state }, class: s.state === "active" ? "ok" : "warn", text: STATE_WORDS[s.state] || s.state }),
    h("p", { id: "guest-camera", dataset: { camera: s.camera }, text: cameraWords(s.camera) }),
    btn, result));
}

if (!secret) {
  fill(main, h("p", { class: "warn", id: "guest-state", dataset: { state: "invalid" }, text: "This link has no access code. Ask the owner for the link again." }));
} else {
  draw();
  setInterval(draw, 2000);
}
