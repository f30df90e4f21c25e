// The mapping page: a problem's path link selects its line in the editor; after a save
// with problems or a dry run, focus moves to what changed (for keyboard and screen readers).
(function () {
  "use strict";
  var editor = document.getElementById("mapping-document");
  if (!editor) { return; }

  function selectLine(line) {
    var lines = editor.value.split("\n");
    var start = 0;
    for (var i = 0; i < line - 1 && i < lines.length; i++) { start += lines[i].length + 1; }
    var end = start + (lines[line - 1] || "").length;
    editor.focus();
    editor.setSelectionRange(start, end);
    // Scroll the textarea so the selected line is visible.
    var lineHeight = parseFloat(getComputedStyle(editor).lineHeight) || 20;
    editor.scrollTop = Math.max(0, (line - 3) * lineHeight);
  }

  document.querySelectorAll(".problem-path[data-line]").forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      selectLine(parseInt(link.getAttribute("data-line"), 10));
    });
  });

  var problems = document.getElementById("mapping-problems");
  var result = document.getElementById("dry-heading");
  if (result) { result.focus(); }
  else if (problems) { problems.focus(); }
})();
