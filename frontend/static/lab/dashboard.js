/* The lab dashboard's charts (Chart.js from frontend/static/charts/charts.js).
 *
 * The figures come from the page (<script type="application/json" id="lab-stats">, the
 * same JSON as /lab/dashboard/data.json, which is fetched when the page has none); the
 * words from #lab-chart-labels, in the page's language. The table under the charts has
 * the same numbers for screen readers and for printing.
 *
 * Plain ES5 on purpose: clinics run old Chromium-based browsers.
 */
(function () {
  "use strict";

  var root = document.querySelector("[data-lab-dashboard]");
  if (!root || !window.TelemedCharts) {
    return;
  }
  var Chart = window.TelemedCharts.Chart;
  var TEAL = "#0f6b78";
  var TEAL_LIGHT = "#7fbcc6";
  var AMBER = "#e9b949";
  var RED = "#b42318";
  var GREEN = "#1f7a4d";
  var GREY = "#5b6b76";

  function readJson(id) {
    var node = document.getElementById(id);
    if (!node) {
      return null;
    }
    try {
      return JSON.parse(node.textContent);
    } catch (e) {
      return null;
    }
  }

  var words = readJson("lab-chart-labels") || {};

  function word(key) {
    return words[key] || key;
  }

  function pluck(rows, get) {
    var out = [];
    for (var i = 0; i < rows.length; i++) {
      out.push(get(rows[i]));
    }
    return out;
  }

  function empty(canvasId) {
    var canvas = document.getElementById(canvasId);
    if (!canvas) {
      return;
    }
    var p = document.createElement("p");
    p.className = "empty";
    p.textContent = word("no_data");
    canvas.parentNode.replaceChild(p, canvas);
  }

  function make(canvasId, config) {
    var canvas = document.getElementById(canvasId);
    if (!canvas) {
      return null;
    }
    config.options = config.options || {};
    config.options.responsive = true;
    config.options.maintainAspectRatio = false;
    config.options.animation = false;
    return new Chart(canvas, config);
  }

  function ackColour(pct) {
    if (pct === null) {
      return GREY;
    }
    if (pct >= 100) {
      return GREEN;
    }
    return pct >= 75 ? AMBER : RED;
  }

  function drawTurnaround(rows) {
    var timed = [];
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].tat_receipt.median !== null) {
        timed.push(rows[i]);
      }
    }
    if (!timed.length) {
      empty("chart-tat");
      return;
    }
    make("chart-tat", {
      type: "bar",
      data: {
        labels: pluck(timed, function (r) { return r.name; }),
        datasets: [
          { label: word("median"), data: pluck(timed, function (r) { return r.tat_receipt.median; }), backgroundColor: TEAL, pointStyle: "rect" },
          { label: word("p90"), data: pluck(timed, function (r) { return r.tat_receipt.p90; }), backgroundColor: TEAL_LIGHT, pointStyle: "rect" },
          {
            // One short red mark per institution at its target (targets differ by
            // institution, so the marks are not joined into a line).
            type: "line",
            label: word("target"),
            data: pluck(timed, function (r) { return r.target_minutes; }),
            borderColor: RED,
            backgroundColor: RED,
            showLine: false,
            pointStyle: "line",
            pointRadius: 28,
            pointHoverRadius: 28,
            pointBorderWidth: 3,
            order: -1
          }
        ]
      },
      options: {
        scales: { y: { beginAtZero: true, title: { display: true, text: word("minutes") } } },
        plugins: { legend: { position: "bottom", labels: { usePointStyle: true } } }
      }
    });
  }

  function drawAcknowledgement(rows) {
    var due = [];
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].critical.ack_in_time_pct !== null) {
        due.push(rows[i]);
      }
    }
    if (!due.length) {
      empty("chart-ack");
      return;
    }
    var values = pluck(due, function (r) { return r.critical.ack_in_time_pct; });
    make("chart-ack", {
      type: "bar",
      data: {
        labels: pluck(due, function (r) { return r.name; }),
        datasets: [{ label: word("ack_in_time"), data: values, backgroundColor: pluck(values, ackColour) }]
      },
      options: {
        scales: { y: { beginAtZero: true, max: 100, title: { display: true, text: word("percent") } } },
        plugins: { legend: { display: false } }
      }
    });
  }

  function drawDaily(days) {
    var any = false;
    for (var i = 0; i < days.length; i++) {
      if (days[i].orders || days[i].reports) {
        any = true;
      }
    }
    if (!any) {
      empty("chart-daily");
      return;
    }
    make("chart-daily", {
      type: "line",
      data: {
        labels: pluck(days, function (d) { return d.day.slice(5); }),
        datasets: [
          { label: word("orders"), data: pluck(days, function (d) { return d.orders; }), borderColor: TEAL, backgroundColor: TEAL, tension: 0.2 },
          { label: word("reports"), data: pluck(days, function (d) { return d.reports; }), borderColor: AMBER, backgroundColor: AMBER, borderDash: [6, 3], tension: 0.2 }
        ]
      },
      options: {
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
        plugins: { legend: { position: "bottom" } }
      }
    });
  }

  function draw(stats) {
    drawTurnaround(stats.institutions || []);
    drawAcknowledgement(stats.institutions || []);
    drawDaily(stats.daily || []);
  }

  var embedded = readJson("lab-stats");
  if (embedded) {
    draw(embedded);
    return;
  }
  var url = root.getAttribute("data-url");
  if (!url) {
    return;
  }
  var xhr = new XMLHttpRequest();
  xhr.open("GET", url);
  xhr.setRequestHeader("Accept", "application/json");
  xhr.onload = function () {
    if (xhr.status === 200) {
      try {
        draw(JSON.parse(xhr.responseText));
      } catch (e) {
        empty("chart-tat");
      }
    }
  };
  xhr.send();
})();
