// The slice viewer: zoom (buttons, wheel, keys), pan (drag, arrow keys), window/level as CSS filters on
// the slice only, and the Grad-CAM overlay with a toggle, an opacity slider and a class chooser.
(function () {
  "use strict";
  var viewer = document.getElementById("viewer");
  if (!viewer) return;

  var viewport = document.getElementById("viewport");
  var stage = document.getElementById("stage");
  var slice = document.getElementById("slice");
  var overlay = document.getElementById("overlay");
  var zoomLevel = document.getElementById("zoom-level");
  var brightness = document.getElementById("brightness");
  var contrast = document.getElementById("contrast");
  var heatmapTools = document.getElementById("heatmap-tools");
  var toggle = document.getElementById("heatmap-toggle");
  var opacity = document.getElementById("heatmap-opacity");
  var classSelect = document.getElementById("heatmap-class");
  var heatmapStatus = document.getElementById("heatmap-status");

  var MIN_ZOOM = 1, MAX_ZOOM = 8, STEP = 1.25, PAN_STEP = 40;
  var view = { zoom: 1, x: 0, y: 0 };

  function clampPan() {
    // Keep the image covering the viewport: no empty space beyond the slice's edges.
    var w = viewport.clientWidth, h = viewport.clientHeight;
    var minX = w - w * view.zoom, minY = h - h * view.zoom;
    view.x = Math.min(0, Math.max(minX, view.x));
    view.y = Math.min(0, Math.max(minY, view.y));
  }

  function applyView() {
    clampPan();
    stage.style.transform = "translate(" + view.x + "px, " + view.y + "px) scale(" + view.zoom + ")";
    zoomLevel.textContent = Math.round(view.zoom * 100) + "%";
    viewport.classList.toggle("zoomed", view.zoom > 1);
  }

  function zoomAt(factor, cx, cy) {
    var next = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, view.zoom * factor));
    if (cx === undefined) { cx = viewport.clientWidth / 2; cy = viewport.clientHeight / 2; }
    // Keep the point under the cursor (or the centre) where it is.
    view.x = cx - (cx - view.x) * (next / view.zoom);
    view.y = cy - (cy - view.y) * (next / view.zoom);
    view.zoom = next;
    applyView();
  }

  function applyWindow() {
    slice.style.filter = "brightness(" + brightness.value + "%) contrast(" + contrast.value + "%)";
    document.getElementById("brightness-value").textContent = brightness.value + "%";
    document.getElementById("contrast-value").textContent = contrast.value + "%";
  }

  function reset() {
    view = { zoom: 1, x: 0, y: 0 };
    brightness.value = 100;
    contrast.value = 100;
    applyView();
    applyWindow();
  }

  viewer.querySelector('[data-action="zoom-in"]').addEventListener("click", function () { zoomAt(STEP); });
  viewer.querySelector('[data-action="zoom-out"]').addEventListener("click", function () { zoomAt(1 / STEP); });
  viewer.querySelector('[data-action="reset"]').addEventListener("click", reset);
  brightness.addEventListener("input", applyWindow);
  contrast.addEventListener("input", applyWindow);

  viewport.addEventListener("wheel", function (event) {
    event.preventDefault();
    var box = viewport.getBoundingClientRect();
    zoomAt(event.deltaY < 0 ? STEP : 1 / STEP, event.clientX - box.left, event.clientY - box.top);
  }, { passive: false });

  viewport.addEventListener("keydown", function (event) {
    var handled = true;
    switch (event.key) {
      case "+": case "=": zoomAt(STEP); break;
      case "-": case "_": zoomAt(1 / STEP); break;
      case "0": reset(); break;
      case "ArrowLeft": view.x += PAN_STEP; applyView(); break;
      case "ArrowRight": view.x -= PAN_STEP; applyView(); break;
      case "ArrowUp": view.y += PAN_STEP; applyView(); break;
      case "ArrowDown": view.y -= PAN_STEP; applyView(); break;
      default: handled = false;
    }
    if (handled) event.preventDefault();
  });

  var drag = null;
  viewport.addEventListener("pointerdown", function (event) {
    if (view.zoom <= 1) return;
    drag = { x: event.clientX - view.x, y: event.clientY - view.y };
    viewport.setPointerCapture(event.pointerId);
    viewport.classList.add("dragging");
  });
  viewport.addEventListener("pointermove", function (event) {
    if (!drag) return;
    view.x = event.clientX - drag.x;
    view.y = event.clientY - drag.y;
    applyView();
  });
  function endDrag() { drag = null; viewport.classList.remove("dragging"); }
  viewport.addEventListener("pointerup", endDrag);
  viewport.addEventListener("pointercancel", endDrag);
  window.addEventListener("resize", applyView);

  // --- Heat map --------------------------------------------------------------------------------

  var objectUrl = null;
  var pollTimer = null;
  var wanted = null; // the class whose map the overlay should show

  function say(text) { heatmapStatus.textContent = text || ""; }

  function showOverlay() {
    overlay.hidden = !toggle.checked || !overlay.getAttribute("src");
    overlay.style.opacity = String(opacity.value / 100);
    document.getElementById("heatmap-opacity-value").textContent = opacity.value + "%";
    opacity.disabled = !toggle.checked;
  }

  function setOverlaySource(url) {
    if (objectUrl && objectUrl !== url) { URL.revokeObjectURL(objectUrl); objectUrl = null; }
    overlay.setAttribute("src", url);
    showOverlay();
  }

  function loadHeatmap(className) {
    wanted = className;
    window.clearTimeout(pollTimer);
    var url = viewer.dataset.heatmapBase + "?class=" + encodeURIComponent(className);
    say("Loading the heat map for " + className + "…");
    window.kidneywebSession.fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (wanted !== className) return null; // the user chose another class meanwhile
        if (window.kidneywebSession.ended(response)) return null;
        if (response.status === 200) {
          return response.blob().then(function (blob) {
            if (wanted !== className) return;
            objectUrl = URL.createObjectURL(blob);
            setOverlaySource(objectUrl);
            say(toggle.checked ? "Showing where the model looked for " + className + "."
              : "The heat map for " + className + " is ready; tick Heat map to show it.");
          });
        }
        return response.json().then(function (body) {
          if (response.status === 202) {
            say("Computing the heat map for " + className + "… (" + body.detail + ")");
            pollTimer = window.setTimeout(function () { loadHeatmap(className); }, 1500);
          } else {
            overlay.removeAttribute("src");
            showOverlay();
            say("No heat map for " + className + ": " + (body.detail || "HTTP " + response.status));
          }
        });
      })
      .catch(function () {
        say("The heat map could not be loaded; check the connection and choose the class again.");
      });
  }

  toggle.addEventListener("change", function () {
    showOverlay();
    if (!toggle.checked) say("Heat map hidden.");
    else say(overlay.getAttribute("src") ? "Heat map shown." : "There is no heat map to show for this class.");
  });
  opacity.addEventListener("input", showOverlay);
  classSelect.addEventListener("change", function () { loadHeatmap(classSelect.value); });

  // scan_status.js announces the result when it arrives without a reload.
  document.addEventListener("kidneyweb:result", function (event) {
    var state = event.detail;
    if (state.status !== "done") return;
    heatmapTools.hidden = false;
    viewer.dataset.predicted = state.label;
    Array.prototype.forEach.call(classSelect.options, function (option) {
      option.textContent = option.value + (option.value === state.label ? " (AI)" : "");
      option.selected = option.value === state.label;
    });
    if (state.heatmap_url) {
      wanted = state.label;
      setOverlaySource(state.heatmap_url);
      say("");
    } else {
      say("No heat map was stored with this result; choose a class to compute one.");
    }
  });

  if (!viewer.dataset.heatmapUrl && viewer.dataset.predicted) {
    say("No heat map was stored with this result; choose a class to compute one.");
  }
  applyView();
  applyWindow();
  showOverlay();
})();
