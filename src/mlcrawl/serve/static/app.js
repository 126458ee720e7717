// mlcrawl serve: the few interactions a page needs (column picker, compare guard, client-side sort of small tables).
(function () {
  "use strict";
  var picker = document.getElementById("cols");
  document.querySelectorAll(".colpick").forEach(function (box) {
    box.addEventListener("change", function () {
      picker.value = Array.prototype.filter.call(document.querySelectorAll(".colpick"), function (b) { return b.checked; })
        .map(function (b) { return b.value; }).join(",");
    });
  });
  var compare = document.getElementById("compare");
  if (compare) {
    compare.addEventListener("submit", function (e) {
      if (compare.querySelectorAll("input[name=run]:checked").length < 2) { e.preventDefault(); alert("Check two runs or more to compare."); }
    });
  }
  document.querySelectorAll("table.sortable th").forEach(function (th, col) {
    th.style.cursor = "pointer";
    th.addEventListener("click", function () {
      var body = th.closest("table").tBodies[0], asc = th.dataset.asc !== "1";
      th.dataset.asc = asc ? "1" : "0";
      var key = function (tr) { var td = tr.cells[col]; return td.dataset.sort !== undefined ? parseFloat(td.dataset.sort) : td.textContent; };
      Array.prototype.slice.call(body.rows).sort(function (a, b) {
        var x = key(a), y = key(b); return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      }).forEach(function (tr) { body.appendChild(tr); });
    });
  });
})();
