// Polls the export's status while the worker builds it, and shows it in place (the region is aria-live, so a
// screen reader hears when it is ready). Stops once it is ready, failed or deleted, and after an hour.
(function () {
  "use strict";
  var region = document.getElementById("export-status");
  if (!region) return;
  var pending = function (status) { return status === "queued" || status === "running"; };
  if (!pending(region.dataset.status)) return;
  var url = region.dataset.statusUrl;
  var delay = 1000;
  var giveUpAt = Date.now() + 60 * 60 * 1000;

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("status " + response.status);
        return response.json();
      })
      .then(function (state) {
        if (state.status !== region.dataset.status) {
          region.dataset.status = state.status;
          region.innerHTML = state.html;
        }
        if (pending(state.status) && Date.now() < giveUpAt) {
          delay = Math.min(delay * 1.5, 5000);
          window.setTimeout(poll, delay);
        } else if (!pending(state.status)) {
          // Ready, failed or deleted: the page's own form (ask again) belongs to the new state.
          if (state.status !== "done") window.location.reload();
        }
      })
      .catch(function () {
        if (Date.now() < giveUpAt) window.setTimeout(poll, 5000);
      });
  }
  window.setTimeout(poll, delay);
})();
