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

  // Legends sit above the plot, left-aligned, so they never meet an axis title whatever
  // the width (Plotly's horizontal legend sits below the plot, on the x title); Plotly
  // grows the top margin when the legend wraps onto more lines.
  var LEGEND = { orientation: "h", x: 0, xanchor: "left", y: 1.02, yanchor: "bottom" };
  var CONFIG = { responsive: true, displaylogo: false };

  function checkedSlugs() {
    return Array.prototype.map.call(
      document.querySelectorAll(".pick-model:checked"), function (b) { return b.value; });
  }

  // A best's label sits above its point, a second best's below and to the right (so the
  // two of a class part, and a second best's does not run into its left neighbour's), all
  // leaning inwards near either end of the axis so that none is cut off there.
  function labelPosition(p, range) {
    var f = range ? (Math.log10(p.params) - range[0]) / (range[1] - range[0]) : 0.5;
    if (p.mark === "second") { return f > 0.9 ? "bottom left" : "bottom right"; }
    return "top " + (f < 0.2 ? "right" : (f > 0.9 ? "left" : "center"));
  }

  // Names shown without hovering: the best and second of each size class (as the table
  // marks them; on a phone-width chart the best only, or they pile up) and the models
  // ticked for comparison; the others stay hover-only.
  function paramsTraces(data, narrow) {
    var picked = checkedSlugs();
    function named(p) {
      return picked.indexOf(p.slug) >= 0 || p.mark === "best" || (p.mark === "second" && !narrow);
    }
    var traces = ["reported", "measured"].map(function (kind) {
      var pts = data.points.filter(function (p) { return p.provenance === kind; });
      return {
        type: "scatter", mode: "markers+text", name: kind,
        x: pts.map(function (p) { return p.params; }),
        y: pts.map(function (p) { return p.avg; }),
        text: pts.map(function (p) { return named(p) ? p.name : ""; }),
        textposition: pts.map(function (p) { return labelPosition(p, data.x_range); }),
        textfont: { size: narrow ? 10 : 11, color: "#1d2330" },
        hovertext: pts.map(function (p) { return p.name + " (" + p.source + ")"; }),
        customdata: pts.map(function (p) { return p.slug; }),
        hovertemplate: "%{hovertext}<br>%{x:.3s} params<br>avg %{y:.1f}%<extra></extra>",
        marker: {
          size: 9, color: COLORS[kind],
          line: { width: pts.map(function (p) { return picked.indexOf(p.slug) >= 0 ? 2 : 0; }), color: "#1d2330" }
        }
      };
    }).filter(function (t) { return t.x.length; });
    var front = data.pareto.map(function (i) { return data.points[i]; });
    traces.push({
      type: "scatter", mode: "lines", name: "Pareto front", line: { shape: "hv", dash: "dot", color: "#555" },
      x: front.map(function (p) { return p.params; }), y: front.map(function (p) { return p.avg; }),
      hoverinfo: "skip"
    });
    return traces;
  }

  function paramsLayout(data) {
    return {
      margin: { t: 10, r: 10, l: 50 }, height: 420, legend: LEGEND,
      xaxis: {
        type: "log", title: { text: "parameters (log scale)" }, range: data.x_range, automargin: true,
        tickmode: "array",
        tickvals: data.ticks.map(function (t) { return t.value; }),
        ticktext: data.ticks.map(function (t) { return t.label; })
      },
      yaxis: { title: { text: "average accuracy (%)" }, automargin: true }
    };
  }

  function plotParams(el, data) {
    // Drawn afresh each time: Plotly.react left new labels undrawn in a trace that had none.
    var narrow = el.clientWidth < 560;
    return Plotly.newPlot(el, paramsTraces(data, narrow), paramsLayout(data), CONFIG).then(function () {
      el.classList.add("drawn");
      el.on("plotly_click", function (ev) {
        var slug = ev.points[0].customdata;
        if (slug) { window.location.href = "/models/" + encodeURIComponent(slug) + "/"; }
      });
    });
  }

  function drawParams(el) {
    getJSON(el.dataset.src).then(function (data) {
      return plotParams(el, data).then(function () {
        // A model ticked (or unticked) in the table is named (or not) at once.
        document.addEventListener("change", function (ev) {
          if (ev.target.classList && ev.target.classList.contains("pick-model")) {
            plotParams(el, data);
          }
        });
      });
    }).catch(function (err) { showError(el, err); });
  }

  function pickedSlugs() {
    var picked = checkedSlugs();
    if (!picked.length) {
      picked = Array.prototype.slice.call(document.querySelectorAll(".pick-model"), 0, 3)
        .map(function (b) { return b.value; });
    }
    return picked;
  }

  function drawTasks(el) {
    var slugs = pickedSlugs();
    if (!slugs.length) { el.textContent = "No model to show."; return; }
    var url = el.dataset.src + "?models=" + slugs.map(encodeURIComponent).join(",");
    if (el.dataset.cols) { url += "&cols=" + encodeURIComponent(el.dataset.cols); }
    getJSON(url).then(function (data) {
      var labels = data.tasks.map(function (t) { return t.label; });
      var traces = data.series.map(function (s) {
        var known = s.stderr.some(function (e) { return e !== null; });
        return {
          type: "bar", name: s.name, x: labels, y: s.values,
          // A reported score has no stderr: no bar at all (a 0 would draw a flat cap).
          error_y: {
            type: "data", visible: known,
            array: s.stderr.map(function (e) { return e === null ? NaN : e; })
          }
        };
      });
      return Plotly.newPlot(el, traces, {
        barmode: "group", margin: { t: 10, r: 10, l: 50 }, height: 420, legend: LEGEND,
        // automargin: rotated task names on a phone stay inside the chart.
        xaxis: { automargin: true },
        yaxis: { title: { text: "accuracy (%)" }, automargin: true }
      }, CONFIG).then(function () { el.classList.add("drawn"); });
    }).catch(function (err) { showError(el, err); });
  }

  document.addEventListener("DOMContentLoaded", function () {
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
