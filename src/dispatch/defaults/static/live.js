// The staff web's one script: parts of a page that follow the server without a reload.
// An element with data-live="/admin/…" has its content replaced by what that address
// answers (an HTML fragment, same origin, the session's cookie) every data-every seconds
// (default 2). It stops once the fragment holds an element with data-live-done, or when
// the session has ended (the answer is not 200, or a redirect to sign in). Pages work without it: they show the
// counts as of loading and a link to reload.
(function () {
  "use strict";
  function follow(el) {
    var every = Math.max(1, parseFloat(el.getAttribute("data-every") || "2")) * 1000;
    var url = el.getAttribute("data-live");
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { "X-Live": "1" } })
        // A session that ended answers with the sign-in page (a redirect): stop, rather
        // than put that page inside this one.
        .then(function (r) { return r.ok && !r.redirected ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          el.innerHTML = html;
          el.setAttribute("data-live-updated", String(Date.now()));
          if (!el.querySelector("[data-live-done]")) setTimeout(tick, every);
        })
        .catch(function () { el.setAttribute("data-live-stopped", "1"); });
    }
    if (!el.querySelector("[data-live-done]")) setTimeout(tick, every);
  }
  document.querySelectorAll("[data-live]").forEach(follow);
})();
