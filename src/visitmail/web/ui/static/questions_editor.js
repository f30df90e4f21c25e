// The questions editor of the "New event" and "Edit event" forms: questions and their
// options as form fields (add, remove, move up/down; a key suggested from the label; a label
// per event language), written into the "questions" JSON text area on every change. The
// text area stays the form's only questions field, so the server validates exactly what it
// always did and the page works without JavaScript. Typing valid JSON there rebuilds the
// editor; while it is not valid JSON the editor is hidden (it never overwrites the text).
//
// Server errors arrive as paths (questions[2].options[0].key) in the JSON data block and are
// shown beside the question or option field they name, until the questions are rearranged.
(function () {
  "use strict";

  var root = document.getElementById("questions-editor");
  var area = document.getElementById("event-questions");
  var dataNode = document.getElementById("questions-editor-data");
  var languagesInput = document.getElementById("event-languages");
  if (!root || !area || !dataNode || !languagesInput) { return; }

  var data = JSON.parse(dataNode.textContent || "{}");
  var TYPES = data.types || {};
  var CHOICE = { single: true, multi: true };
  var counts = data.counts || { questions: {}, options: {} };
  var storedTypes = data.stored_types || {};
  var serverErrors = data.errors || {};
  var details = document.getElementById("questions-json");
  var problem = document.getElementById("questions-json-problem");
  var questions = [];
  var languages = [];
  var uid = 0;

  // --- model ---------------------------------------------------------------------------

  function parseLanguages(text) {
    var seen = [];
    text.split(/[,;]/).forEach(function (part) {
      var tag = part.trim().toLowerCase();
      if (/^[a-z]{2,3}$/.test(tag) && seen.indexOf(tag) < 0) { seen.push(tag); }
    });
    return seen;
  }

  function labelsOf(value) {
    if (typeof value === "string") {
      var one = {};
      one[languages[0] || "en"] = value;
      return one;
    }
    var out = {};
    if (value && typeof value === "object") {
      Object.keys(value).forEach(function (k) { out[k.toLowerCase()] = String(value[k]); });
    }
    return out;
  }

  function option(doc) {
    return { id: ++uid, key: String(doc.key || ""), label: labelsOf(doc.label), keyTouched: !!doc.key };
  }

  function question(doc) {
    return {
      id: ++uid,
      key: String(doc.key || ""),
      type: TYPES[doc.type] ? doc.type : "text",
      label: labelsOf(doc.label),
      options: Array.isArray(doc.options) ? doc.options.map(option) : [],
      keyTouched: !!doc.key,
    };
  }

  function fromJson(text) {
    var trimmed = text.trim();
    if (!trimmed) { return []; }
    var doc = JSON.parse(trimmed);
    if (!Array.isArray(doc)) { throw new Error("the questions must be a list [ … ]"); }
    return doc.map(function (q) {
      if (!q || typeof q !== "object" || Array.isArray(q)) { throw new Error("each question must be an object { … }"); }
      return question(q);
    });
  }

  function labelDoc(labels) {
    var out = {};
    languages.forEach(function (lang) {
      var text = (labels[lang] || "").trim();
      if (text) { out[lang] = text; }
    });
    return out;
  }

  function toJson() {
    if (!questions.length) { return ""; }
    return JSON.stringify(questions.map(function (q) {
      var doc = { key: q.key, label: labelDoc(q.label), type: q.type };
      if (CHOICE[q.type]) {
        doc.options = q.options.map(function (o) { return { key: o.key, label: labelDoc(o.label) }; });
      }
      return doc;
    }), null, 2);
  }

  // A key from a label: letters and digits of the label, accents dropped, "_" between words.
  function slug(text, taken) {
    var base = text.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase()
      .replace(/ß/g, "ss").replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 60);
    if (base && /^[0-9]/.test(base)) { base = "_" + base; }
    if (!base) { return ""; }
    var key = base, n = 2;
    while (taken.indexOf(key) >= 0) { key = base + "_" + n++; }
    return key;
  }

  // --- writing the JSON and the warnings ------------------------------------------------

  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  function warnings() {
    var out = [];
    var present = {};
    questions.forEach(function (q) { present[q.key] = q; });
    Object.keys(counts.questions || {}).forEach(function (key) {
      var n = counts.questions[key];
      if (!n) { return; }
      var now = present[key];
      if (!now) {
        out.push(plural(n, "report", "reports") + " answered the question “" + key +
          "”, which is removed or renamed; their answers stay stored (reports show them under the key).");
        return;
      }
      if (storedTypes[key] && storedTypes[key] !== now.type) {
        out.push(plural(n, "report", "reports") + " answered “" + key + "” as " +
          (TYPES[storedTypes[key]] || storedTypes[key]).toLowerCase() +
          "; their answers stay stored as they are and may not fit the new type.");
      }
      var chosen = (counts.options || {})[key] || {};
      var keys = CHOICE[now.type] ? now.options.map(function (o) { return o.key; }) : [];
      Object.keys(chosen).forEach(function (opt) {
        if (chosen[opt] && keys.indexOf(opt) < 0) {
          out.push(plural(chosen[opt], "report", "reports") + " chose “" + opt + "” in “" + key +
            "”, which is removed or renamed; their answers stay stored (shown by the option's key).");
        }
      });
    });
    return out;
  }

  var warningBox = document.createElement("div");
  warningBox.className = "q-warnings";
  warningBox.setAttribute("role", "status");

  function showWarnings() {
    var list = warnings();
    warningBox.textContent = "";
    list.forEach(function (text) {
      var p = document.createElement("p");
      p.className = "warning-line";
      p.textContent = text;
      warningBox.appendChild(p);
    });
    warningBox.hidden = !list.length;
  }

  function write() {
    area.value = toJson();
    problem.hidden = true;
    showWarnings();
  }

  // --- building the fields --------------------------------------------------------------

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function button(text, label, action, disabled) {
    var b = el("button", { type: "button", class: "secondary small-button", "aria-label": label }, text);
    b.disabled = !!disabled;
    b.addEventListener("click", action);
    return b;
  }

  function move(list, index, by) {
    var item = list.splice(index, 1)[0];
    list.splice(index + by, 0, item);
  }

  // Rebuilding the fields loses the focus: put it back on the first of ``labels`` (button
  // names) that is there and enabled, so keyboard users keep their place.
  function changed(labels) {
    serverErrors = {};  // their paths no longer point where they did
    write();
    render();
    (labels || []).some(function (name) {
      var found = Array.prototype.filter.call(root.querySelectorAll("button"), function (b) {
        return b.getAttribute("aria-label") === name && !b.disabled;
      })[0];
      if (found) { found.focus(); }
      return !!found;
    });
  }

  function moved(what, n, by) {
    var at = n + by;
    return ["Move " + what(at) + (by < 0 ? " up" : " down"), "Move " + what(at) + (by < 0 ? " down" : " up")];
  }

  function labelInputs(holder, item, path, idBase, onDefault) {
    var box = el("div", { class: "q-labels", "data-path": path });
    languages.forEach(function (lang, i) {
      var id = idBase + "-label-" + lang;
      var row = el("div", { class: "q-label" });
      row.appendChild(el("label", { for: id }, "Label (" + lang + (i === 0 ? ", default" : "") + ")"));
      var input = el("input", { id: id, maxlength: "500", "data-path": path + "." + lang });
      input.value = item.label[lang] || "";
      input.addEventListener("input", function () {
        item.label[lang] = input.value;
        if (i === 0 && onDefault) { onDefault(input.value); }
        write();
      });
      row.appendChild(input);
      box.appendChild(row);
    });
    holder.appendChild(box);
  }

  function keyInput(holder, item, path, id, hint) {
    var row = el("div", { class: "q-key" });
    row.appendChild(el("label", { for: id }, "Key"));
    var input = el("input", {
      id: id, maxlength: "64", "data-path": path, spellcheck: "false", autocapitalize: "off",
      "aria-describedby": id + "-hint",
    });
    input.value = item.key;
    input.addEventListener("input", function () {
      item.key = input.value.trim();
      item.keyTouched = item.key !== "";
      write();
    });
    row.appendChild(input);
    row.appendChild(el("p", { class: "hint", id: id + "-hint" }, hint));
    holder.appendChild(row);
    return input;
  }

  function optionRow(q, qi, o, oi) {
    var path = "questions[" + qi + "].options[" + oi + "]";
    var idBase = "q" + q.id + "-o" + o.id;
    var row = el("li", { class: "q-option", "data-path": path });
    var head = el("div", { class: "q-head" });
    head.appendChild(el("span", { class: "q-title" }, "Option " + (oi + 1)));
    var tools = el("div", { class: "q-tools" });
    var name = function (n) { return "option " + n + " of question " + (qi + 1); };
    tools.appendChild(button("↑", "Move " + name(oi + 1) + " up", function () {
      move(q.options, oi, -1); changed(moved(name, oi + 1, -1));
    }, oi === 0));
    tools.appendChild(button("↓", "Move " + name(oi + 1) + " down", function () {
      move(q.options, oi, 1); changed(moved(name, oi + 1, 1));
    }, oi === q.options.length - 1));
    tools.appendChild(button("Remove", "Remove " + name(oi + 1), function () {
      q.options.splice(oi, 1);
      changed(["Remove " + name(oi + 1), "Remove " + name(oi), "Add an option to question " + (qi + 1)]);
    }));
    head.appendChild(tools);
    row.appendChild(head);
    var keyField;
    labelInputs(row, o, path + ".label", idBase, function (text) {
      if (o.keyTouched) { return; }
      o.key = slug(text, q.options.filter(function (x) { return x !== o; }).map(function (x) { return x.key; }));
      keyField.value = o.key;
    });
    keyField = keyInput(row, o, path + ".key", idBase + "-key", "Stored in the answers; letters, digits and _.");
    return row;
  }

  function questionBlock(q, qi) {
    var path = "questions[" + qi + "]";
    var idBase = "q" + q.id;
    var box = el("fieldset", { class: "q-item", "data-path": path });
    box.appendChild(el("legend", {}, "Question " + (qi + 1)));
    var tools = el("div", { class: "q-tools" });
    var name = function (n) { return "question " + n; };
    tools.appendChild(button("↑ Up", "Move question " + (qi + 1) + " up", function () {
      move(questions, qi, -1); changed(moved(name, qi + 1, -1));
    }, qi === 0));
    tools.appendChild(button("↓ Down", "Move question " + (qi + 1) + " down", function () {
      move(questions, qi, 1); changed(moved(name, qi + 1, 1));
    }, qi === questions.length - 1));
    tools.appendChild(button("Remove", "Remove question " + (qi + 1), function () {
      questions.splice(qi, 1);
      changed(["Remove question " + (qi + 1), "Remove question " + qi, "Add a question"]);
    }));
    box.appendChild(tools);

    var keyField;
    labelInputs(box, q, path + ".label", idBase, function (text) {
      if (q.keyTouched) { return; }
      q.key = slug(text, questions.filter(function (x) { return x !== q; }).map(function (x) { return x.key; }));
      keyField.value = q.key;
    });
    keyField = keyInput(box, q, path + ".key", idBase + "-key",
      "Suggested from the label; answers are stored under it (answers.<key> in templates).");

    var typeRow = el("div", { class: "q-type" });
    typeRow.appendChild(el("label", { for: idBase + "-type" }, "Type"));
    var select = el("select", { id: idBase + "-type", "data-path": path + ".type" });
    Object.keys(TYPES).forEach(function (t) {
      var opt = el("option", { value: t }, TYPES[t]);
      opt.selected = t === q.type;
      select.appendChild(opt);
    });
    select.addEventListener("change", function () {
      q.type = select.value;
      if (CHOICE[q.type] && !q.options.length) { q.options.push(option({})); }
      changed();
    });
    typeRow.appendChild(select);
    box.appendChild(typeRow);

    if (CHOICE[q.type]) {
      var group = el("div", { class: "q-options", "data-path": path + ".options" });
      group.appendChild(el("p", { class: "q-subtitle" }, "Options"));
      var list = el("ol", { class: "q-option-list" });
      q.options.forEach(function (o, oi) { list.appendChild(optionRow(q, qi, o, oi)); });
      group.appendChild(list);
      group.appendChild(button("Add an option", "Add an option to question " + (qi + 1), function () {
        q.options.push(option({}));
        changed();
        focusLast("#q" + q.id + "-o" + q.options[q.options.length - 1].id + "-label-" + languages[0]);
      }));
      box.appendChild(group);
    }
    return box;
  }

  function focusLast(selector) {
    var node = root.querySelector(selector);
    if (node) { node.focus(); }
  }

  // The deepest element the path names, else its nearest named ancestor, else the editor.
  function placeError(path, message) {
    var probe = path;
    var node = null;
    while (probe) {
      node = root.querySelector('[data-path="' + probe.replace(/"/g, "") + '"]');
      if (node) { break; }
      var cut = Math.max(probe.lastIndexOf("."), probe.lastIndexOf("["));
      probe = cut > 0 ? probe.slice(0, cut) : "";
    }
    var target = node || root;
    var note = el("p", { class: "error q-error", id: "err-" + (++uid), "data-error-for": path }, message);
    if (target.tagName === "INPUT" || target.tagName === "SELECT") {
      target.setAttribute("aria-invalid", "true");
      var described = target.getAttribute("aria-describedby");
      target.setAttribute("aria-describedby", (described ? described + " " : "") + note.id);
      target.insertAdjacentElement("afterend", note);
    } else if (target === root) {
      root.insertBefore(note, root.firstChild);
    } else {
      target.insertBefore(note, target.children[1] || null);
    }
  }

  function render() {
    root.textContent = "";
    root.appendChild(warningBox);
    if (!languages.length) {
      root.appendChild(el("p", { class: "hint" }, "Name the event's languages above to label the questions."));
    }
    var list = el("div", { class: "q-list" });
    questions.forEach(function (q, qi) { list.appendChild(questionBlock(q, qi)); });
    root.appendChild(list);
    if (!questions.length) {
      root.appendChild(el("p", { class: "muted" }, "No questions yet."));
    }
    root.appendChild(button("Add a question", "Add a question", function () {
      questions.push(question({}));
      changed();
      focusLast("#q" + questions[questions.length - 1].id + "-label-" + languages[0]);
    }));
    Object.keys(serverErrors).forEach(function (path) { placeError(path, serverErrors[path]); });
    showWarnings();
  }

  // --- start ----------------------------------------------------------------------------

  languages = parseLanguages(languagesInput.value);
  var startError = null;
  try {
    questions = fromJson(area.value);
  } catch (e) {
    startError = e;
  }
  // While the JSON is not valid the editor steps aside (hidden) instead of overwriting what
  // was typed with its last state; it comes back as soon as the JSON parses.
  function jsonBroken(error) {
    problem.textContent = "The questions JSON is not valid (" + error.message +
      "): fix it here; the editor returns once it is.";
    problem.hidden = false;
    root.hidden = true;
    if (details) { details.open = true; }
  }

  render();
  if (startError) {
    jsonBroken(startError);
  } else {
    root.hidden = false;
    // folded away unless the server's error is about the JSON as a whole
    if (details && (!document.getElementById("event-questions-error") || Object.keys(serverErrors).length)) {
      details.open = false;
    }
  }

  languagesInput.addEventListener("input", function () {
    var next = parseLanguages(languagesInput.value);
    if (next.join(",") === languages.join(",")) { return; }
    languages = next;
    render();
    if (!root.hidden) { write(); }  // hidden: the JSON is being fixed by hand; leave it
  });

  var timer = null;
  area.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      try {
        questions = fromJson(area.value);
      } catch (e) {
        jsonBroken(e);
        return;
      }
      problem.hidden = true;
      serverErrors = {};
      render();
      root.hidden = false;
    }, 300);
  });
})();
