// The "Outgoing mail server" page: presets, port hints, secret replace/clear, the
// connection test and auto-detect. No build step; the page works without it (save only).
(function () {
  "use strict";
  const form = document.getElementById("smtp-form");
  if (!form) return;
  const $ = (id) => document.getElementById(id);
  const presets = JSON.parse($("smtp-presets").textContent || "[]");
  const PORT_HINTS = {
    tls: "Usually 465 for implicit TLS.",
    starttls: "Usually 587 for STARTTLS.",
    none: "Usually 25 (or 587) without encryption.",
  };
  const DEFAULT_PORTS = { tls: "465", starttls: "587", none: "25" };
  const STEP_LABELS = {
    resolve: "Resolve host name",
    connect: "Connect",
    greeting: "Server greeting",
    ehlo: "EHLO",
    tls: "TLS",
    token: "OAuth2 access token",
    scope: "OAuth2 scope",
    auth: "AUTH (login)",
    mail_from: "MAIL FROM (sender)",
    rcpt_to: "RCPT TO (recipient)",
    send: "Send test message",
    quit: "QUIT",
  };

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // Texts from the server mark settings values with backticks (`starttls`): shown as
  // <code>, never as literal backticks. Built with text nodes, so nothing is parsed as HTML.
  function withCode(tag, attrs, text) {
    const node = el(tag, attrs);
    appendCode(node, text);
    return node;
  }

  function appendCode(node, text) {
    String(text ?? "").split("`").forEach((part, i) => {
      if (!part) return;
      node.append(i % 2 === 1 ? el("code", {}, part) : document.createTextNode(part));
    });
  }

  // The connection test's sender-domain block: informative, one line per check; the
  // section "Sender domain" below the form shows the records to publish in full.
  function renderDomain(domain) {
    const box = el("div", { class: "domain-summary" });
    const through = domain.provider_name ? ` (through ${domain.provider_name})` : "";
    box.append(el("h3", {}, `Sender domain ${domain.domain}${through}: ${domain.verdict}`));
    const list = el("ul");
    for (const check of domain.checks) {
      const item = el("li");
      item.append(el("span", { class: `badge verdict-${check.verdict}` }, check.verdict), " ");
      item.append(el("strong", {}, check.name.toUpperCase() + ": "), check.summary);
      for (const record of check.records) {
        item.append(el("br"), `${record.action === "replace" ? "Replace" : "Add"} ${record.type} `);
        item.append(el("code", {}, record.name), " ", el("code", { class: "record" }, record.value));
      }
      list.append(item);
    }
    box.append(list);
    box.append(el("p", { class: "hint" }, "This check does not fail the connection test."));
    return box;
  }

  function security() {
    const checked = form.querySelector('input[name="security"]:checked');
    return checked ? checked.value : "starttls";
  }

  function followSecurity(changePort) {
    const value = security();
    const hint = $("f-port-hint");
    if (hint) hint.textContent = PORT_HINTS[value] || "";
    const port = $("f-port");
    if (changePort && port && Object.values(DEFAULT_PORTS).includes(port.value || "")) {
      port.value = DEFAULT_PORTS[value];
    }
  }

  function setValue(id, value) {
    const input = $(id);
    if (input) input.value = value === null || value === undefined ? "" : String(value);
  }

  function showPreset(preset) {
    const note = $("preset-note");
    const userHint = $("f-username-hint");
    const pwHint = $("f-password-hint");
    const limitsNote = $("limits-note");
    if (!preset) {
      note.textContent = "";
      if (limitsNote) limitsNote.textContent = "";
      return;
    }
    const alt = preset.alternatives.length ? ` Also possible: port ${preset.alternatives.join(", ")}.` : "";
    note.textContent = `${preset.name}: ${preset.note}${alt}`;
    if (userHint) userHint.textContent = `Username: ${preset.username_hint}.`;
    if (pwHint) pwHint.textContent = `Password: ${preset.credential_hint}. Write-only: it is never shown again.`;
    if (limitsNote) limitsNote.textContent = preset.limits_note ? `Provider limits: ${preset.limits_note}.` : "";
  }

  function applyPreset(preset) {
    setValue("f-host", preset.host);
    setValue("f-port", preset.port);
    const radio = $(`f-security-${preset.security}`);
    if (radio) radio.checked = true;
    const username = $("f-username");
    // A login name the provider fixes (SendGrid's "apikey") is filled in; otherwise
    // the hint shows as a placeholder and the admin types their own.
    if (username && preset.username) username.value = preset.username;
    else if (username && !username.value) username.placeholder = preset.username_hint;
    const lim = preset.limits;
    setValue("f-limits-per-minute", lim.per_minute);
    setValue("f-limits-per-hour", lim.per_hour);
    setValue("f-limits-per-day", lim.per_day);
    setValue("f-limits-recipients-per-day", lim.recipients_per_day);
    if (lim.max_connections) setValue("f-limits-max-connections", lim.max_connections);
    followSecurity(false);
    showPreset(preset);
  }

  const presetSelect = $("f-preset");
  const findPreset = (id) => presets.find((p) => p.id === id);
  presetSelect.addEventListener("change", () => {
    const preset = findPreset(presetSelect.value);
    if (preset) applyPreset(preset);
    else showPreset(null);
  });
  showPreset(findPreset(presetSelect.value));

  form.querySelectorAll('input[name="security"]').forEach((radio) =>
    radio.addEventListener("change", () => followSecurity(true)),
  );
  followSecurity(false);

  // The sender-domain trap, said while typing (the server says it again after saving).
  function senderWarning() {
    const box = $("sender-warning");
    const user = ($("f-username").value || "").trim().toLowerCase();
    const sender = ($("f-sender-email").value || "").trim().toLowerCase();
    if (!user.includes("@") || !sender.includes("@")) {
      box.hidden = !box.textContent;
      return;
    }
    const userDomain = user.split("@").pop();
    const senderDomain = sender.split("@").pop();
    if (userDomain === senderDomain) {
      box.textContent = "";
      box.hidden = true;
      return;
    }
    box.textContent =
      `The sender address is on ${senderDomain} but the account logs in as a ${userDomain} user. ` +
      "Many servers only let an account send as its own, verified addresses: run the connection test to check.";
    box.hidden = false;
  }
  $("f-username").addEventListener("input", senderWarning);
  $("f-sender-email").addEventListener("input", senderWarning);

  // Stored secrets: "Replace" focuses the input, "Clear" marks it for removal on save.
  form.querySelectorAll("[data-secret]").forEach((wrap) => {
    const name = wrap.dataset.secret;
    const action = wrap.querySelector(`input[name="${name}_action"]`);
    const input = wrap.querySelector(`[name="${name}"]`);
    const state = wrap.querySelector(".secret-state");
    wrap.querySelectorAll("[data-secret-action]").forEach((button) =>
      button.addEventListener("click", () => {
        const kind = button.dataset.secretAction;
        if (kind === "clear") {
          action.value = "clear";
          input.value = "";
          state.innerHTML = "";
          state.append(el("span", { class: "badge bad" }, "will be cleared"), " when you save.");
        } else {
          action.value = "keep";
          state.innerHTML = "";
          state.append(el("span", { class: "badge" }, "replacing"), " Type the new value below.");
          input.focus();
        }
      }),
    );
  });

  async function post(url) {
    const response = await fetch(url, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": form.elements.csrf_token.value },
    });
    let body = null;
    try {
      body = await response.json();
    } catch (_e) {
      body = { error: { message: `The server answered ${response.status}.` } };
    }
    return { ok: response.ok, body };
  }

  function showError(target, error) {
    target.innerHTML = "";
    const label = error.field ? `${error.field}: ` : "";
    target.append(el("p", { class: "error", role: "alert" }, `${label}${error.message}`));
    if (error.field) {
      const input = form.querySelector(`[name="${CSS.escape(error.field)}"]`);
      if (input) input.setAttribute("aria-invalid", "true");
    }
  }

  function renderStep(step) {
    const item = el("li", { class: `step ${step.status}`, "data-step": step.name });
    const head = el("p", { class: "step-head" });
    head.append(
      el("span", { class: `badge ${step.status === "passed" ? "ok" : step.status === "failed" ? "bad" : ""}` }, step.status),
      " ",
      el("strong", {}, STEP_LABELS[step.name] || step.name),
    );
    if (step.status !== "skipped") head.append(el("span", { class: "hint" }, ` ${step.duration_ms} ms`));
    item.append(head);
    if (step.reply_code || step.reply_text) {
      item.append(
        el("p", { class: "reply" }, `Server replied: ${step.reply_code || ""} ${step.reply_text || ""}`.trim()),
      );
    }
    if (step.explanation) item.append(withCode("p", { class: "explanation" }, step.explanation));
    if (step.fix) {
      const fix = el("p", { class: "fix" });
      fix.append(el("strong", {}, "Fix: "));
      appendCode(fix, step.fix);
      item.append(fix);
    }
    return item;
  }

  // OAuth2: the fields show with the method, and per provider only the ones it uses.
  const authSelect = $("f-auth-method");
  const oauthBox = $("oauth-fields");
  const providerSelect = $("f-oauth-provider");
  function followAuth() {
    if (!oauthBox || !authSelect) return;
    oauthBox.hidden = authSelect.value !== "oauth2";
    const provider = providerSelect ? providerSelect.value : "";
    oauthBox.querySelectorAll("[data-oauth-for]").forEach((node) => {
      node.hidden = !node.dataset.oauthFor.split(" ").includes(provider);
    });
  }
  if (authSelect) authSelect.addEventListener("change", followAuth);
  if (providerSelect) providerSelect.addEventListener("change", followAuth);
  followAuth();

  const testButton = $("run-test");
  testButton.addEventListener("click", async () => {
    const target = $("test-result");
    target.innerHTML = "";
    testButton.disabled = true;
    testButton.setAttribute("aria-busy", "true");
    const status = el("p", { role: "status", class: "running" }, "Testing the connection…");
    target.append(status);
    try {
      // The server streams each step as soon as it has passed or failed (NDJSON), then the
      // whole report; the list shows the test as it runs.
      const response = await fetch("/settings/smtp/test", {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: {
          Accept: "application/x-ndjson",
          "X-CSRF-Token": form.elements.csrf_token.value,
        },
      });
      const type = response.headers.get("content-type") || "";
      if (!response.ok || !type.includes("ndjson")) {
        let body = null;
        try {
          body = await response.json();
        } catch (_e) {
          body = { error: { message: `The server answered ${response.status}.` } };
        }
        showError(target, body.error || { message: "The test could not run." });
        return;
      }
      const list = el("ol", { class: "steps", "aria-label": "Connection test steps" });
      const method = form.querySelector('[name="auth_method"]');
      const oauth = method !== null && method.value === "oauth2";
      for (const name of Object.keys(STEP_LABELS)) {
        if (!oauth && (name === "token" || name === "scope")) continue; // OAuth2 only
        const pending = el("li", { class: "step pending", "data-step": name });
        const head = el("p", { class: "step-head" });
        head.append(el("span", { class: "badge" }, "waiting"), " ", el("strong", {}, STEP_LABELS[name]));
        pending.append(head);
        list.append(pending);
      }
      target.append(list);
      const place = (step) => {
        const slot = list.querySelector(`[data-step="${CSS.escape(step.name)}"]`);
        const item = renderStep(step);
        if (slot) slot.replaceWith(item);
        else list.append(item);
      };
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffered = "";
      let report = null;
      for (;;) {
        const { value, done } = await reader.read();
        if (value) buffered += decoder.decode(value, { stream: true });
        let newline;
        while ((newline = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, newline).trim();
          buffered = buffered.slice(newline + 1);
          if (!line) continue;
          const message = JSON.parse(line);
          if (message.step) place(message.step);
          else if (message.report) report = message.report;
          else if (message.error) {
            showError(target, message.error);
            return;
          }
        }
        if (done) break;
      }
      if (!report) {
        showError(target, { message: "The test ended without a result." });
        return;
      }
      for (const step of report.steps) place(step);
      status.textContent = report.ok
        ? "Every step passed: the server accepts these settings."
        : "The test failed: see the failed step and its fix.";
      status.className = report.ok ? "result ok" : "result bad";
      for (const warning of report.warnings || []) target.append(withCode("p", { class: "warning" }, warning));
      if (report.domain) target.append(renderDomain(report.domain));
    } catch (_e) {
      showError(target, { message: "The page could not reach visitmail." });
    } finally {
      testButton.disabled = false;
      testButton.removeAttribute("aria-busy");
    }
  });

  const detectButton = $("run-autodetect");
  detectButton.addEventListener("click", async () => {
    const target = $("autodetect-result");
    target.innerHTML = "";
    detectButton.disabled = true;
    target.append(el("p", { role: "status" }, "Trying the usual ports…"));
    try {
      const { ok, body } = await post("/settings/smtp/autodetect");
      target.innerHTML = "";
      if (!ok || !body.candidates) {
        showError(target, body.error || { message: "Auto-detect could not run." });
        return;
      }
      if (body.ports && body.ports.length) {
        const ports = el("table", { class: "port-answers", id: "port-answers" });
        const phead = el("tr");
        ["Port", "What it answered"].forEach((h) => phead.append(el("th", { scope: "col" }, h)));
        const pthead = el("thead");
        pthead.append(phead);
        ports.append(pthead);
        const pbody = el("tbody");
        for (const p of body.ports) {
          const row = el("tr", { "data-answer": p.answer });
          row.append(el("td", {}, p.port), el("td", {}, p.text));
          pbody.append(row);
        }
        ports.append(pbody);
        target.append(el("h3", {}, "What each port answered"), ports);
      }
      const table = el("table", { class: "candidates" });
      const head = el("tr");
      ["Port", "Security", "Works", "What happened"].forEach((h) => head.append(el("th", { scope: "col" }, h)));
      const thead = el("thead");
      thead.append(head);
      table.append(thead);
      const tbody = el("tbody");
      for (const c of body.candidates) {
        const row = el("tr");
        row.append(el("td", {}, c.port), el("td", {}, c.security), el("td", {}, c.ok ? "yes" : "no"), withCode("td", {}, c.summary));
        tbody.append(row);
      }
      table.append(tbody);
      target.append(table);
      const rec = body.recommended;
      if (rec) {
        const p = el("p", { role: "status" }, `Recommended: port ${rec.port} with ${rec.security}. `);
        const apply = el("button", { type: "button", class: "secondary" }, "Use this");
        apply.addEventListener("click", () => {
          setValue("f-port", rec.port);
          const radio = $(`f-security-${rec.security}`);
          if (radio) radio.checked = true;
          followSecurity(false);
          p.textContent = `Applied port ${rec.port} with ${rec.security}: save to keep it.`;
          $("f-port").focus();
        });
        p.append(apply);
        target.append(p);
      } else {
        target.append(el("p", { role: "status" }, "No combination worked: check the host name and the network."));
      }
    } catch (_e) {
      showError(target, { message: "The page could not reach visitmail." });
    } finally {
      detectButton.disabled = false;
    }
  });

  // The redirect URI to register: one click copies it (the field is selectable anyway).
  document.querySelectorAll("[data-copy]").forEach((button) =>
    button.addEventListener("click", async () => {
      const input = $(button.dataset.copy);
      input.select();
      try {
        await navigator.clipboard.writeText(input.value);
        button.textContent = "Copied";
      } catch (_e) {
        button.textContent = "Press Ctrl+C";
      }
    }),
  );
})();
