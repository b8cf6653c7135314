// Threshold service worker: shows critical alerts pushed by the hub (Web Push, VAPID,
// aes128gcm; the browser decrypts before this runs) while no page is open. Text is
// handed to the system's notification as plain text.

self.addEventListener("push", (event) => {
  let d = {};
  try { d = event.data ? event.data.json() : {}; } catch { d = { body: event.data ? event.data.text() : "" }; }
  const url = typeof d.url === "string" && d.url.startsWith("/") ? d.url : "/";
  event.waitUntil(self.registration.showNotification(String(d.title || "Threshold"), {
    body: String(d.body || "New alert"),
    tag: String(d.alert_id || "threshold-alert"),
    icon: "/shared/icon.svg",
    requireInteraction: true,
    data: { url },
  }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = (event.notification.data && event.notification.data.url) || "/";
  event.waitUntil((async () => {
    const wins = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    for (const w of wins) {
      if ("focus" in w) { if ("navigate" in w) await w.navigate(url).catch(() => {}); return w.focus(); }
    }
    return self.clients.openWindow(url);
  })());
});
