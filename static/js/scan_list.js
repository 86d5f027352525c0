// Keeps the patient page's scan lists current without a reload. An item whose diagnosis is still
// pending is asked for again until the server draws it final, and a scan uploaded on this page joins
// "To review" as soon as the server accepts it. The server renders every item (the same template as
// the page), so the badges here can never say something the page itself would not.
(function () {
  "use strict";
  if (!window.fetch || !window.Promise) return;
  var MAX_DELAY = 5000;
  var WATCH_FOR = 15 * 60 * 1000;

  function fetchItem(url) {
    return window.kidneywebSession.fetch(url, { credentials: "same-origin" }).then(function (response) {
      if (window.kidneywebSession.ended(response)) return new Promise(function () {}); // stop: the note says why
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.text();
    }).then(function (html) {
      var holder = document.createElement("template");
      holder.innerHTML = html.trim();
      return holder.content.firstElementChild;
    });
  }

  function poll(item, delay, giveUpAt) {
    if (Date.now() > giveUpAt) return;
    window.setTimeout(function () {
      fetchItem(item.dataset.itemUrl).then(function (fresh) {
        // Only a final item replaces the shown one: a link redrawn every second would fight the pointer.
        if (fresh.dataset.final !== "true") return poll(item, Math.min(delay * 1.5, MAX_DELAY), giveUpAt);
        if (item.parentNode) item.parentNode.replaceChild(fresh, item);
      }).catch(function () { poll(item, MAX_DELAY, giveUpAt); });
    }, delay);
  }

  function watch(item) {
    if (item.dataset.final === "false") poll(item, 1000, Date.now() + WATCH_FOR);
  }

  document.querySelectorAll(".scan-item[data-item-url]").forEach(watch);

  var unreviewed = document.getElementById("unreviewed-scans");
  if (!unreviewed) return;
  document.addEventListener("kidneyweb:uploaded", function (event) {
    var url = unreviewed.dataset.itemUrlTemplate.replace("/0/", "/" + event.detail.scan + "/");
    fetchItem(url).then(function (item) {
      unreviewed.insertBefore(item, unreviewed.firstChild);
      document.getElementById("unreviewed-count").textContent = "(" + unreviewed.children.length + ")";
      var empty = document.getElementById("unreviewed-empty");
      if (empty) empty.hidden = true;
      watch(item);
    }).catch(function () { /* the upload list above still shows the scan and its diagnosis */ });
  });
})();
