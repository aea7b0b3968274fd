// Draws /latency/'s accuracy-against-latency charts from their .json twins (no inline
// scripts: CSP-friendly). The axes are chosen from the data: a log axis over 15.6-16 ms
// shows nothing but odd ticks, so it is used only when the models span more than 10x.
(function () {
  "use strict";
  var COLORS = { reported: "#4c72b0", measured: "#dd8452" };
  var LOG_SPAN = 10;

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" } }).then(function (r) {
      if (!r.ok) { throw new Error(url + " answered " + r.status); }
      return r.json();
    });
  }

  // A padded range around the values, so that one or two points are not pinned to the edges.
  function linearRange(values, minPad) {
    var lo = Math.min.apply(null, values), hi = Math.max.apply(null, values);
    var pad = Math.max((hi - lo) * 0.15, Math.abs(hi) * 0.05, minPad);
    return [Math.max(0, lo - pad), hi + pad];
  }

  function xAxis(values) {
    var lo = Math.min.apply(null, values), hi = Math.max.apply(null, values);
    var title = "Execute: ms per decoded token";
    if (lo > 0 && hi / lo > LOG_SPAN) {
      // Plotly's log ranges are in decades; a quarter decade each side keeps labels inside.
      return { type: "log", title: { text: title + " (log scale)" },
               range: [Math.log10(lo) - 0.25, Math.log10(hi) + 0.25] };
    }
    return { type: "linear", title: { text: title }, range: linearRange(values, 0.05) };
  }

  function spreadText(p) {
    if (!p.decode_samples) { return ""; }
    var cv = p.decode_cv === null ? "" : " · CV " + (100 * p.decode_cv).toFixed(1) + "%";
    return "<br>p90 " + p.decode_ms_p90.toFixed(2) + " ms · " + p.decode_samples + " samples" + cv +
      (p.unstable ? "<br>unstable measurement" : "");
  }

  function draw(el) {
    getJSON(el.dataset.src).then(function (data) {
      if (!data.points.length) { el.textContent = "No model has both accuracy and latency here yet."; return; }
      var pts = data.points;
      var maxMem = Math.max.apply(null, pts.map(function (p) { return p.peak_rss_mb || 0; })) || 1;
      var xs = pts.map(function (p) { return p.execute_ms; });
      var ys = pts.map(function (p) { return p.avg; });
      var points = {
        type: "scatter", mode: "markers+text", name: "models",
        // Neighbouring names alternate above and below their points so that they do not overlap.
        textposition: pts.map(function (p, i) { return i % 2 ? "bottom center" : "top center"; }),
        cliponaxis: false, x: xs, y: ys,
        text: pts.map(function (p) { return p.name; }),
        customdata: pts.map(function (p) { return p.slug; }),
        hovertext: pts.map(function (p) {
          return p.name + " (" + p.source + ")" + spreadText(p);
        }),
        hovertemplate: "%{hovertext}<br>%{x:.2f} ms/token<br>avg %{y:.1f}%<extra></extra>",
        marker: {
          color: pts.map(function (p) { return p.unstable ? "#fff" : (COLORS[p.provenance] || "#4c72b0"); }),
          line: { width: 2, color: pts.map(function (p) { return COLORS[p.provenance] || "#4c72b0"; }) },
          size: pts.map(function (p) { return p.peak_rss_mb ? 10 + 20 * p.peak_rss_mb / maxMem : 12; }),
          opacity: 0.8
        }
      };
      var front = data.pareto.map(function (i) { return pts[i]; });
      var line = {
        type: "scatter", mode: "lines", name: "Pareto front", line: { shape: "hv", dash: "dot", color: "#555" },
        x: front.map(function (p) { return p.execute_ms; }), y: front.map(function (p) { return p.avg; }),
        hoverinfo: "skip"
      };
      var yaxis = { title: { text: "average accuracy (%)" }, range: linearRange(ys, 0.5) };
      Plotly.newPlot(el, [points, line], {
        margin: { t: 30, r: 20, l: 60 }, height: 380, showlegend: false,
        xaxis: xAxis(xs), yaxis: yaxis
      }, { responsive: true, displaylogo: false }).then(function () {
        el.classList.add("drawn");
        el.on("plotly_click", function (ev) {
          var slug = ev.points[0].customdata;
          if (slug) { window.location.href = "/models/" + encodeURIComponent(slug) + "/"; }
        });
      });
    }).catch(function (err) {
      el.textContent = "Chart unavailable: " + err.message;
      el.classList.add("chart-error");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll(".latency-chart"), draw);
  });
})();
