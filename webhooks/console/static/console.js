// The console's only script: live regions (a page's [data-live] parts are fetched again every half second and
// replaced when they changed, unless someone is typing in one), the pickers that submit on change, and the
// confirmation before a drop. No inline script anywhere: the pages' CSP allows only this file.
(function () {
  "use strict";
  var INTERVAL = 500;

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches && target.matches("select[data-autosubmit]") && target.form) target.form.submit();
  });
  document.addEventListener("input", function (event) {
    var region = event.target.closest && event.target.closest("[data-live]");
    if (region) region.dataset.dirty = "1";
  });
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    if (button && button.dataset.confirm && !window.confirm(button.dataset.confirm)) event.preventDefault();
  });

  var regions = document.querySelectorAll("[data-live]");
  if (!regions.length) return;
  var busy = false;

  function editing(region) {
    var active = document.activeElement;
    var typing = active && region.contains(active) && active.matches("input:not([type=hidden]), textarea, select");
    return region.dataset.dirty === "1" || typing;
  }

  function tick() {
    if (busy || document.hidden) return;
    busy = true;
    fetch(window.location.href, { headers: { "X-Console-Live": "1" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 401) { window.location.reload(); return null; }
        return response.ok ? response.json() : null;
      })
      .then(function (data) {
        if (!data || !data.regions) return;
        Object.keys(data.regions).forEach(function (name) {
          var region = document.querySelector('[data-live="' + name + '"]');
          var fresh = data.regions[name];
          if (!region || region.dataset.digest === fresh.digest || editing(region)) return;
          region.innerHTML = fresh.html; // rendered by the server's templates, every outside text escaped
          region.dataset.digest = fresh.digest;
        });
      })
      .catch(function () { /* the server is restarting: try again at the next tick */ })
      .then(function () { busy = false; });
  }

  window.setInterval(tick, INTERVAL);
})();
