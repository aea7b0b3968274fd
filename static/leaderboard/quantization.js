// Draws /quantization/'s chart from its .json twin (no inline scripts): accuracy drop (Δ vs
// fp32, with its 95 % CI) against size reduction, or against decode speed-up on one device
// profile, chosen in a select drawn above the chart.
(function () {
  "use strict";
  var COLORS = { bf16: "#4c72b0", int8: "#55a868", int4: "#c44e52" };

  function traces(rows, axis) {
    var byPrecision = {};
    rows.forEach(function (r) {
      var x = axis === "size" ? r.size_reduction : r.speedup;
      if (r.delta === null || x === null || (axis !== "size" && r.profile !== axis)) { return; }
      if (axis === "size" && byPrecision[r.precision] &&
          byPrecision[r.precision].seen[r.slug]) { return; }  // one point per model and precision
      var t = byPrecision[r.precision] = byPrecision[r.precision] ||
        { seen: {}, x: [], y: [], lo: [], hi: [], text: [], slug: [] };
      t.seen[r.slug] = true;
      t.x.push(x); t.y.push(r.delta); t.text.push(r.model);
      t.lo.push(r.delta - r.ci95_low); t.hi.push(r.ci95_high - r.delta); t.slug.push(r.slug);
    });
    return Object.keys(byPrecision).map(function (p) {
      var t = byPrecision[p];
      return {
        type: "scatter", mode: "markers+text", name: p, x: t.x, y: t.y, text: t.text,
        textposition: "top center", cliponaxis: false, customdata: t.slug,
        error_y: { type: "data", symmetric: false, array: t.hi, arrayminus: t.lo, thickness: 1 },
        marker: { size: 11, color: COLORS[p] || "#8172b3" },
        hovertemplate: "%{text} · " + p + "<br>×%{x:.2f}<br>Δ %{y:+.2f} pp<extra></extra>"
      };
    });
  }

  function draw(el, rows, axis) {
    // Short titles: a phone's chart is 330 px wide (the page says how each ratio is taken).
    var title = axis === "size" ? "size reduction (×)" : "decode speed-up on " + axis + " (×)";
    Plotly.react(el, traces(rows, axis), {
      margin: { t: 30, r: 20, l: 60 }, height: 400,
      xaxis: { title: { text: title } },
      yaxis: { title: { text: "Δ average accuracy vs fp32 (pp)" }, zeroline: true },
      legend: { orientation: "h", y: -0.2 }
    }, { responsive: true, displaylogo: false }).then(function () {
      el.classList.add("drawn");
      el.removeAllListeners && el.removeAllListeners("plotly_click");
      el.on("plotly_click", function (ev) {
        var slug = ev.points[0].customdata;
        if (slug) { window.location.href = "/models/" + encodeURIComponent(slug) + "/#quantization-ladder"; }
      });
    });
  }

  var el = document.getElementById("chart-quantization");
  if (!el) { return; }
  fetch(el.dataset.src, { headers: { Accept: "application/json" } }).then(function (r) {
    if (!r.ok) { throw new Error(el.dataset.src + " answered " + r.status); }
    return r.json();
  }).then(function (data) {
    var profiles = [];
    data.rows.forEach(function (r) {
      if (r.profile && r.speedup !== null && profiles.indexOf(r.profile) < 0) { profiles.push(r.profile); }
    });
    var select = document.createElement("select");
    select.id = "quant-axis";
    select.setAttribute("aria-label", "x axis");
    [["size", "against size reduction"]].concat(profiles.map(function (p) {
      return [p, "against speed-up on " + p];
    })).forEach(function (o) {
      var opt = document.createElement("option");
      opt.value = o[0]; opt.textContent = o[1]; select.appendChild(opt);
    });
    el.parentNode.insertBefore(select, el);
    select.addEventListener("change", function () { draw(el, data.rows, select.value); });
    draw(el, data.rows, "size");
  }).catch(function (err) { el.textContent = "The chart could not be drawn: " + err.message; });
})();
