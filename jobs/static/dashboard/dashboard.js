// ZipLine dashboard: keeps the page live without reloading it, and sends its buttons without leaving it.
//
// Every element with data-refresh="<url>" is refetched every few seconds (body[data-refresh-ms]) and its
// contents swapped for the fresh HTML fragment the server renders. Forms marked data-action are POSTed
// with fetch (their CSRF token travels in the form data); the answer's message is shown as a toast and the
// fragments are refreshed at once. Without JavaScript the same forms post normally and redirect back.
(function () {
  "use strict";

  var interval = Number(document.body.dataset.refreshMs) || 3000;
  var last = new Map(); // element -> the HTML it shows, without CSRF tokens (they differ on every render)
  var timer = null;
  var busy = false;

  function comparable(html) {
    return html.replace(/name="csrfmiddlewaretoken" value="[^"]*"/g, "");
  }

  function setLive(ok) {
    var live = document.querySelector("[data-live]");
    if (!live) return;
    live.classList.toggle("is-stale", !ok);
    var text = live.querySelector("[data-live-text]");
    var now = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    if (text) text.textContent = ok ? "Live · " + now : "Offline · retrying";
  }

  function swap(element, html) {
    var key = comparable(html);
    if (last.get(element) === key) return;
    // Keep the disclosure widgets (tracebacks) the reader opened, and focus inside the element.
    var open = Array.prototype.map.call(element.querySelectorAll("details[open][data-keep]"), function (d) {
      return d.dataset.keep;
    });
    if (element.contains(document.activeElement) && document.activeElement.matches("input, select, textarea")) return;
    element.innerHTML = html;
    open.forEach(function (name) {
      var d = element.querySelector('details[data-keep="' + name + '"]');
      if (d) d.open = true;
    });
    last.set(element, key);
  }

  function refreshOne(element) {
    return fetch(element.dataset.refresh, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { "X-Requested-With": "fetch" },
    }).then(function (response) {
      if (response.redirected) { window.location.reload(); throw new Error("signed out"); }
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.text();
    }).then(function (html) { swap(element, html); });
  }

  function refreshAll() {
    var elements = document.querySelectorAll("[data-refresh]");
    if (!elements.length || busy) return Promise.resolve();
    busy = true;
    return Promise.all(Array.prototype.map.call(elements, refreshOne))
      .then(function () { setLive(true); }, function () { setLive(false); })
      .then(function () { busy = false; });
  }

  function schedule() {
    clearTimeout(timer);
    if (document.hidden) return; // resumes on visibilitychange
    timer = setTimeout(function () { refreshAll().then(schedule); }, interval);
  }

  function toast(message, kind) {
    var box = document.querySelector("[data-toasts]");
    if (!box || !message) return;
    var item = document.createElement("div");
    item.className = "toast" + (kind ? " toast-" + kind : "");
    item.setAttribute("role", kind === "error" ? "alert" : "status");
    item.textContent = message;
    box.appendChild(item);
    setTimeout(function () { item.remove(); }, 6000);
  }

  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-action]");
    if (!form) return;
    event.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    var button = form.querySelector("button");
    if (button) button.disabled = true;
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { "X-Requested-With": "fetch", Accept: "application/json" },
    }).then(function (response) {
      return response.json().catch(function () { return { message: "Request failed (HTTP " + response.status + ")." }; })
        .then(function (body) { toast(body.message, response.ok ? "success" : "error"); });
    }, function () {
      toast("The server did not answer.", "error");
    }).then(function () {
      if (button) button.disabled = false;
      return refreshAll();
    }).then(schedule);
  });

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) refreshAll().then(schedule);
  });

  // Messages rendered with the page (after a plain form post) fade like the script's own.
  document.querySelectorAll("[data-toasts] .toast").forEach(function (item) {
    setTimeout(function () { item.remove(); }, 6000);
  });
  setLive(true);
  schedule();
})();
