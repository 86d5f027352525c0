// Polls the scan's status until the diagnosis is done or failed, then shows the result in place.
(function () {
  "use strict";
  var section = document.getElementById("prediction");
  if (!section || section.dataset.final === "true") return;

  var url = section.dataset.statusUrl;
  var delay = 1000;
  var maxDelay = 5000;
  var giveUpAt = Date.now() + 15 * 60 * 1000;

  function field(name) { return section.querySelector('[data-field="' + name + '"]'); }
  function show(when, visible) {
    section.querySelectorAll('[data-when="' + when + '"]').forEach(function (el) { el.hidden = !visible; });
  }

  function renderProbabilities(list, rows) {
    while (list.firstChild) list.removeChild(list.firstChild);
    rows.forEach(function (row) {
      var li = document.createElement("li");
      var name = document.createElement("span");
      name.className = "prob-name";
      name.textContent = row.name;
      var bar = document.createElement("span");
      bar.className = "prob-bar";
      bar.setAttribute("aria-hidden", "true");
      var fill = document.createElement("span");
      fill.className = "prob-fill";
      fill.style.width = row.percent.toFixed(1) + "%";
      bar.appendChild(fill);
      var value = document.createElement("span");
      value.className = "prob-value";
      value.textContent = row.percent.toFixed(1) + "%";
      li.appendChild(name);
      li.appendChild(bar);
      li.appendChild(value);
      list.appendChild(li);
    });
  }

  function render(state) {
    var badge = field("status");
    if (badge && state.status) {
      badge.textContent = state.status_display;
      badge.className = "badge badge-" + state.status;
    }
    if (field("model_version")) field("model_version").textContent = state.model_version || "";
    if (field("inference_ms")) {
      field("inference_ms").textContent = state.inference_ms === null ? "–" : state.inference_ms + " ms";
    }
    show("pending", !state.final);
    show("final", state.final);
    show("done", state.status === "done");
    show("failed", state.status === "failed");
    if (state.status === "done") {
      field("label").textContent = state.label;
      field("out_of_scope").hidden = !state.out_of_scope;
      field("out_of_scope_reason").textContent =
        state.out_of_scope_reason || "something other than the CT slices the model was trained on";
      renderProbabilities(field("probabilities"), state.probabilities);
    }
    if (state.status === "failed") field("failure_reason").textContent = state.failure_reason;
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (state) {
        render(state);
        if (state.final) return;
        delay = Math.min(delay * 1.5, maxDelay);
        schedule();
      })
      .catch(function () {
        // A brief outage (restart, network) should not stop the page; back off and try again.
        delay = maxDelay;
        schedule();
      });
  }

  function schedule() {
    if (Date.now() < giveUpAt) window.setTimeout(poll, delay);
  }

  schedule();
})();
