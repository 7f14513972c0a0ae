/* Sortable comparison tables (section pages): a button in each column heading sorts the rows;
   aria-sort tells assistive technology the order. Without JS the table keeps reading order. */
(function () {
  "use strict";
  var doc = document;
  var each = function (list, fn) { Array.prototype.forEach.call(list, fn); };
  var cellKey = function (cell) {
    var key = cell.getAttribute("data-sort");
    return key === null || key === "" ? cell.textContent.trim() : key;
  };
  var isNumber = function (text) { return text !== "" && !isNaN(Number(text)); };
  each(doc.querySelectorAll("table[data-sortable]"), function (table) {
    var heads = table.tHead ? table.tHead.rows[0].cells : [];
    var hint = doc.querySelector("[data-sort-hint]");
    if (hint) hint.hidden = false;
    each(heads, function (th, column) {
      var button = doc.createElement("button");
      button.type = "button";
      button.className = "sort-button";
      while (th.firstChild) button.appendChild(th.firstChild);
      var icon = doc.createElement("span");
      icon.className = "sort-icon";
      icon.setAttribute("aria-hidden", "true");
      button.appendChild(icon);
      th.appendChild(button);
      button.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        each(heads, function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var keys = rows.map(function (row) { return cellKey(row.cells[column]); });
        var numeric = th.getAttribute("data-sort-type") === "number" || keys.every(isNumber);
        var order = rows.map(function (row, i) { return { row: row, key: keys[i] }; });
        order.sort(function (a, b) {
          var result;
          if (numeric) {
            var x = isNumber(a.key) ? Number(a.key) : Infinity;
            var y = isNumber(b.key) ? Number(b.key) : Infinity;
            result = x === y ? 0 : x < y ? -1 : 1;
          } else {
            result = a.key.localeCompare(b.key, undefined, { numeric: true, sensitivity: "base" });
          }
          return ascending ? result : -result;
        });
        order.forEach(function (item) { body.appendChild(item.row); });
      });
    });
  });

})();
