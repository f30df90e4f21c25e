// The event page: a live preview of each follow-up template (debounced, against a chosen
// report or the sample lead; nothing is sent), "Select all" with a count of the chosen
// leads, and after a bulk send its result brought into view and the progress bar.
(function () {
  "use strict";

  function debounce(fn, ms) {
    var timer = null;
    return function () {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  }

  var FRAME_POLICY = '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'">';

  // "Insert placeholder": into the subject, text or HTML field the cursor was in last (the
  // text when none was), at the cursor; then the list goes back to its prompt.
  document.querySelectorAll("form.template-form").forEach(function (form) {
    var picker = form.querySelector("select.placeholder-picker");
    if (!picker) { return; }
    var target = form.elements.text;
    ["subject", "text", "html"].forEach(function (name) {
      var field = form.elements[name];
      if (field) { field.addEventListener("focus", function () { target = field; }); }
    });
    picker.addEventListener("change", function () {
      var text = picker.value;
      if (!text || !target) { return; }
      var start = target.selectionStart === null ? target.value.length : target.selectionStart;
      var end = target.selectionEnd === null ? target.value.length : target.selectionEnd;
      target.value = target.value.slice(0, start) + text + target.value.slice(end);
      target.focus();
      target.setSelectionRange(start + text.length, start + text.length);
      target.dispatchEvent(new Event("input", { bubbles: true }));
      picker.value = "";
    });
  });

  document.querySelectorAll("form.template-form").forEach(function (form) {
    var output = form.querySelector(".preview-output");
    var problem = form.querySelector(".preview-error");
    var subject = form.querySelector(".preview-subject");
    var text = form.querySelector(".preview-text");
    var frame = form.querySelector(".preview-html");
    var sequence = 0;

    async function preview() {
      var mine = ++sequence;
      var reply, body;
      try {
        reply = await fetch(form.getAttribute("data-preview"), {
          method: "POST",
          body: new FormData(form),
          credentials: "same-origin",
          headers: { Accept: "application/json", "X-CSRF-Token": form.elements.csrf_token.value },
        });
        body = await reply.json();
      } catch (_e) {
        body = { error: { message: "The preview could not be loaded." } };
        reply = { ok: false };
      }
      if (mine !== sequence) { return; }
      if (reply.ok) {
        subject.textContent = body.subject;
        text.textContent = body.text;
        // The HTML part in a sandboxed frame (no scripts, no same origin) whose own policy
        // loads nothing at all: what a template renders can neither run nor call home.
        if (frame) {
          frame.hidden = !body.html;
          frame.srcdoc = body.html ? FRAME_POLICY + body.html : "";
        }
        output.hidden = false;
        problem.hidden = true;
      } else {
        var err = body.error || {};
        problem.textContent = (err.field ? err.field + ": " : "") + (err.message || "Preview failed.");
        problem.hidden = false;
        // the last good rendering no longer matches the form: do not show it as the preview
        output.hidden = true;
      }
    }

    var later = debounce(preview, 400);
    form.addEventListener("input", later);
    form.addEventListener("change", later);
    if (form.elements.subject.value && form.elements.text.value) { preview(); }
  });

  // Select all / the count: only with JavaScript (without it the bar stays hidden and each
  // lead is chosen by its own box); a partial choice shows the box as indeterminate.
  var pickForm = document.querySelector("form.bulk-form");
  if (pickForm) {
    var bar0 = pickForm.querySelector(".pick-bar");
    var all = pickForm.querySelector("[data-pick-all]");
    var count = pickForm.querySelector(".pick-count");
    var boxes = Array.prototype.slice.call(pickForm.querySelectorAll("input[data-pick]"));
    var update = function () {
      var chosen = boxes.filter(function (b) { return b.checked; }).length;
      count.textContent = chosen + " of " + boxes.length + " selected";
      all.checked = chosen === boxes.length && chosen > 0;
      all.indeterminate = chosen > 0 && chosen < boxes.length;
    };
    all.addEventListener("change", function () {
      boxes.forEach(function (b) { b.checked = all.checked; });
      update();
    });
    boxes.forEach(function (b) { b.addEventListener("change", update); });
    bar0.hidden = false;
    update();
  }

  // After the redirect the result is where the eye is: scrolled to and focused, so a
  // screen reader reads it too (the #bulk-result fragment scrolls without JavaScript).
  var result = document.getElementById("bulk-result");
  if (result && location.hash === "#bulk-result") {
    result.scrollIntoView({ block: "start" });
    if (result.hasAttribute("tabindex")) { result.focus({ preventScroll: true }); }
  }

  // The outbox's states in the words of the result above.
  var PROGRESS_WORDS = {
    queued: "waiting", deferred: "to be retried", missing: "no longer in the outbox",
  };
  var box = document.querySelector(".progress-box[data-progress]");
  if (box) {
    var bar = box.querySelector("progress");
    var label = box.querySelector(".progress-text");
    var poll = async function () {
      try {
        var reply = await fetch(box.getAttribute("data-progress"), {
          credentials: "same-origin", headers: { Accept: "application/json" },
        });
        if (!reply.ok) { label.textContent = "Progress is not available."; return; }
        var body = await reply.json();
        bar.max = Math.max(body.total, 1);
        bar.value = body.done;
        var parts = Object.keys(body.counts).map(function (k) {
          return (PROGRESS_WORDS[k] || k) + ": " + body.counts[k];
        });
        label.textContent = body.done + " of " + body.total + " finished (" + parts.join(", ") + ")";
        if (body.done < body.total) { setTimeout(poll, 2000); }
      } catch (_e) {
        setTimeout(poll, 5000);
      }
    };
    poll();
  }
})();
