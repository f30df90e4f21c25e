// Stacked table rows on phones (issue 12): app.css shows each cell's data-label before its
// content. Templates write data-label themselves (that works without scripts); this fills in
// the cells they left without one from the text of the cell's column header, in every table
// of the page and in rows that scripts add later. An explicit data-label="" is kept.
(function () {
  "use strict";
  function headers(table) {
    var row = table.tHead && table.tHead.rows[table.tHead.rows.length - 1];
    var names = [];
    if (!row) return names;
    Array.prototype.forEach.call(row.cells, function (th) {
      var name = th.textContent.replace(/\s+/g, " ").trim();
      for (var i = 0; i < (th.colSpan || 1); i++) names.push(name);
    });
    return names;
  }
  function label(table) {
    var names = headers(table);
    if (!names.length) return;
    Array.prototype.forEach.call(table.tBodies, function (body) {
      Array.prototype.forEach.call(body.rows, function (tr) {
        var column = 0;
        Array.prototype.forEach.call(tr.cells, function (cell) {
          if (cell.tagName === "TD" && !cell.hasAttribute("data-label") && names[column]) {
            cell.setAttribute("data-label", names[column]);
          }
          column += cell.colSpan || 1;
        });
      });
    });
  }
  function labelAll() {
    Array.prototype.forEach.call(document.querySelectorAll("table"), label);
  }
  labelAll();
  // Rows added later (bulk results, live lists): only added nodes matter, and setting an
  // attribute is not a childList change, so this cannot loop.
  new MutationObserver(labelAll).observe(document.body, { childList: true, subtree: true });
})();
