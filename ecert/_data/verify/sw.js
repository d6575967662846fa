/* ecert verifier page: the service worker that keeps the page and verified documents.
 *
 * The page's own files are kept per version (the page's digest) and served network
 * first, so a new publication's page replaces the old one. Documents (trust lists,
 * status lists, log checkpoints and tiles) are kept ONLY when the page reports that they
 * verified; they are served from the network within one deadline (redirects only within
 * the origin, as ecert's Python sources), and the kept copy is served only when the
 * network fails or the server answers 5xx, marked with when it was fetched (its age).
 * Freshness is still the documents' own: an expired copy fails verification.
 */
'use strict';
const VERSION = '{{VERSION}}';
const SHELL = {{SHELL}};
const PAGE = 'ecert-page-' + VERSION, DOCS = 'ecert-documents-v1';
const DEADLINE_MS = 10000;
const scope = new URL(self.registration.scope);
const isShell = (url) => url.origin === scope.origin && url.pathname.startsWith(scope.pathname) &&
  SHELL.includes(url.pathname.slice(scope.pathname.length));

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(PAGE).then((c) => c.addAll(SHELL.map((f) => new URL(f || './', scope).href))).then(() => self.skipWaiting()));
});
self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k.startsWith('ecert-page-') && k !== PAGE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});
async function network(request) {
  const control = new AbortController();
  const timer = setTimeout(() => control.abort(), DEADLINE_MS);
  try {
    const response = await fetch(request, { signal: control.signal });
    if (response.redirected && new URL(response.url).origin !== new URL(request.url).origin) {
      return { refused: true };
    }
    if (response.status < 500) {
      await response.clone().arrayBuffer(); // the whole body within the deadline
      return { response };
    }
    return { failed: response };
  } catch (err) {
    return { failed: null };
  } finally { clearTimeout(timer); }
}
self.addEventListener('fetch', (event) => {
  const request = event.request, url = new URL(request.url);
  if (request.method !== 'GET' || !/^https?:$/.test(url.protocol)) return;
  if (isShell(url)) {
    event.respondWith(network(request).then(async (r) => r.response ||
      (await caches.match(request, { cacheName: PAGE, ignoreSearch: true })) || r.failed || Response.error()));
    return;
  }
  event.respondWith(network(request).then(async (r) => {
    if (r.refused) return Response.error();
    if (r.response) return r.response;
    const kept = await (await caches.open(DOCS)).match(url.href);
    return kept || r.failed || Response.error();
  }));
});
self.addEventListener('message', (event) => {
  const m = event.data;
  if (!m || m.type !== 'verified' || typeof m.url !== 'string' || !/^https?:\/\//.test(m.url)) return;
  const headers = { 'content-type': 'application/octet-stream', 'x-ecert-cached-at': String(m.fetchedAt) };
  event.waitUntil(caches.open(DOCS).then((c) => c.put(m.url, new Response(m.body, { headers }))));
});
