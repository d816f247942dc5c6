/* Lab order pages: the order form's live count of tests and tubes, and the labels page's
   Print button. Plain ES5 for old Chromium; no build step. */
(function () {
  "use strict";
  var buttons = document.querySelectorAll("[data-print]");
  for (var i = 0; i < buttons.length; i++) {
    buttons[i].addEventListener("click", function () { window.print(); });
  }
})();

(function () {
  "use strict";

  var form = document.querySelector("[data-lab-order]");
  var dataNode = document.getElementById("lab-order-data");
  if (!form || !dataNode) { return; }
  var data;
  try { data = JSON.parse(dataNode.textContent || "{}"); } catch (e) { return; }
  var tests = data.tests || {};
  var panels = data.panels || {};
  var tubes = data.tubes || {};
  var specimens = data.specimens || {};
  var summary = document.querySelector("[data-summary]");
  var countNode = summary && summary.querySelector("[data-count]");
  var tubeList = summary && summary.querySelector("[data-tubes]");

  function checkedValues(name) {
    var boxes = form.querySelectorAll('input[name="' + name + '"]');
    var values = [];
    for (var i = 0; i < boxes.length; i++) {
      if (boxes[i].checked) { values.push(String(boxes[i].value)); }
    }
    return values;
  }

  function chosenTests() {
    var seen = {};
    var order = [];
    function add(id) {
      id = String(id);
      if (!seen[id] && tests[id]) { seen[id] = true; order.push(id); }
    }
    checkedValues("panels").forEach(function (panelId) {
      (panels[panelId] || []).forEach(add);
    });
    checkedValues("tests").forEach(add);
    return order;
  }

  function countText(n) {
    if (n === 0) { return summary.getAttribute("data-label-none"); }
    if (n === 1) { return summary.getAttribute("data-label-one"); }
    return (summary.getAttribute("data-label-many") || "%(n)s").replace("%(n)s", String(n));
  }

  function markPanelTests(chosen) {
    // A test brought by a panel is shown ticked-through, so it is not ordered twice by eye.
    var inPanel = {};
    checkedValues("panels").forEach(function (panelId) {
      (panels[panelId] || []).forEach(function (id) { inPanel[String(id)] = true; });
    });
    var boxes = form.querySelectorAll('input[name="tests"]');
    for (var i = 0; i < boxes.length; i++) {
      var item = boxes[i].parentNode;
      if (inPanel[String(boxes[i].value)]) { item.className = "in-panel"; } else { item.className = ""; }
    }
    return chosen;
  }

  function refresh() {
    if (!summary) { return; }
    var chosen = markPanelTests(chosenTests());
    countNode.textContent = countText(chosen.length);
    var groups = {};
    var keys = [];
    chosen.forEach(function (id) {
      var test = tests[id];
      var key = test.specimen + "|" + test.tube;
      if (!groups[key]) { groups[key] = { tube: test.tube, specimen: test.specimen, codes: [] }; keys.push(key); }
      groups[key].codes.push(test.code);
    });
    while (tubeList.firstChild) { tubeList.removeChild(tubeList.firstChild); }
    keys.forEach(function (key) {
      var group = groups[key];
      var li = document.createElement("li");
      var swatch = document.createElement("span");
      swatch.className = "tube tube-" + group.tube;
      swatch.setAttribute("aria-hidden", "true");
      var name = document.createElement("strong");
      name.textContent = tubes[group.tube] || group.tube;
      var detail = document.createElement("span");
      detail.className = "muted small";
      detail.textContent = " · " + (specimens[group.specimen] || group.specimen) + " · " + group.codes.join(", ");
      li.appendChild(swatch);
      li.appendChild(document.createTextNode(" "));
      li.appendChild(name);
      li.appendChild(detail);
      tubeList.appendChild(li);
    });
  }

  form.addEventListener("change", refresh);
  refresh();

  // Choosing another centre reloads the form with that centre's catalogue.
  var pick = document.querySelector("[data-centre-pick]");
  if (pick) {
    var select = pick.querySelector("select");
    var button = pick.querySelector("[data-centre-button]");
    if (button) { button.hidden = true; }
    if (select) {
      select.addEventListener("change", function () { pick.submit(); });
    }
  }
})();
