/* The consult request form: show only the part of "whom to ask" that was chosen
 * (a specialty at a hospital, a named expert, or several experts). Without script every
 * part stays visible and the server checks the combination. Plain ES5.
 */
(function () {
  "use strict";

  var form = document.querySelector("[data-form='consult-request']");
  if (!form) {
    return;
  }
  var radios = form.querySelectorAll("input[name='target_kind']");
  var parts = form.querySelectorAll(".ctarget-part[data-target]");
  document.documentElement.className += " js";

  function chosen() {
    for (var i = 0; i < radios.length; i++) {
      if (radios[i].checked) {
        return radios[i].value;
      }
    }
    return "";
  }

  function update() {
    var kind = chosen();
    for (var i = 0; i < parts.length; i++) {
      if (!kind || parts[i].getAttribute("data-target") === kind) {
        parts[i].removeAttribute("hidden");
      } else {
        parts[i].setAttribute("hidden", "");
      }
    }
  }

  for (var i = 0; i < radios.length; i++) {
    radios[i].addEventListener("change", update);
  }
  update();
})();
