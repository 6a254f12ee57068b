// patchbay web UI: small progressive enhancement. Pages work without it;
// with it, a running rollout's page follows the rollout live (server-sent
// events) and filter selects apply at once.
"use strict";
(function () {
  function follow(section) {
    var url = section.getAttribute("data-progress");
    if (!url || !window.EventSource) return;
    var es = new EventSource(url);
    es.addEventListener("progress", function (ev) {
      var p = JSON.parse(ev.data);
      var st = document.getElementById("rollout-state");
      st.textContent = p.state.replace(/_/g, " ");
      st.className = "state " + p.state;
      var why = document.getElementById("rollout-why");
      why.textContent = p.why || "";
      why.hidden = !p.why;
      (p.rings || []).forEach(function (r, i) {
        var row = section.querySelector('tr[data-ring="' + i + '"]');
        if (!row) return;
        row.querySelector("td.bar").innerHTML = r.bar;
        row.querySelector('[data-f="done"]').textContent = r.done;
        row.querySelector('[data-f="failed"]').textContent = r.failed;
        row.querySelector('[data-f="in_flight"]').textContent = r.in_flight;
        row.querySelector('[data-f="pending"]').textContent = r.pending;
      });
      Object.keys(p.hosts || {}).forEach(function (id) {
        var cell = document.querySelector('td[data-host="' + CSS.escape(id) + '"]');
        if (cell) cell.textContent = p.hosts[id].replace(/_/g, " ");
      });
      document.querySelectorAll("#controls form[data-action]").forEach(function (f) {
        f.hidden = p.actions.indexOf(f.getAttribute("data-action")) < 0;
      });
      section.setAttribute("data-state", p.state);
      if (p.ended) es.close();
    });
    es.addEventListener("end", function () { es.close(); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var s = document.querySelector("[data-progress]");
    if (s) follow(s);
  });
})();
