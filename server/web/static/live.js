// Follows a run's event stream (the API's, authenticated by the session cookie) and swaps
// in the server-rendered part of the page that changed. Without script, the page reloads
// itself every few seconds instead (<noscript> refresh).
"use strict";
(function () {
  const live = document.getElementById("live");
  if (!live || !live.dataset.events) return;
  const events = new EventSource(live.dataset.events);
  let pending = null, again = false;
  function refresh() {
    if (pending) { again = true; return; }  // once more after this one: never miss the last
    pending = fetch(live.dataset.fragment, { credentials: "same-origin" })
      .then(function (answer) {
        if (answer.redirected || !answer.ok) { window.location.reload(); return null; }
        return answer.text();
      })
      .then(function (html) { if (html !== null) live.innerHTML = html; })
      .finally(function () {
        pending = null;
        if (again) { again = false; refresh(); }
      });
  }
  ["status", "round", "partner_error"].forEach(function (kind) {
    events.addEventListener(kind, refresh);
  });
  events.addEventListener("end", function () { events.close(); refresh(); });
  events.onerror = function () {
    // The stream ends when the run does, or the session did: the page says which.
    if (events.readyState === EventSource.CLOSED) refresh();
  };
})();
