// Keeps the worklist honest while it stays open. A row whose diagnosis was pending is redrawn in place
// once the server draws it final; scans that arrived, or that a colleague reviewed, since the page was
// loaded are announced with a link to refresh, because reordering rows under the pointer would make
// a clinician open the wrong patient. Which scans a colleague has open is updated in place.
(function () {
  "use strict";
  if (!window.fetch) return;
  var live = document.getElementById("worklist-live");
  if (!live) return;
  var news = document.getElementById("worklist-news");
  var EVERY = 5000;
  var STOP_AFTER = 8 * 60 * 60 * 1000;
  var started = Date.now();

  function shownRows() {
    var rows = {};
    document.querySelectorAll("#worklist tbody tr[data-scan]").forEach(function (row) { rows[row.dataset.scan] = row; });
    return rows;
  }

  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  function compare(html) {
    var holder = document.createElement("template");
    holder.innerHTML = html.trim();
    var shown = shownRows();
    var fresh = {};
    var arrived = 0;
    var rediagnosed = 0;
    holder.content.querySelectorAll("tr[data-scan]").forEach(function (row) {
      fresh[row.dataset.scan] = row;
      var old = shown[row.dataset.scan];
      if (!old) { arrived += 1; return; }
      if (old.dataset.openedBy !== row.dataset.openedBy) {
        // A colleague opened or left it: said in place, so that two readers do not read the same scan.
        old.querySelector(".opened-by").replaceWith(row.querySelector(".opened-by").cloneNode(true));
        old.dataset.openedBy = row.dataset.openedBy;
      }
      var newResult = old.dataset.prediction !== row.dataset.prediction;
      if (newResult || (old.dataset.final === "false" && row.dataset.final === "true")) {
        // Redrawn where it stands (its rank kept); a new diagnosis may change its urgency, so say so.
        if (newResult) rediagnosed += 1;
        row.querySelector(".rank").textContent = old.querySelector(".rank").textContent;
        old.parentNode.replaceChild(row, old);
      }
    });
    var gone = Object.keys(shown).filter(function (scan) { return !fresh[scan]; });
    gone.forEach(function (scan) { shown[scan].classList.add("worklist-row-gone"); });
    var parts = [];
    if (arrived) parts.push(plural(arrived, "new scan is", "new scans are") + " waiting");
    if (rediagnosed) parts.push(plural(rediagnosed, "scan was", "scans were") + " diagnosed again and may now rank differently");
    if (gone.length) parts.push(plural(gone.length, "scan was", "scans were") + " reviewed or moved since this page was loaded");
    if (parts.length) {
      news.querySelector("span").textContent = parts.join("; ") + ". ";
      news.hidden = false;
    }
  }

  function tick() {
    if (Date.now() - started > STOP_AFTER) return;
    if (document.hidden) { window.setTimeout(tick, EVERY); return; }
    var ended = false;
    window.kidneywebSession.fetch(live.dataset.rowsUrl, { credentials: "same-origin" }).then(function (response) {
      if (window.kidneywebSession.ended(response)) { ended = true; return; }
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.text().then(compare);
    }).catch(function () { /* the next tick tries again; the page itself is still right */ })
      .then(function () { if (!ended) window.setTimeout(tick, EVERY); });
  }

  window.setTimeout(tick, 1000);
})();
