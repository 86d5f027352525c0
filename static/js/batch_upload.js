// Batch upload: every file dropped or chosen is sent on its own to the API (session + CSRF token), with
// its own progress bar, its own result or refusal, and then its diagnosis as it arrives. One bad file
// never stops the others. Without JavaScript the form posts all files to the page, which does the same.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form || !window.FormData || !window.XMLHttpRequest) return;

  var input = form.querySelector('input[type="file"]');
  var dropzone = document.getElementById("dropzone");
  var list = document.getElementById("upload-list");
  var submit = document.getElementById("upload-submit");
  var csrf = form.querySelector('input[name="csrfmiddlewaretoken"]').value;
  var PARALLEL = 2;
  var queue = [];
  var running = 0;

  // With JavaScript, choosing or dropping files starts the uploads at once: no button to press.
  submit.hidden = true;
  dropzone.classList.add("enhanced");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    takeChosen();
  });

  function urlFor(template, id) { return template.replace(/0\/?([^/]*)$/, id + "/$1"); }

  function messagesOf(status, body) {
    if (status === 0) return ["The server could not be reached; check the connection and try again."];
    if (status === 401 || status === 403) return ["Your session has ended; log in again and retry."];
    if (status === 413) return ["The file is too large for the server."];
    if (body && typeof body === "object") {
      var out = [];
      Object.keys(body).forEach(function (key) {
        var value = body[key];
        (Array.isArray(value) ? value : [value]).forEach(function (message) { out.push(String(message)); });
      });
      if (out.length) return out;
    }
    return ["The upload failed (HTTP " + status + ")."];
  }

  function row(file) {
    var li = document.createElement("li");
    li.className = "upload-item";
    var name = document.createElement("span");
    name.className = "upload-name";
    name.textContent = file.name + " (" + Math.max(1, Math.round(file.size / 1024)) + " KB)";
    var progress = document.createElement("progress");
    progress.max = 100;
    progress.value = 0;
    progress.setAttribute("aria-label", "Upload of " + file.name);
    var status = document.createElement("span");
    status.className = "upload-status";
    status.textContent = "Waiting…";
    li.appendChild(name);
    li.appendChild(progress);
    li.appendChild(status);
    list.appendChild(li);
    return { li: li, progress: progress, status: status };
  }

  function setStatus(item, text, kind, href) {
    item.status.textContent = "";
    item.li.className = "upload-item" + (kind ? " upload-" + kind : "");
    if (href) {
      var link = document.createElement("a");
      link.href = href;
      link.textContent = text;
      item.status.appendChild(link);
    } else {
      item.status.textContent = text;
    }
    if (kind === "error") item.status.setAttribute("role", "alert");
  }

  function followDiagnosis(item, scanId) {
    var statusUrl = urlFor(form.dataset.statusUrlTemplate, scanId);
    var scanUrl = urlFor(form.dataset.scanUrlTemplate, scanId);
    var delay = 1500;
    function poll() {
      window.kidneywebSession.fetch(statusUrl, { credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          if (window.kidneywebSession.ended(response)) return null;
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (state) {
          if (state === null) {
            setStatus(item, "Uploaded; log in again to see its diagnosis", "", scanUrl);
          } else if (state.status === "done") {
            var text = state.needs_review ? "Needs review · AI: " + state.label : "Diagnosed: " + state.label;
            setStatus(item, text + " (" + Math.round(state.confidence * 100) + "%)", state.needs_review ? "review" : "done", scanUrl);
          } else if (state.status === "failed") {
            setStatus(item, "Diagnosis failed: " + state.failure_reason, "error", scanUrl);
          } else {
            window.setTimeout(poll, delay = Math.min(delay * 1.5, 5000));
          }
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    poll();
  }

  function send(file, item) {
    running += 1;
    var data = new FormData();
    data.append("patient", form.dataset.patient);
    data.append("image", file, file.name);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.dataset.apiUrl);
    xhr.setRequestHeader("X-CSRFToken", csrf);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) item.progress.value = Math.round((event.loaded / event.total) * 100);
    });
    setStatus(item, "Uploading…", "busy");
    xhr.addEventListener("loadend", function () {
      running -= 1;
      var body = null;
      try { body = JSON.parse(xhr.responseText); } catch (ignored) { body = null; }
      if (xhr.status === 201 || xhr.status === 202) {
        item.progress.value = 100;
        setStatus(item, "Uploaded; diagnosing…", "busy", urlFor(form.dataset.scanUrlTemplate, body.id));
        followDiagnosis(item, body.id);
        // The patient's "To review" list (scan_list.js) shows the new scan at once.
        document.dispatchEvent(new CustomEvent("kidneyweb:uploaded", { detail: { scan: body.id } }));
      } else {
        item.progress.value = 0;
        setStatus(item, "Refused: " + messagesOf(xhr.status, body).join(" "), "error");
      }
      next();
    });
    xhr.send(data);
  }

  function next() {
    while (running < PARALLEL && queue.length) {
      var job = queue.shift();
      send(job.file, job.item);
    }
  }

  function add(files) {
    Array.prototype.forEach.call(files, function (file) { queue.push({ file: file, item: row(file) }); });
    next();
  }

  function takeChosen() {
    if (input.files.length) { add(input.files); input.value = ""; }
  }
  input.addEventListener("change", takeChosen);
  // Files chosen while this script was still loading (a slow link, a busy server) sit in the input
  // with no listener to have seen them, and the button that would send them is now hidden.
  takeChosen();
  ["dragenter", "dragover"].forEach(function (type) {
    dropzone.addEventListener(type, function (event) {
      event.preventDefault();
      dropzone.classList.add("dragover");
    });
  });
  ["dragleave", "drop"].forEach(function (type) {
    dropzone.addEventListener(type, function () { dropzone.classList.remove("dragover"); });
  });
  dropzone.addEventListener("drop", function (event) {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files.length) add(event.dataTransfer.files);
  });
})();
