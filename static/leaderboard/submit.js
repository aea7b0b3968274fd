(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("use-demo");
    if (!button) { return; }
    button.addEventListener("click", function () {
      document.getElementById("id_url").value = button.dataset.url;
      var name = document.getElementById("id_name");
      if (!name.value) { name.value = "Demo tiny Llama"; }
    });
  });
})();
