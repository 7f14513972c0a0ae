/* Applies the remembered theme before first paint (no flash). */
(function () {
  try {
    var choice = localStorage.getItem("kb-theme");
    if (choice === "dark" || choice === "light") document.documentElement.setAttribute("data-theme", choice);
  } catch (e) { /* storage may be disabled; the system setting applies */ }
})();
