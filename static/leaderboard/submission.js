// Live progress of one submission, polled from its JSON twin.
(function () {
  "use strict";
  function text(id, value) { var el = document.getElementById(id); if (el) { el.textContent = value; } }
  function pct(x) { return Math.round(x * 100) + "%"; }

  function update(d) {
    var status = document.getElementById("status");
    status.textContent = d.status;
    status.className = "status " + d.status;
    text("task", d.task ? d.task + " (" + (d.task_index + 1) + " of " + d.task_count + ")" : "–");
    // Progress only moves forward on the page: a late poll answered out of order must not
    // pull the bar back.
    var bar = document.getElementById("progress");
    var shown = Math.max(Number(bar.value) || 0, d.progress);
    bar.value = shown;
    text("percent", pct(shown));
    text("stage", d.stage);
    text("elapsed", d.elapsed_s === null ? "–" : d.elapsed_s + " s");
    text("eta", d.eta_s === null ? "–" : d.eta_s + " s");
    if (d.error) { text("error", d.error); document.getElementById("error-box").hidden = false; }
    if (d.log_tail) { text("log", d.log_tail); document.getElementById("log-box").hidden = false; }
    if (d.model_url && !document.getElementById("model-link")) {
      var a = document.createElement("a");
      a.id = "model-link"; a.href = d.model_url; a.textContent = d.name;
      var result = document.getElementById("result");
      result.textContent = ""; result.appendChild(a);
    }
    if (!d.active) {
      var cancel = document.getElementById("cancel-box");
      if (cancel) { cancel.remove(); }
    }
    // The scores (stored when probing starts) and the latency (when it ends) are rendered by
    // the server: the page reloads once at each of those two steps.
    var box = document.getElementById("submission");
    if (d.outcome && d.status !== box.dataset.status && (d.status === "probing" || d.status === "done")) {
      box.dataset.status = d.status;
      window.location.reload();
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("submission");
    if (!box || box.dataset.active !== "1") { return; }
    var timer = setInterval(function () {
      fetch(box.dataset.src, { headers: { Accept: "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (d) { update(d); if (!d.active) { clearInterval(timer); } })
        .catch(function () { /* the next poll tries again */ });
    }, 1500);
  });
})();
