// The "Menu" button of the page header (issue 12). Loaded right after the header, before
// the first paint: it shows the button and marks the header "menu-ready", and from then on
// app.css folds #site-menu on screens up to 800 px wide while aria-expanded is "false".
// Without this script the button stays hidden and every link stays visible.
(function () {
  "use strict";
  var button = document.querySelector("header.top .menu-toggle");
  var menu = button && document.getElementById(button.getAttribute("aria-controls"));
  if (!menu) return;
  var header = button.closest("header");

  function isOpen() {
    return button.getAttribute("aria-expanded") === "true";
  }
  function set(open) {
    button.setAttribute("aria-expanded", open ? "true" : "false");
  }

  button.hidden = false;
  header.classList.add("menu-ready");
  button.addEventListener("click", function () {
    set(!isOpen());
  });
  // Escape closes the open menu and gives focus back to its button (only where the button
  // is shown: on a wide screen the menu is not a menu).
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && isOpen() && button.offsetParent !== null) {
      set(false);
      button.focus();
    }
  });
})();
