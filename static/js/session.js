// Pages that update themselves ask the server in the background. Once the login session has ended,
// those requests are redirected to the login page: a poller that took that page for an answer would
// show stale or wrong news ("every scan was reviewed") or wait for ever. kidneywebSession.ended(response)
// says whether that happened and, the first time, tells the user; pollers then stop.
(function () {
  "use strict";
  var told = false;

  function tell() {
    if (told) return;
    told = true;
    var main = document.getElementById("main");
    if (!main) return;
    var note = document.createElement("p");
    note.className = "message message-warning session-ended";
    note.setAttribute("role", "alert");
    note.appendChild(document.createTextNode("Your session has ended, so this page no longer updates by itself. "));
    var link = document.createElement("a");
    link.href = document.body.dataset.loginUrl + "?next=" + encodeURIComponent(window.location.pathname + window.location.search);
    link.textContent = "Log in again";
    note.appendChild(link);
    note.appendChild(document.createTextNode(" to see what changed."));
    main.insertBefore(note, main.firstChild);
  }

  window.kidneywebSession = {
    // What pages ask by themselves says so: it is not the user's activity, and must not keep an idle
    // login alive (the server's idle logout, KIDNEYWEB_IDLE_MINUTES).
    fetch: function (url, options) {
      var init = Object.assign({}, options);
      var headers = new Headers(init.headers || {});
      headers.set("X-Background-Request", "1");
      init.headers = headers;
      return window.fetch(url, init);
    },
    ended: function (response) {
      var login = document.body.dataset.loginUrl;
      var toLogin = response.redirected && login && new URL(response.url).pathname === login;
      if (toLogin || response.status === 401) tell();
      return Boolean(toLogin || response.status === 401);
    },
  };
})();
