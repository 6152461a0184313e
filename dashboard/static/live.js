// The dashboard's only script: the API-down banner on every page, and the flow run page's live parts
// (state, task runs, log lines) polled once a second while the run is unfinished, every 5 s after.
// Everything from the API is either HTML the server escaped (Jinja autoescape) or set with textContent.
(function () {
  "use strict";
  var HEALTH_EVERY_MS = 10000, HEALTH_DOWN_EVERY_MS = 2000, LIVE_EVERY_MS = 1000, FINISHED_EVERY_MS = 5000, RETRY_MS = 2000;
  var banner = document.getElementById("api-banner");

  function setApiDown(down) {
    if (banner) { banner.hidden = !down; }
    if (!down && document.body.dataset.reloadWhenUp) { window.location.reload(); }
  }

  function pollHealth() {
    fetch(document.body.dataset.healthUrl, {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { setApiDown(!r.ok); }, function () { setApiDown(true); })
      .then(function () {
        var down = document.body.dataset.reloadWhenUp || (banner && !banner.hidden);
        window.setTimeout(pollHealth, down ? HEALTH_DOWN_EVERY_MS : HEALTH_EVERY_MS);
      });
  }

  var live = document.getElementById("live");
  if (!live) {
    window.setTimeout(pollHealth, document.body.dataset.reloadWhenUp ? HEALTH_DOWN_EVERY_MS : HEALTH_EVERY_MS);
    return;
  }

  var lines = document.getElementById("log-lines");
  var level = document.getElementById("log-level");
  var search = document.getElementById("log-search");
  var offset = 0, generation = 0, timer = null, typing = null;

  function cell(row, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) { td.className = cls; }
    row.appendChild(td);
  }

  function addLogs(logs) {
    logs.forEach(function (log) {
      var row = document.createElement("tr");
      row.className = "log " + String(log.level).toLowerCase();
      cell(row, log.timestamp);
      cell(row, log.level, "level");
      cell(row, log.name);
      cell(row, log.message, "message");
      lines.appendChild(row);
    });
  }

  function schedule(ms) {
    window.clearTimeout(timer);
    timer = window.setTimeout(poll, ms);
  }

  function poll() {
    var mine = generation;
    var params = new URLSearchParams({offset: String(offset), level: level.value, q: search.value});
    fetch(live.dataset.liveUrl + "?" + params.toString(), {credentials: "same-origin", cache: "no-store"})
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(function (data) {
        if (mine !== generation) { return; }  // the filter changed meanwhile: that answer is for the old one
        setApiDown(false);
        document.getElementById("run-summary").innerHTML = data.html.summary;
        document.getElementById("run-tasks").innerHTML = data.html.tasks;
        addLogs(data.logs);
        offset = data.offset;
        live.dataset.finished = String(data.finished);
        document.getElementById("cancel-button").disabled = data.finished;
        document.getElementById("restart-button").disabled = !data.can_restart;
        schedule(data.more ? 0 : (data.finished ? FINISHED_EVERY_MS : LIVE_EVERY_MS));
      }, function () {
        if (mine !== generation) { return; }
        setApiDown(true);
        schedule(RETRY_MS);
      });
  }

  function restart() {
    generation += 1;
    offset = 0;
    lines.textContent = "";
    schedule(0);
  }

  level.addEventListener("change", restart);
  search.addEventListener("input", function () { window.clearTimeout(typing); typing = window.setTimeout(restart, 300); });
  poll();
}());
