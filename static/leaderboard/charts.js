// Draws the leaderboard's charts from their .json twins (no inline scripts: CSP-friendly).
(function () {
  "use strict";
  var COLORS = { reported: "#4c72b0", measured: "#dd8452" };

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" } }).then(function (r) {
      if (!r.ok) { throw new Error(url + " answered " + r.status); }
      return r.json();
    });
  }

  function showError(el, err) {
    el.textContent = "Chart unavailable: " + err.message;
    el.classList.add("chart-error");
  }

  function drawParams(el) {
    getJSON(el.dataset.src).then(function (data) {
      var traces = ["reported", "measured"].map(function (kind) {
        var pts = data.points.filter(function (p) { return p.provenance === kind; });
        return {
          type: "scatter", mode: "markers", name: kind,
          x: pts.map(function (p) { return p.params; }),
          y: pts.map(function (p) { return p.avg; }),
          text: pts.map(function (p) { return p.name + " (" + p.source + ")"; }),
          customdata: pts.map(function (p) { return p.slug; }),
          hovertemplate: "%{text}<br>%{x:.3s} params<br>avg %{y:.1f}%<extra></extra>",
          marker: { size: 9, color: COLORS[kind] }
        };
      }).filter(function (t) { return t.x.length; });
      var front = data.pareto.map(function (i) { return data.points[i]; });
      traces.push({
        type: "scatter", mode: "lines", name: "Pareto front", line: { shape: "hv", dash: "dot", color: "#555" },
        x: front.map(function (p) { return p.params; }), y: front.map(function (p) { return p.avg; }),
        hoverinfo: "skip"
      });
      Plotly.newPlot(el, traces, {
        margin: { t: 10, r: 10 }, height: 420,
        xaxis: { type: "log", title: { text: "parameters (log scale)" } },
        yaxis: { title: { text: "average accuracy (%)" } },
        legend: { orientation: "h" }
      }, { responsive: true, displaylogo: false }).then(function () {
        el.classList.add("drawn");
        el.on("plotly_click", function (ev) {
          var slug = ev.points[0].customdata;
          if (slug) { window.location.href = "/models/" + encodeURIComponent(slug) + "/"; }
        });
      });
    }).catch(function (err) { showError(el, err); });
  }

  function pickedSlugs() {
    var picked = Array.prototype.map.call(
      document.querySelectorAll(".pick-model:checked"), function (b) { return b.value; });
    if (!picked.length) {
      picked = Array.prototype.slice.call(document.querySelectorAll(".pick-model"), 0, 3)
        .map(function (b) { return b.value; });
    }
    return picked;
  }

  function drawTasks(el) {
    var slugs = pickedSlugs();
    if (!slugs.length) { el.textContent = "No model to show."; return; }
    getJSON(el.dataset.src + "?models=" + slugs.map(encodeURIComponent).join(","))
      .then(function (data) {
        var labels = data.tasks.map(function (t) { return t.label; });
        var traces = data.series.map(function (s) {
          return {
            type: "bar", name: s.name, x: labels, y: s.values,
            error_y: { type: "data", array: s.stderr.map(function (e) { return e || 0; }), visible: true }
          };
        });
        Plotly.newPlot(el, traces, {
          barmode: "group", margin: { t: 10, r: 10 }, height: 420,
          yaxis: { title: { text: "accuracy (%)" } }, legend: { orientation: "h" }
        }, { responsive: true, displaylogo: false }).then(function () { el.classList.add("drawn"); });
      }).catch(function (err) { showError(el, err); });
  }

  function drawLatency(el) {
    getJSON(el.dataset.src).then(function (data) {
      if (!data.points.length) { el.textContent = "No model has both accuracy and latency here yet."; return; }
      var maxMem = Math.max.apply(null, data.points.map(function (p) { return p.peak_rss_mb || 0; })) || 1;
      var points = {
        type: "scatter", mode: "markers+text", name: "models", textposition: "top center",
        x: data.points.map(function (p) { return p.execute_ms; }),
        y: data.points.map(function (p) { return p.avg; }),
        text: data.points.map(function (p) { return p.name; }),
        customdata: data.points.map(function (p) { return p.slug; }),
        hovertemplate: "%{text}<br>%{x:.2f} ms/token<br>avg %{y:.1f}%<extra></extra>",
        marker: {
          color: data.points.map(function (p) { return COLORS[p.provenance] || "#4c72b0"; }),
          size: data.points.map(function (p) { return p.peak_rss_mb ? 10 + 30 * p.peak_rss_mb / maxMem : 12; }),
          opacity: 0.75
        }
      };
      var front = data.pareto.map(function (i) { return data.points[i]; });
      var line = {
        type: "scatter", mode: "lines", name: "Pareto front", line: { shape: "hv", dash: "dot", color: "#555" },
        x: front.map(function (p) { return p.execute_ms; }), y: front.map(function (p) { return p.avg; }),
        hoverinfo: "skip"
      };
      Plotly.newPlot(el, [points, line], {
        margin: { t: 10, r: 10 }, height: 380, showlegend: false,
        xaxis: { type: "log", title: { text: "Execute: ms per decoded token (log scale)" } },
        yaxis: { title: { text: "average accuracy (%)" } }
      }, { responsive: true, displaylogo: false }).then(function () {
        el.classList.add("drawn");
        el.on("plotly_click", function (ev) {
          var slug = ev.points[0].customdata;
          if (slug) { window.location.href = "/models/" + encodeURIComponent(slug) + "/"; }
        });
      });
    }).catch(function (err) { showError(el, err); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll(".latency-chart"), drawLatency);
    var params = document.getElementById("chart-params");
    if (params) { drawParams(params); }
    var tasks = document.getElementById("chart-tasks");
    if (tasks) {
      drawTasks(tasks);
      var button = document.getElementById("draw-bars");
      if (button) { button.addEventListener("click", function () { drawTasks(tasks); }); }
    }
  });
})();
