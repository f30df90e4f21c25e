// The mapping page's form builder: the same document as the JSON editor, edited as forms.
//
// The document (the parsed JSON) is the one source of truth: every control writes into it
// and the JSON textarea is rewritten from it after every change, so what is submitted is
// always that one document (the server validates it). Keys the form has no control for
// (a rule's description, a webhook's allow_http, anything unknown) stay in the object and
// are therefore never lost. A `when` or a switch value that the form cannot read back
// exactly is shown as an editable "custom expression" instead.
//
// `window.VisitmailWhen` exposes the condition compiler and parser (the e2e test uses it).
(function () {
  "use strict";

  var OPS = [
    ["is", "is"], ["is_not", "is not"], ["one_of", "is one of"], ["contains", "contains"],
    ["starts", "starts with"], ["empty", "is empty"], ["not_empty", "is not empty"]
  ];
  var NO_VALUE = { empty: true, not_empty: true };

  // --- the condition language: compile and parse ----------------------------------------

  function quote(text) {
    return "'" + String(text).replace(/\\/g, "\\\\").replace(/'/g, "\\'") + "'";
  }

  // How a value is written for a field: a question's type decides (bool: true/false,
  // number: a number when it looks like one), everything else is a quoted string.
  function literal(value, type) {
    if (type === "bool" && (value === "true" || value === "false")) { return value; }
    if (type === "number" && /^-?\d+(\.\d+)?$/.test(String(value).trim())) {
      return String(value).trim();
    }
    return quote(value);
  }

  function compileCondition(cond, typeOf) {
    var f = cond.field;
    var type = typeOf(f);
    var value = cond.value;
    switch (cond.op) {
      case "is": return f + " == " + literal(value, type);
      case "is_not": return f + " != " + literal(value, type);
      case "one_of":
        return f + " in [" + (value || []).map(function (v) { return literal(v, type); }).join(", ") + "]";
      case "contains": return quote(value) + " in " + f;
      case "starts":
        // An unanswered question is undefined: `~ ''` makes it an empty string first,
        // so that the call cannot fail at send time.
        return (f.indexOf("answers.") === 0 ? "(" + f + " ~ '')" : f) + ".startswith(" + quote(value) + ")";
      case "empty": return "not " + f;
      case "not_empty": return f;
    }
    throw new Error("unknown operator " + cond.op);
  }

  function compileWhen(conds, joiner, typeOf) {
    return conds.map(function (c) { return compileCondition(c, typeOf); })
      .join(joiner === "or" ? " or " : " and ");
  }

  function tokenize(src) {
    var tokens = [];
    var i = 0;
    while (i < src.length) {
      var ch = src[i];
      if (/\s/.test(ch)) { i++; continue; }
      if (ch === "'" || ch === '"') {
        var out = "";
        var j = i + 1;
        while (j < src.length && src[j] !== ch) {
          if (src[j] === "\\") {
            j++;
            if (j >= src.length) { return null; }
            if ("\\'\"".indexOf(src[j]) < 0) { return null; }  // keep to what quote() writes
          }
          out += src[j];
          j++;
        }
        if (j >= src.length) { return null; }
        tokens.push({ t: "str", v: out });
        i = j + 1;
        continue;
      }
      var num = /^\d+(\.\d+)?/.exec(src.slice(i));
      if (num) { tokens.push({ t: "num", v: num[0] }); i += num[0].length; continue; }
      var name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i));
      if (name) { tokens.push({ t: "name", v: name[0] }); i += name[0].length; continue; }
      var two = src.substr(i, 2);
      if (two === "==" || two === "!=") { tokens.push({ t: "op", v: two }); i += 2; continue; }
      if ("()[],.~-".indexOf(ch) >= 0) { tokens.push({ t: "op", v: ch }); i++; continue; }
      return null;
    }
    return tokens;
  }

  function sameTokens(a, b) {
    if (!a || !b || a.length !== b.length) { return false; }
    for (var i = 0; i < a.length; i++) {
      if (a[i].t !== b[i].t || a[i].v !== b[i].v) { return false; }
    }
    return true;
  }

  // Reads a `when` back into condition rows; null when the form cannot show it exactly
  // (checked by compiling the rows again and comparing the tokens).
  function parseWhen(src, typeOf, knownLead) {
    var toks = tokenize(src || "");
    if (!toks || !toks.length) { return null; }
    var pos = 0;
    function peek(t, v) {
      var tok = toks[pos];
      return tok && tok.t === t && (v === undefined || tok.v === v);
    }
    function take(t, v) {
      if (!peek(t, v)) { throw new Error("parse"); }
      return toks[pos++];
    }
    function field() {
      var root = take("name").v;
      if (root !== "lead" && root !== "answers") { throw new Error("parse"); }
      var key;
      if (peek("op", ".")) { take("op", "."); key = take("name").v; }
      else { take("op", "["); key = take("str").v; take("op", "]"); }
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) { throw new Error("parse"); }
      if (root === "lead" && knownLead.indexOf(key) < 0) { throw new Error("parse"); }
      return root + "." + key;
    }
    function lit() {
      if (peek("str")) { return take("str").v; }
      if (peek("op", "-")) { take("op", "-"); return "-" + take("num").v; }
      if (peek("num")) { return take("num").v; }
      if (peek("name", "true") || peek("name", "false")) { return take("name").v; }
      throw new Error("parse");
    }
    function startsCall() {
      take("op", "."); take("name", "startswith"); take("op", "(");
      var v = take("str").v;
      take("op", ")");
      return v;
    }
    function condition() {
      if (peek("name", "not")) { take("name"); return { field: field(), op: "empty", value: "" }; }
      if (peek("str")) {
        var needle = take("str").v;
        take("name", "in");
        return { field: field(), op: "contains", value: needle };
      }
      if (peek("op", "(")) {
        take("op", "(");
        var inner = field();
        take("op", "~"); take("str", ""); take("op", ")");
        return { field: inner, op: "starts", value: startsCall() };
      }
      var f = field();
      if (peek("op", "==")) { take("op"); return { field: f, op: "is", value: lit() }; }
      if (peek("op", "!=")) { take("op"); return { field: f, op: "is_not", value: lit() }; }
      if (peek("name", "in")) {
        take("name"); take("op", "[");
        var values = [lit()];
        while (peek("op", ",")) { take("op"); values.push(lit()); }
        take("op", "]");
        return { field: f, op: "one_of", value: values };
      }
      if (peek("op", ".")) { return { field: f, op: "starts", value: startsCall() }; }
      return { field: f, op: "not_empty", value: "" };
    }
    var conds = [];
    var joiner = null;
    try {
      for (;;) {
        conds.push(condition());
        if (pos >= toks.length) { break; }
        var j = take("name").v;
        if ((j !== "and" && j !== "or") || (joiner && joiner !== j)) { return null; }
        joiner = j;
      }
    } catch (e) {
      return null;
    }
    joiner = joiner || "and";
    if (!sameTokens(tokenize(compileWhen(conds, joiner, typeOf)), toks)) { return null; }
    return { conds: conds, joiner: joiner };
  }

  var SWITCH_VALUE = /^\{\{\s*(lead|answers)\.([A-Za-z_][A-Za-z0-9_]*)\s*(?:\[\s*:\s*(\d+)\s*\])?\s*\}\}$/;

  function compileSwitchValue(field, chars) {
    var n = parseInt(chars, 10);
    return "{{ " + field + (n > 0 ? "[:" + n + "]" : "") + " }}";
  }

  function parseSwitchValue(text, knownLead) {
    var m = SWITCH_VALUE.exec(String(text || "").trim());
    if (!m || (m[1] === "lead" && knownLead.indexOf(m[2]) < 0)) { return null; }
    return { field: m[1] + "." + m[2], chars: m[3] ? String(parseInt(m[3], 10)) : "" };
  }

  window.VisitmailWhen = {
    compile: compileWhen, parse: parseWhen,
    compileSwitchValue: compileSwitchValue, parseSwitchValue: parseSwitchValue
  };

  // --- the page -----------------------------------------------------------------------

  var root = document.getElementById("mapping-builder");
  var textarea = document.getElementById("mapping-document");
  var dataBlock = document.getElementById("mapping-builder-data");
  var tabs = document.getElementById("mapping-view-tabs");
  if (!root || !textarea || !dataBlock || !tabs) { return; }
  var data = JSON.parse(dataBlock.textContent);
  var tabForm = document.getElementById("tab-form");
  var tabJson = document.getElementById("tab-json");
  var jsonPanel = document.getElementById("json-panel");
  var errorBox = document.getElementById("builder-error");
  var leadKeys = data.lead_fields.map(function (f) { return f.key; });
  var eventsById = {};
  data.events.forEach(function (e) { eventsById[e.id] = e; });
  var problems = data.problems || [];
  var doc = null;
  var uiState = new WeakMap();
  var lastTemplateField = null;  // the subject/body/html a placeholder goes into

  // The questions a rule can read: its event's, or (for "*") every event's, first wins.
  function questionsFor(rule) {
    if (rule.event !== "*") {
      var ev = eventsById[String(rule.event).toLowerCase()];
      return ev ? ev.questions : [];
    }
    var seen = {};
    var out = [];
    data.events.forEach(function (e) {
      e.questions.forEach(function (q) {
        if (!seen[q.key]) { seen[q.key] = true; out.push(q); }
      });
    });
    return out;
  }

  function questionOf(rule, field) {
    if (field.indexOf("answers.") !== 0) { return null; }
    var key = field.slice(8);
    var qs = questionsFor(rule);
    for (var i = 0; i < qs.length; i++) { if (qs[i].key === key) { return qs[i]; } }
    return null;
  }

  function typeFor(rule) {
    return function (field) {
      var q = questionOf(rule, field);
      return q ? q.type : "text";
    };
  }

  function ui(rule) {
    var state = uiState.get(rule);
    if (state) { return state; }
    state = { conds: [], joiner: "and", customWhen: false, customSwitch: false, stash: {} };
    if (typeof rule.when === "string" && rule.when.trim()) {
      var parsed = parseWhen(rule.when, typeFor(rule), leadKeys);
      if (parsed) { state.conds = parsed.conds; state.joiner = parsed.joiner; }
      else { state.customWhen = true; }
    } else if (rule.when !== undefined && typeof rule.when !== "string") {
      state.customWhen = true;
    }
    if (rule.switch && typeof rule.switch === "object") {
      state.customSwitch = !parseSwitchValue(rule.switch.value, leadKeys);
    }
    uiState.set(rule, state);
    return state;
  }

  function mode(rule) {
    if (rule.switch !== undefined) { return "switch"; }
    if (rule.when !== undefined) { return "when"; }
    return ui(rule).mode === "when" ? "when" : "always";
  }

  function syncJson() {
    textarea.value = JSON.stringify(doc, null, 2) + "\n";
  }

  function changed() { syncJson(); }

  // --- building blocks ---

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) { return; }
      if (k === "text") { node.textContent = v; }
      else if (k === "className") { node.className = v; }
      else if (k.indexOf("on") === 0) { node.addEventListener(k.slice(2), v); }
      else if (v === true) { node.setAttribute(k, ""); }
      else { node.setAttribute(k, v); }
    });
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) { return; }
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function idOf(path) { return "b-" + path.replace(/[^A-Za-z0-9]+/g, "-"); }

  function field(label, control, hint) {
    return el("div", { className: "b-field" }, [
      el("label", { "for": control.id, text: label }), control,
      hint ? el("p", { className: "hint", text: hint }) : null
    ]);
  }

  function textInput(path, value, onInput, extra) {
    var attrs = { id: idOf(path), type: "text", value: value === undefined || value === null ? "" : String(value), "data-path": path, oninput: function (e) { onInput(e.target.value); changed(); } };
    Object.keys(extra || {}).forEach(function (k) { attrs[k] = extra[k]; });
    return el("input", attrs);
  }

  function checkbox(path, label, checked, onChange) {
    var id = idOf(path);
    return el("div", { className: "check" }, [
      el("input", { type: "checkbox", id: id, "data-path": path, checked: !!checked, onchange: function (e) { onChange(e.target.checked); changed(); } }),
      el("label", { "for": id, text: label })
    ]);
  }

  function select(path, options, value, onChange, attrs) {
    var a = { id: idOf(path), "data-path": path, onchange: function (e) { onChange(e.target.value); } };
    Object.keys(attrs || {}).forEach(function (k) { a[k] = attrs[k]; });
    var node = el("select", a, options.map(function (o) {
      if (o.group) {
        return el("optgroup", { label: o.group }, o.options.map(function (p) {
          return el("option", { value: p[0], text: p[1], selected: p[0] === value });
        }));
      }
      return el("option", { value: o[0], text: o[1], selected: o[0] === value });
    }));
    return node;
  }

  function smallButton(label, onClick, extra) {
    var attrs = { type: "button", className: "secondary b-small", text: label, onclick: function () { onClick(); changed(); render(); } };
    Object.keys(extra || {}).forEach(function (k) { attrs[k] = extra[k]; });
    return el("button", attrs);
  }

  function moveButtons(list, index, what) {
    var n = index + 1;
    return el("div", { className: "b-move" }, [
      smallButton("↑", function () { swap(list, index, index - 1); }, { "aria-label": "Move " + what + " " + n + " up", disabled: index === 0 }),
      smallButton("↓", function () { swap(list, index, index + 1); }, { "aria-label": "Move " + what + " " + n + " down", disabled: index === list.length - 1 }),
      smallButton("Remove", function () { list.splice(index, 1); problems = []; }, { "aria-label": "Remove " + what + " " + n })
    ]);
  }

  function swap(list, a, b) {
    if (b < 0 || b >= list.length) { return; }
    var tmp = list[a]; list[a] = list[b]; list[b] = tmp;
    problems = [];  // the paths no longer point at the same things
  }

  // Address lists: separated by commas, semicolons or new lines, except inside {{ … }}.
  function splitAddresses(text) {
    var out = [];
    var current = "";
    var depth = 0;
    for (var i = 0; i < text.length; i++) {
      var two = text.substr(i, 2);
      if (two === "{{") { depth++; current += two; i++; continue; }
      if (two === "}}" && depth > 0) { depth--; current += two; i++; continue; }
      if (depth === 0 && ",;\n".indexOf(text[i]) >= 0) { out.push(current); current = ""; continue; }
      current += text[i];
    }
    out.push(current);
    return out.map(function (s) { return s.trim(); }).filter(function (s) { return s; });
  }

  function fieldOptions(rule, current) {
    var lead = data.lead_fields.map(function (f) { return ["lead." + f.key, f.label]; });
    var answers = questionsFor(rule).map(function (q) { return ["answers." + q.key, q.label]; });
    var groups = [{ group: "Lead", options: lead }];
    if (answers.length) { groups.push({ group: "Answers to the event's questions", options: answers }); }
    var known = lead.concat(answers).some(function (o) { return o[0] === current; });
    if (current && !known) { groups.push({ group: "Not a question of this event", options: [[current, current + " (unknown)"]] }); }
    return groups;
  }

  function placeholderOptions(rule) {
    var out = [["", "Insert placeholder…"]];
    var lead = data.lead_fields.map(function (f) { return ["{{ lead." + f.key + " }}", f.label]; });
    var answers = questionsFor(rule).map(function (q) { return ["{{ answers." + q.key + " }}", q.label]; });
    var other = data.placeholders.map(function (p) { return [p.text, p.label]; });
    return out.concat([{ group: "Lead", options: lead }])
      .concat(answers.length ? [{ group: "Answers", options: answers }] : [])
      .concat([{ group: "Report and reporter", options: other }]);
  }

  function insertAt(input, text) {
    var start = input.selectionStart === null ? input.value.length : input.selectionStart;
    var end = input.selectionEnd === null ? input.value.length : input.selectionEnd;
    input.value = input.value.slice(0, start) + text + input.value.slice(end);
    input.focus();
    input.setSelectionRange(start + text.length, start + text.length);
    input.dispatchEvent(new Event("input"));
  }

  // --- rules ---

  // The option of the rule's event: ids are compared in lower case, as the server does.
  function eventValue(rule) {
    var current = String(rule.event === undefined ? "*" : rule.event).toLowerCase();
    return current === "*" || eventsById[current] ? current : String(rule.event);
  }

  function eventOptions(rule) {
    var opts = [["*", "Every event"]];
    data.events.forEach(function (e) { opts.push([e.id, e.name]); });
    var current = eventValue(rule);
    if (current !== "*" && !eventsById[current]) { opts.push([current, "Unknown event " + current]); }
    return opts;
  }

  function renderRule(rule, i) {
    var path = "rules[" + i + "]";
    var state = ui(rule);
    var m = mode(rule);
    var heading = el("h3", { className: "b-rule-title", id: idOf(path) + "-title", text: "Rule " + (i + 1) + ": " + (rule.name || "(no name)") });
    var triggerName = path + ".on";
    var trigger = el("fieldset", { className: "b-group", "data-path": triggerName }, [
      el("legend", { text: "When" }),
      radio(triggerName, "exported", rule.on === "exported", "the report is exported from the app (the reporter sends it)", function () { rule.on = "exported"; }),
      radio(triggerName, "checked", rule.on === "checked", "the report is checked in the dashboard (someone reviewed it)", function () { rule.on = "checked"; })
    ]);
    var modeName = path + ".mode";
    var modes = el("fieldset", { className: "b-group" }, [
      el("legend", { text: "Notify" }),
      radio(modeName, "always", m === "always", "always", function () { setMode(rule, "always"); render(); }),
      radio(modeName, "when", m === "when", "only when a condition holds", function () { setMode(rule, "when"); render(); }),
      radio(modeName, "switch", m === "switch", "a switch: pick the recipients by a field's value", function () { setMode(rule, "switch"); render(); })
    ]);
    var body = [];
    if (m === "when") { body.push(renderConditions(rule, path, state)); }
    if (m === "switch") { body.push(renderSwitch(rule, path, state)); }
    if (m !== "switch") {
      body.push(renderActions(rule, rule, "actions", path + ".actions", "Actions"));
    }
    var card = el("article", { className: "b-rule", "data-path": path, "aria-labelledby": heading.id }, [
      el("div", { className: "b-rule-head" }, [heading, moveButtons(doc.rules, i, "rule")]),
      el("div", { className: "b-grid" }, [
        field("Name", textInput(path + ".name", rule.name, function (v) { rule.name = v; heading.textContent = "Rule " + (i + 1) + ": " + (v || "(no name)"); })),
        field("Event", select(path + ".event", eventOptions(rule), eventValue(rule), function (v) { rule.event = v; changed(); render(); }))
      ]),
      checkbox(path + ".enabled", "Enabled (a disabled rule never fires)", rule.enabled !== false, function (v) { if (v) { delete rule.enabled; } else { rule.enabled = false; } }),
      trigger,
      checkbox(path + ".notify_every_export", "Notify again whenever a changed report is exported or checked again (otherwise once per report)", rule.notify_every_export === true, function (v) { if (v) { rule.notify_every_export = true; } else { delete rule.notify_every_export; } }),
      modes
    ].concat(body));
    return card;
  }

  function radio(name, value, checked, label, onPick) {
    var id = idOf(name + "-" + value);
    return el("div", { className: "check" }, [
      el("input", { type: "radio", name: idOf(name), id: id, value: value, checked: checked, onchange: function () { onPick(); changed(); } }),
      el("label", { "for": id, text: label })
    ]);
  }

  function newEmail() {
    return { email: { to: [], subject: "New lead: {{ lead.company }}", body: "{{ salutation }},\n\n{{ reporter.name }} met {{ lead.first_name }} {{ lead.last_name }} of {{ lead.company }} ({{ lead.zip }} {{ lead.city }})." } };
  }

  function setMode(rule, next) {
    var state = ui(rule);
    state.mode = next;
    var stash = state.stash;
    if (next === "switch") {
      if (rule.actions !== undefined) { stash.actions = rule.actions; delete rule.actions; }
      if (rule.when !== undefined) { stash.when = rule.when; delete rule.when; }
      rule.switch = stash.switch || { value: "{{ lead.zip[:1] }}", cases: [{ match: [""], actions: [newEmail()] }], default: [] };
      state.customSwitch = !parseSwitchValue(rule.switch.value, leadKeys);
      return;
    }
    if (rule.switch !== undefined) { stash.switch = rule.switch; delete rule.switch; }
    if (rule.actions === undefined) { rule.actions = stash.actions || [newEmail()]; }
    if (next === "always") {
      if (rule.when !== undefined) { stash.when = rule.when; delete rule.when; }
    } else if (rule.when === undefined) {
      if (stash.when !== undefined) { rule.when = stash.when; }
      else {
        state.conds = [{ field: "lead.country", op: "is", value: "" }];
        state.customWhen = false;
        rule.when = compileWhen(state.conds, state.joiner, typeFor(rule));
      }
    }
  }

  // --- conditions ---

  function recompile(rule, state) {
    // No row left: no condition (the rule then always fires, as "always" says).
    if (state.conds.length) { rule.when = compileWhen(state.conds, state.joiner, typeFor(rule)); }
    else { delete rule.when; }
  }

  function renderConditions(rule, path, state) {
    var box = el("fieldset", { className: "b-group b-conditions", "data-path": path + ".when" }, [el("legend", { text: "Condition" })]);
    if (state.customWhen) {
      var area = el("textarea", { id: idOf(path + ".when"), rows: "3", className: "b-custom", "data-path": path + ".when", oninput: function (e) { rule.when = e.target.value; changed(); } });
      area.value = typeof rule.when === "string" ? rule.when : JSON.stringify(rule.when);
      box.appendChild(field("Custom expression", area, "The form cannot show this condition as rows; edit it here (see the help page for the syntax)."));
      box.appendChild(smallButton("Replace with condition rows", function () {
        state.customWhen = false;
        state.conds = [{ field: "lead.country", op: "is", value: "" }];
        recompile(rule, state);
      }));
      return box;
    }
    var joinPath = path + ".joiner";
    if (state.conds.length > 1) {  // one row needs no joiner
      box.appendChild(field("Combine the rows with", select(joinPath, [["and", "all must hold (and)"], ["or", "any may hold (or)"]], state.joiner, function (v) { state.joiner = v; recompile(rule, state); changed(); })));
    }
    state.conds.forEach(function (cond, k) { box.appendChild(renderCondition(rule, path, state, cond, k)); });
    box.appendChild(smallButton("Add a condition", function () {
      state.conds.push({ field: "lead.country", op: "is", value: "" });
      recompile(rule, state);
    }));
    box.appendChild(smallButton("Write a custom expression", function () { state.customWhen = true; }));
    return box;
  }

  function valueChoices(q) {
    if (!q) { return null; }
    if (q.type === "bool") { return [["true", "Yes"], ["false", "No"]]; }
    if (q.type === "single" || q.type === "multi") { return q.options.map(function (o) { return [o.key, o.label]; }); }
    return null;
  }

  function renderCondition(rule, path, state, cond, k) {
    var base = path + ".cond" + k;
    var q = questionOf(rule, cond.field);
    var choices = valueChoices(q);
    var row = el("div", { className: "b-condition", role: "group", "aria-label": "Condition " + (k + 1) });
    row.appendChild(field("Field", select(base + ".field", fieldOptions(rule, cond.field), cond.field, function (v) {
      cond.field = v;
      var nq = questionOf(rule, v);
      var nc = valueChoices(nq);
      if (cond.op === "one_of") { cond.value = []; }
      else { cond.value = nc ? nc[0][0] : ""; }
      recompile(rule, state); changed(); render();
    })));
    row.appendChild(field("Operator", select(base + ".op", OPS, cond.op, function (v) {
      var wasList = cond.op === "one_of";
      cond.op = v;
      if (v === "one_of" && !wasList) { cond.value = cond.value ? [cond.value] : []; }
      if (v !== "one_of" && wasList) { cond.value = cond.value[0] || (choices ? choices[0][0] : ""); }
      if (NO_VALUE[v]) { cond.value = ""; }
      else if (choices && !cond.value && v !== "one_of") { cond.value = choices[0][0]; }
      recompile(rule, state); changed(); render();
    })));
    if (!NO_VALUE[cond.op]) {
      if (cond.op === "one_of") {
        if (choices) {
          var set = el("fieldset", { className: "b-choices" }, [el("legend", { text: "Values" })]);
          choices.forEach(function (c) {
            var id = idOf(base + ".v-" + c[0]);
            set.appendChild(el("div", { className: "check" }, [
              el("input", { type: "checkbox", id: id, checked: cond.value.indexOf(c[0]) >= 0, onchange: function (e) {
                var values = cond.value.filter(function (x) { return x !== c[0]; });
                if (e.target.checked) { values.push(c[0]); }
                cond.value = choices.map(function (x) { return x[0]; }).filter(function (x) { return values.indexOf(x) >= 0; });
                recompile(rule, state); changed();
              } }),
              el("label", { "for": id, text: c[1] })
            ]));
          });
          row.appendChild(set);
        } else {
          row.appendChild(field("Values (separated by commas)", textInput(base + ".value", cond.value.join(", "), function (v) {
            cond.value = v.split(",").map(function (s) { return s.trim(); }).filter(function (s) { return s; });
            recompile(rule, state);
          })));
        }
      } else if (choices && cond.op !== "starts") {
        var opts = choices.slice();
        if (!choices.some(function (c) { return c[0] === cond.value; })) {
          opts.unshift([cond.value, cond.value === "" ? "(empty: choose a value)" : cond.value + " (not an option)"]);
        }
        row.appendChild(field("Value", select(base + ".value", opts, cond.value, function (v) { cond.value = v; recompile(rule, state); changed(); })));
      } else {
        row.appendChild(field("Value", textInput(base + ".value", cond.value, function (v) { cond.value = v; recompile(rule, state); })));
      }
    }
    row.appendChild(smallButton("Remove", function () { state.conds.splice(k, 1); recompile(rule, state); }, { "aria-label": "Remove condition " + (k + 1) }));
    return row;
  }

  // --- switch ---

  function renderSwitch(rule, path, state) {
    var sw = rule.switch;
    var sp = path + ".switch";
    var box = el("fieldset", { className: "b-group b-switch", "data-path": sp }, [el("legend", { text: "Switch" })]);
    // Rendering never rewrites what it cannot show: such parts are left to the JSON view.
    if (!sw || typeof sw !== "object" || Array.isArray(sw) || (sw.cases !== undefined && !Array.isArray(sw.cases))) {
      box.appendChild(jsonOnly("This switch"));
      return box;
    }
    var cases = sw.cases || [];
    var parsed = state.customSwitch ? null : parseSwitchValue(sw.value, leadKeys);
    if (!parsed) {
      box.appendChild(field("Custom value (a template)", textInput(sp + ".value", sw.value, function (v) { sw.value = v; }), "Its result is compared with each case's values (spaces trimmed, case ignored)."));
      box.appendChild(smallButton("Pick a field instead", function () { state.customSwitch = false; sw.value = compileSwitchValue("lead.zip", "1"); }));
    } else {
      var from = el("div", { className: "b-grid", "data-path": sp + ".value" }, [
        field("Value of the field", select(sp + ".value", fieldOptions(rule, parsed.field), parsed.field, function (v) {
          // A choice question's values are whole option keys: the "first N characters" kept
          // from the postcode default would cut "north" to "n" and no case would match.
          sw.value = compileSwitchValue(v, valueChoices(questionOf(rule, v)) ? "" : parsed.chars);
          changed(); render();
        })),
        field("Only its first N characters", textInput(sp + ".chars", parsed.chars, function (v) { parsed.chars = v; sw.value = compileSwitchValue(parsed.field, v); }, { inputmode: "numeric", placeholder: "all" }), "e.g. 1: the first digit of the postcode")
      ]);
      box.appendChild(from);
      box.appendChild(el("p", { className: "hint" }, ["Compared as ", el("code", { text: sw.value }), "."]));
      var q = questionOf(rule, parsed.field);
      var choices = valueChoices(q);
      if (choices) { box.appendChild(el("p", { className: "hint", text: "Its values: " + choices.map(function (c) { return c[0] + " (" + c[1] + ")"; }).join(", ") })); }
      box.appendChild(smallButton("Write a custom value", function () { state.customSwitch = true; }));
    }
    cases.forEach(function (c, k) {
      var cp = sp + ".cases[" + k + "]";
      var section = el("section", { className: "b-case", "data-path": cp, "aria-label": "Case " + (k + 1) }, [
        el("div", { className: "b-rule-head" }, [el("h4", { text: "Case " + (k + 1) }), moveButtons(cases, k, "case")])
      ]);
      box.appendChild(section);
      if (!c || typeof c !== "object" || Array.isArray(c)) { section.appendChild(jsonOnly("This case")); return; }
      if (c.match === undefined || Array.isArray(c.match)) {
        section.appendChild(field("Matches these values (separated by commas)", textInput(cp + ".match", (c.match || []).join(", "), function (v) {
          c.match = v.split(",").map(function (s) { return s.trim(); }).filter(function (s) { return s; });
        })));
      } else {
        section.appendChild(jsonOnly("Its values"));
      }
      section.appendChild(renderActions(rule, c, "actions", cp + ".actions", "Actions of case " + (k + 1)));
    });
    box.appendChild(smallButton("Add a case", function () {
      if (!Array.isArray(sw.cases)) { sw.cases = []; }
      sw.cases.push({ match: [], actions: [newEmail()] });
    }));
    box.appendChild(el("section", { className: "b-case", "data-path": sp + ".default", "aria-label": "Default" }, [
      el("h4", { text: "Default (no case matches)" }),
      renderActions(rule, sw, "default", sp + ".default", "Default actions")
    ]));
    return box;
  }

  // --- actions ---

  function jsonOnly(what) {
    return el("p", { className: "hint", text: what + " has a form the builder cannot show; edit it in the JSON (advanced) view." });
  }

  // The actions in holder[key] (created on the first "Add", never while only showing).
  function renderActions(rule, holder, key, path, title) {
    var box = el("div", { className: "b-actions", "data-path": path }, [el("h4", { text: title })]);
    var list = holder[key];
    if (list !== undefined && !Array.isArray(list)) {
      box.appendChild(jsonOnly("This list of actions"));
      return box;
    }
    list = list || [];
    function add(action) {
      if (!Array.isArray(holder[key])) { holder[key] = []; }
      holder[key].push(action);
    }
    if (!list.length) { box.appendChild(el("p", { className: "hint", text: "No action: nobody is notified." })); }
    list.forEach(function (action, j) {
      var ap = path + "[" + j + "]";
      var kind = action && action.webhook !== undefined && action.email === undefined ? "webhook" : "email";
      var card = el("div", { className: "b-action", "data-path": ap, role: "group", "aria-label": title + ": action " + (j + 1) }, [
        el("div", { className: "b-rule-head" }, [el("strong", { text: (kind === "email" ? "Email" : "Webhook") + " " + (j + 1) }), moveButtons(list, j, "action")])
      ]);
      if (!action || typeof action !== "object") {
        card.appendChild(el("p", { className: "hint", text: "Not an action; edit it in the JSON view." }));
      } else if (kind === "email") {
        renderEmail(rule, action, ap, card);
      } else {
        renderWebhook(action, ap, card);
      }
      box.appendChild(card);
    });
    box.appendChild(el("div", { className: "button-row" }, [
      smallButton("Add an email", function () { add(newEmail()); }, { "aria-label": "Add an email to " + title }),
      smallButton("Add a webhook", function () { add({ webhook: { url: "https://", secret_ref: "" } }); }, { "aria-label": "Add a webhook to " + title })
    ]));
    return box;
  }

  function renderEmail(rule, action, ap, card) {
    var mail = action.email;
    if (!mail || typeof mail !== "object" || Array.isArray(mail)) { card.appendChild(jsonOnly("This email")); return; }
    var ep = ap + ".email";
    function list(key, label, hint) {
      var current = Array.isArray(mail[key]) ? mail[key].join(", ") : (mail[key] || "");
      return field(label, textInput(ep + "." + key, current, function (v) {
        var values = splitAddresses(v);
        if (key === "to" || values.length) { mail[key] = values; } else { delete mail[key]; }
      }, { autocomplete: "off", spellcheck: "false" }), hint);
    }
    function optional(key, label, hint) {
      return field(label, textInput(ep + "." + key, mail[key], function (v) {
        if (v.trim()) { mail[key] = v.trim(); } else { delete mail[key]; }
      }, { autocomplete: "off" }), hint);
    }
    var subject = textInput(ep + ".subject", mail.subject, function (v) { mail.subject = v; });
    var bodyArea = el("textarea", { id: idOf(ep + ".body"), rows: "6", "data-path": ep + ".body", oninput: function (e) { mail.body = e.target.value; changed(); } });
    bodyArea.value = mail.body || "";
    var htmlArea = el("textarea", { id: idOf(ep + ".html"), rows: "4", "data-path": ep + ".html", oninput: function (e) {
      if (e.target.value.trim()) { mail.html = e.target.value; } else { delete mail.html; }
      changed();
    } });
    htmlArea.value = mail.html || "";
    [subject, bodyArea, htmlArea].forEach(function (input) {
      input.addEventListener("focus", function () { lastTemplateField = input; });
    });
    var picker = select(ep + ".placeholder", placeholderOptions(rule), "", function (v) {
      if (!v) { return; }
      var target = lastTemplateField && card.contains(lastTemplateField) ? lastTemplateField : bodyArea;
      insertAt(target, v);
      picker.value = "";
    }, { className: "b-placeholder" });
    card.appendChild(list("to", "To", "Addresses separated by commas; {{ reporter.email }} works too."));
    card.appendChild(el("div", { className: "b-grid" }, [
      list("cc", "Cc"), list("bcc", "Bcc"),
      optional("reply_to", "Reply-To")
    ]));
    card.appendChild(checkbox(ep + ".cc_reporter", "Cc the reporter (who captured the lead)", mail.cc_reporter === true, function (v) { if (v) { mail.cc_reporter = true; } else { delete mail.cc_reporter; } }));
    card.appendChild(field("Subject", subject));
    card.appendChild(field("Body (plain text)", bodyArea));
    card.appendChild(field("Insert placeholder", picker, "It goes where the cursor was last: in the subject, the body or the HTML body."));
    card.appendChild(el("details", { className: "b-html", open: !!mail.html }, [el("summary", { text: "HTML body (optional)" }), field("HTML body", htmlArea, "Values are escaped.")]));
    card.appendChild(checkbox(ep + ".attach_pdf", "Attach the report as a PDF", mail.attach_pdf === true, function (v) { if (v) { mail.attach_pdf = true; } else { delete mail.attach_pdf; } }));
    card.appendChild(optional("language", "Language", "de, en, de-AT … Empty: the lead's language."));
  }

  function renderWebhook(action, ap, card) {
    var hook = action.webhook;
    if (!hook || typeof hook !== "object" || Array.isArray(hook)) { card.appendChild(jsonOnly("This webhook")); return; }
    var wp = ap + ".webhook";
    card.appendChild(el("div", { className: "b-grid" }, [
      field("URL (https://)", textInput(wp + ".url", hook.url, function (v) { hook.url = v.trim(); }, { inputmode: "url", autocomplete: "off" })),
      field("Secret name", textInput(wp + ".secret_ref", hook.secret_ref, function (v) { hook.secret_ref = v.trim(); }, { autocomplete: "off" }), "The webhook secret that signs the request.")
    ]));
  }

  // --- problems beside their fields ---

  function showProblems() {
    var marked = root.querySelectorAll("[data-path]");
    problems.forEach(function (p, n) {
      if (!p.path) { return; }
      var best = null;
      var bestLength = -1;
      marked.forEach(function (node) {
        var np = node.getAttribute("data-path");
        var boundary = p.path.charAt(np.length);
        if (p.path.indexOf(np) === 0 && (boundary === "" || boundary === "." || boundary === "[") && np.length >= bestLength) {  // on a tie the inner one (later in document order)
          best = node; bestLength = np.length;
        }
      });
      if (!best) { return; }
      var msgId = "b-problem-" + n;
      var msg = el("p", { className: "error b-problem", id: msgId }, [p.path.length > bestLength ? p.path.slice(bestLength).replace(/^\./, "") + ": " : "", p.message]);
      if (/^(INPUT|SELECT|TEXTAREA)$/.test(best.tagName)) {
        best.setAttribute("aria-invalid", "true");
        best.setAttribute("aria-describedby", ((best.getAttribute("aria-describedby") || "") + " " + msgId).trim());
        var wrap = best.closest(".b-field") || best;
        wrap.appendChild(msg);
      } else if (best.tagName === "FIELDSET") {
        var legend = best.querySelector("legend");
        best.insertBefore(msg, legend ? legend.nextSibling : best.firstChild);
      } else {
        var head = best.querySelector(".b-rule-head");
        best.insertBefore(msg, head ? head.nextSibling : best.firstChild);
      }
    });
  }

  // --- the whole builder ---

  function render() {
    var focused = document.activeElement && root.contains(document.activeElement) ? document.activeElement.id : null;
    root.textContent = "";
    if (!Array.isArray(doc.rules)) { doc.rules = []; }
    if (!doc.rules.length) { root.appendChild(el("p", { className: "hint", text: "No rule yet: nobody is notified. Add one." })); }
    doc.rules.forEach(function (rule, i) {
      if (!rule || typeof rule !== "object" || Array.isArray(rule)) {
        root.appendChild(el("p", { className: "error", "data-path": "rules[" + i + "]", text: "Rule " + (i + 1) + " is not an object; edit it in the JSON view." }));
        return;
      }
      root.appendChild(renderRule(rule, i));
    });
    root.appendChild(smallButton("Add a rule", function () {
      doc.rules.push({ name: "New rule", event: "*", on: "exported", actions: [newEmail()] });
    }, { className: "b-add-rule" }));
    showProblems();
    if (focused) {
      var again = document.getElementById(focused);
      if (again) { again.focus(); }
    }
  }

  function readJson() {
    var parsed;
    try {
      parsed = JSON.parse(textarea.value);
    } catch (e) {
      return "The JSON cannot be read (" + e.message + "). Fix it here, or save to see every problem.";
    }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed) || (parsed.rules !== undefined && !Array.isArray(parsed.rules))) {
      return "The form needs a document with a list of rules; fix it here, or save to see every problem.";
    }
    doc = parsed;
    uiState = new WeakMap();
    return null;
  }

  function show(view) {
    var form = view === "form";
    if (form) {
      var problem = readJson();
      if (problem) {
        errorBox.textContent = problem;
        errorBox.hidden = false;
        form = false;
      } else {
        errorBox.hidden = true;
        render();
      }
    } else if (doc) {
      syncJson();
      errorBox.hidden = true;
    }
    root.hidden = !form;
    jsonPanel.hidden = form;
    tabForm.setAttribute("aria-selected", String(form));
    tabJson.setAttribute("aria-selected", String(!form));
    tabForm.tabIndex = form ? 0 : -1;  // the tab pattern: one tab stop, arrows move between
    tabJson.tabIndex = form ? -1 : 0;
    try { sessionStorage.setItem("visitmail-mapping-view", form ? "form" : "json"); } catch (e) { /* private mode */ }
    return form;
  }

  tabs.hidden = false;
  tabForm.addEventListener("click", function () { show("form"); });
  tabJson.addEventListener("click", function () { show("json"); });
  tabs.addEventListener("keydown", function (event) {
    if (["ArrowLeft", "ArrowRight", "Home", "End"].indexOf(event.key) < 0) { return; }
    event.preventDefault();
    var toForm = event.key === "Home" || (event.key !== "End" && document.activeElement === tabJson);
    (show(toForm ? "form" : "json") ? tabForm : tabJson).focus();
  });
  var wanted = "form";
  try { wanted = sessionStorage.getItem("visitmail-mapping-view") || "form"; } catch (e) { /* private mode */ }
  if (wanted === "json") { show("json"); readJson(); } else { show("form"); }

  // A problem link in the list above goes to its field in the form when it is shown there.
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest(".problem-path") : null;
    if (!link || root.hidden) { return; }
    var path = link.textContent.trim();
    var target = null;
    problems.forEach(function (p, n) {
      if (target || p.path !== path) { return; }
      var msg = document.getElementById("b-problem-" + n);
      if (msg) { target = msg.closest(".b-field") ? msg.closest(".b-field").querySelector("input, select, textarea") : msg; }
    });
    if (!target) { show("json"); return; }  // mapping.js selects the line in the JSON
    event.preventDefault();
    event.stopImmediatePropagation();
    if (!target.hasAttribute("tabindex") && !/^(INPUT|SELECT|TEXTAREA)$/.test(target.tagName)) { target.setAttribute("tabindex", "-1"); }
    target.focus();
  }, true);
})();
