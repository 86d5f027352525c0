// Polls the scan's status until the diagnosis is done or failed, then shows the result in place and
// announces it (event "kidneyweb:result") to the viewer and the review form; and, for a slice sent to the
// archive (PACS), until the archive has answered for its result or review.
(function () {
  "use strict";
  var section = document.getElementById("prediction");
  // What the archive (PACS) answered for the result, or for a withdrawn scan's rejection note, and the record
  // system for the newest change (HL7 v2): [element, key].
  var archived = [["pacs-status", "archive"], ["pacs-rejection", "archive_rejection"],
                  ["hl7-status", "record_system"]].map(function (pair) {
    return [document.getElementById(pair[0]), pair[1]];
  }).filter(function (pair) { return pair[0] !== null; });
  var reviewForm = document.getElementById("review-form");
  var reviewSubmit = document.getElementById("review-submit");

  // The review button says what it will do: confirm the AI label or correct it.
  function describeReviewButton() {
    if (!reviewForm || !reviewSubmit) return;
    var chosen = reviewForm.querySelector('input[name="label"]:checked');
    var ai = reviewSubmit.dataset.aiLabel;
    if (!chosen || !ai) { reviewSubmit.textContent = "Save review"; return; }
    reviewSubmit.textContent = chosen.value === ai ? "Confirm AI label: " + ai : "Correct to " + chosen.value;
  }
  if (reviewForm) reviewForm.addEventListener("change", describeReviewButton);
  describeReviewButton();

  function archivePending() {
    return archived.some(function (pair) { return pair[0].dataset.status === "pending"; });
  }
  if (!section || (section.dataset.final === "true" && !archivePending())) return;

  var url = section.dataset.statusUrl;
  var delay = 1000;
  var maxDelay = 5000;
  var giveUpAt = Date.now() + 15 * 60 * 1000;

  function field(name) { return section.querySelector('[data-field="' + name + '"]'); }
  function show(when, visible) {
    document.querySelectorAll('[data-when="' + when + '"]').forEach(function (el) { el.hidden = !visible; });
  }

  function renderProbabilities(list, rows, threshold) {
    while (list.firstChild) list.removeChild(list.firstChild);
    list.style.setProperty("--threshold", Math.round(threshold * 100) + "%");
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

  function prepareReview(state) {
    if (!reviewForm) return;
    var aiLabel = state.status === "done" ? state.label : "";
    // A clinician's earlier reading stays chosen: a new AI result must not pre-select itself over it.
    var chosen = reviewForm.dataset.reviewedLabel || aiLabel;
    reviewSubmit.dataset.aiLabel = aiLabel;
    // The review is of the result now on screen.
    var seen = reviewForm.querySelector('input[name="prediction_id"]');
    if (seen) seen.value = state.id;
    reviewForm.querySelectorAll('input[name="label"]').forEach(function (input) {
      var label = reviewForm.querySelector('label[for="' + input.id + '"]');
      if (label) label.textContent = input.value + (aiLabel && input.value === aiLabel ? " (AI)" : "");
      input.checked = input.value === chosen;
    });
    var unreviewed = document.querySelector("p.muted#current-review");
    if (unreviewed) {
      unreviewed.textContent = "Not reviewed yet. " + (aiLabel ? "Confirm the AI label or choose the true class."
        : "The AI gave no result: choose the class you read on the slice.");
    }
    describeReviewButton();
  }

  function renderResult(state) {
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
      field("needs_review").hidden = !state.needs_review;
      field("needs_review_reason").textContent = state.needs_review_reason;
      field("label_prefix").textContent = state.needs_review ? "AI suggestion (uncertain):" : "Most likely:";
      field("label").textContent = state.label;
      field("confidence").textContent = state.confidence === null ? "" : Math.round(state.confidence * 100) + "%";
      field("confidence_threshold").textContent = Math.round(state.confidence_threshold * 100) + "%";
      renderProbabilities(field("probabilities"), state.probabilities, state.confidence_threshold);
      // The reliability table marks the class just said, as the server does for a finished result.
      document.querySelectorAll("#reliability tbody tr").forEach(function (row) {
        row.classList.toggle("current", row.querySelector("th").textContent === state.label);
      });
      prepareReview(state);
    }
    if (state.status === "failed") {
      field("failure_reason").textContent = state.failure_reason;
      prepareReview(state);
    }
    if (state.final) document.dispatchEvent(new CustomEvent("kidneyweb:result", { detail: state }));
  }

  // A result on screen since the page loaded, or once shown, is not rendered again: that would undo a label the
  // clinician is choosing while the archive is still answering.
  var resultShown = section.dataset.final === "true";
  function render(state) {
    if (!resultShown) {
      renderResult(state);
      resultShown = state.final;
    }
    archived.forEach(function (pair) {
      var element = pair[0], answer = state[pair[1]];
      if (!answer || answer.status === element.dataset.status) return;
      // Rendered by the server from the same template as the page: escaped there.
      element.innerHTML = answer.html;
      element.dataset.status = answer.status;
      element.hidden = false;
    });
  }

  function poll() {
    window.kidneywebSession.fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (window.kidneywebSession.ended(response)) return null;
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (state) {
        if (state === null) return; // the session ended: stop, the note says why
        render(state);
        if (state.final && !archivePending()) return;
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
