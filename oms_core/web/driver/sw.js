// The driver page's service worker: keeps the page's own files so the page opens with
// no connection (a van's dead spot, a basement car park). Only GETs of /driver/ files are
// answered here, network first so a deploy reaches phones at once; /api/ is never
// touched, so no trip, token or proof of delivery is ever kept in a cache.

const CACHE = "menara-driver-v1";
const SHELL = [
  "/driver/",
  "/driver/app.css",
  "/driver/app.js",
  "/driver/api.js",
  "/driver/dom.js",
  "/driver/epod.js",
  "/driver/i18n.js",
  "/driver/photos.js",
  "/driver/positions.js",
  "/driver/queue.js",
  "/driver/signature.js",
  "/driver/store.js",
  "/driver/trip.js",
  "/driver/view.js",
  "/driver/manifest.json",
  "/driver/icon.svg",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

function ours(request) {
  const url = new URL(request.url);
  return request.method === "GET" && url.origin === self.location.origin
    && url.pathname.startsWith("/driver/") && !url.pathname.startsWith("/api/");
}

self.addEventListener("fetch", (event) => {
  if (!ours(event.request)) return;
  const url = new URL(event.request.url);
  // The page itself, whatever its fragment or query: the sign-in link is /driver/#code=…
  const key = url.pathname === "/driver/" || url.pathname === "/driver/index.html"
    ? "/driver/" : url.pathname;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    try {
      const fresh = await fetch(event.request);
      if (fresh.ok) await cache.put(key, fresh.clone());
      return fresh;
    } catch (exc) {
      const kept = await cache.match(key);
      if (kept) return kept;
      throw exc;
    }
  })());
});
