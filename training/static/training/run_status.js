// Polls a training run's status while it is queued or running and updates the page in place.
(function () {
  "use strict";
  var section = document.getElementById("run");
  if (!section || section.dataset.final === "true") return;
  var url = section.dataset.statusUrl;

  function field(name) { return section.querySelector('[data-field="' + name + '"]'); }
  function setText(name, text) { var el = field(name); if (el) el.textContent = text; }
  function fixed(value, digits) { return typeof value === "number" ? value.toFixed(digits) : "–"; }

  function render(state) {
    var badge = field("status");
    if (badge) { badge.textContent = state.status_display; badge.className = "badge badge-" + state.status; }
    setText("stage", state.stage || "–");
    setText("epoch", state.epoch);
    setText("epochs", state.epochs);
    var bar = field("progress");
    if (bar) { bar.max = state.epochs || 1; bar.value = state.epoch; }
    var m = state.metrics && state.metrics.epoch;
    setText("epoch_metrics", !m ? "–" : "loss " + fixed(m.loss, 4) + " · " + (m.val_loss === null
      ? "refit on training and validation slices, nothing left to validate on"
      : "validation loss " + fixed(m.val_loss, 4) + " · validation accuracy " + fixed(m.val_accuracy, 3) +
        " · validation macro-F1 " + fixed(m.val_macro_f1, 3)));
    setText("elapsed", state.elapsed_seconds === null ? "–" : state.elapsed_seconds + " s");
    setText("eta", state.eta_seconds === null ? "–" : "about " + state.eta_seconds + " s");
    var cancelling = field("cancel_requested");
    if (cancelling) cancelling.hidden = !(state.cancel_requested && !state.final);
    var failure = field("failure_reason");
    if (failure) { failure.textContent = state.failure_reason; failure.hidden = !state.failure_reason; }
    var log = field("log");
    if (log) {
      var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.textContent = state.log_tail;
      if (atBottom) log.scrollTop = log.scrollHeight;
    }
    if (state.final) {
      // The result (model version, scores) is laid out by the server.
      window.location.reload();
    }
  }

  function poll() {
    window.kidneywebSession.fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { if (!response.ok) throw new Error(response.status); return response.json(); })
      .then(function (state) { render(state); if (!state.final) window.setTimeout(poll, 2000); })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 2000);
})();
