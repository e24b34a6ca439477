// Customer Portal card (Phase 78): look up a customer by email, list purchases with a copy-link
// button per receipt and invoice (signed links from GET /api/portal/receipts, valid until a day
// and time shown in the viewer's zone and UTC), the unsubscribed badge with a Resubscribe button
// (POST /api/portal/resubscribe), and recent access attempts (GET /api/portal/audit). Every lookup is audited, so the card
// looks a customer up when asked (and again after LOOKUP_TTL_MS, before its links age), not on
// every 30 s refresh.
(function () {
  "use strict";
  if (!window.echoops) return;
  var E = window.echoops;

  // Survives the 30 s refresh: the email being looked at, its last lookup and the last copy message.
  var state = {email: "", message: null, data: null, error: null, at: 0};
  var LOOKUP_TTL_MS = 3600 * 1000;

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-http deployments: select a hidden field and use the legacy copy command.
    return new Promise(function (resolve, reject) {
      var field = E.el("textarea", {class: "portal-copy-buffer", readonly: true, "aria-hidden": "true"});
      field.value = text;
      document.body.appendChild(field);
      field.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      field.remove();
      if (ok) { resolve(); } else { reject(new Error("copy refused by the browser")); }
    });
  }

  function copyButton(label, url, expires, what, status) {
    var btn = E.el("button", {type: "button", class: "btn portal-copy", dataset: {kind: what, expires: expires},
      "aria-label": label, title: label}, what === "invoice" ? "Copy invoice" : "Copy receipt");
    btn.addEventListener("click", function () {
      copyText(url).then(function () {
        btn.dataset.copied = url;
        status.textContent = label + " copied (valid until " + E.fmt.when(btn.dataset.expires) + ")";
        status.className = "portal-status tone-good";
      }, function (err) {
        status.textContent = "Could not copy: " + err.message + ". Link: " + url;
        status.className = "portal-status tone-bad";
      });
    });
    return btn;
  }

  // stateBadge's markup, with this card's own tone and icon for the two states.
  function subscriptionBadge(unsubscribed) {
    var word = unsubscribed ? "unsubscribed" : "subscribed";
    return E.el("span", {class: ["badge", unsubscribed ? "badge-warn" : "badge-good", "portal-sub"], dataset: {state: word}},
      E.el("span", {class: "badge-icon", "aria-hidden": "true"}, unsubscribed ? "\u2715" : "\u2713"),
      E.el("span", {class: "badge-word"}, word.toUpperCase()));
  }

  // A refunded purchase stays listed (its receipt still matters) and says so under its amount.
  function refundNote(p) {
    if (p.status === "refunded") return E.el("span", {class: "muted portal-refund"}, "refunded");
    if (p.refunded) return E.el("span", {class: "muted portal-refund"}, "refunded " + p.refunded_display);
    return null;
  }

  function purchasesTable(body, status) {
    if (!body.purchases.length) {
      return E.el("p", {class: "muted portal-empty"}, "No purchases for " + body.email + ".");
    }
    var rows = body.purchases.map(function (p) {
      var receipt = copyButton("Receipt link for " + p.id, p.receipt_url, p.expires_at, "receipt", status);
      var invoice = p.invoice_url
        ? copyButton("Invoice link for " + p.id, p.invoice_url, p.expires_at, "invoice", status) : null;
      return E.el("tr", {dataset: {purchase: p.id}},
        E.el("td", {class: "portal-date", title: E.fmt.when(p.created)}, String(p.created).slice(0, 10)),
        E.el("td", null, E.el("span", {class: "portal-desc"}, p.description || "Purchase"),
          E.el("span", {class: "muted portal-ref"}, p.invoice_number ? p.invoice_number + " \u00b7 " + p.id : p.id)),
        E.el("td", {class: "num portal-amount"}, p.amount_display, refundNote(p)),
        E.el("td", null, E.el("div", {class: "portal-links"}, receipt, invoice)));
    });
    return E.el("div", {class: "table-scroll"},
      E.el("table", {class: "kv portal-table"},
        E.el("thead", null, E.el("tr", null,
          E.el("th", {scope: "col"}, "Date"), E.el("th", {scope: "col"}, "Purchase"),
          E.el("th", {scope: "col", class: "num"}, "Amount"), E.el("th", {scope: "col"}, "Links"))),
        E.el("tbody", null, rows)));
  }

  function accessList(entries) {
    if (!entries.length) return E.el("p", {class: "muted portal-empty"}, "No access attempts yet.");
    return E.el("ul", {class: "portal-access"}, entries.map(function (e) {
      var ok = e.status === 200 || e.status === 302;
      return E.el("li", {dataset: {status: String(e.status)}},
        E.el("span", {class: ["badge", ok ? "badge-good" : "badge-bad"]}, String(e.status)),
        E.el("span", {class: "portal-access-what"}, (e.action || "") + " " + (e.resource || "")),
        E.el("span", {class: "muted"}, (e.email || "unknown") + " \u00b7 " + (e.ip || "?") + " \u00b7 " + E.fmt.ago(e.ts)),
        e.reason ? E.el("span", {class: "portal-reason"}, e.reason) : null);
    }));
  }

  /** Unsubscribed customers can be put back on the list by an operator (audited server-side). */
  function resubscribeButton(data, ctx) {
    if (!data.unsubscribed) return null;
    var btn = E.el("button", {type: "button", class: "btn portal-resubscribe"}, "Resubscribe");
    btn.addEventListener("click", async function () {
      btn.disabled = true;
      try {
        var out = await ctx.api("/api/portal/resubscribe", {method: "POST", body: {email: data.email}});
        state.message = {tone: "good", text: out.email + (out.changed ? " is subscribed again" : " was already subscribed")};
      } catch (err) {
        state.message = {tone: "bad", text: "Not resubscribed: " + err.message};
      }
      state.at = 0; // look the customer up again: the badge shows the new state
      await ctx.refresh();
    });
    return btn;
  }

  async function render(body, ctx) {
    var input = E.el("input", {type: "email", id: "portal-email", name: "email", required: true,
      placeholder: "customer@example.com", autocomplete: "off", spellcheck: "false", "aria-label": "customer email"});
    input.value = state.email;
    var status = E.el("p", {class: ["portal-status", state.message ? "tone-" + state.message.tone : null],
      role: "status", "aria-live": "polite"}, state.message ? state.message.text : "");
    var form = E.el("form", {class: "portal-form", novalidate: true, onsubmit: function (ev) {
      ev.preventDefault();
      state.email = input.value.trim();
      state.message = null;
      state.at = 0;
      ctx.refresh();
    }}, input, E.el("button", {type: "submit", class: "btn btn-primary"}, "Look up"));

    var result = null;
    if (state.email && Date.now() - state.at > LOOKUP_TTL_MS) {
      state.data = null;
      state.error = null;
      try {
        state.data = await ctx.api("/api/portal/receipts?email=" + encodeURIComponent(state.email));
      } catch (err) {
        if (!(err instanceof E.ApiError) || (err.status !== 400 && err.status !== 503)) throw err;
        state.error = err.message;
      }
      state.at = Date.now();
    }
    if (state.email && state.data) {
      var data = state.data;
      result = E.el("div", {class: "portal-result", dataset: {email: data.email}},
        E.el("div", {class: "portal-who"}, E.el("strong", null, data.email), subscriptionBadge(data.unsubscribed),
          resubscribeButton(data, ctx),
          E.el("span", {class: "muted"}, data.purchases.length + " purchase" + (data.purchases.length === 1 ? "" : "s")),
          E.el("span", {class: "muted portal-looked"}, "looked up " + E.fmt.ago(new Date(state.at).toISOString()))),
        data.purchases.length
          ? E.el("p", {class: "muted portal-valid"}, "Links valid until " + E.fmt.when(data.purchases[0].expires_at))
          : null,
        purchasesTable(data, status));
    } else if (state.email && state.error) {
      result = E.el("p", {class: "portal-error tone-bad", role: "alert"}, state.error);
    }
    var audit = await ctx.api("/api/portal/audit?limit=8" + (state.email && result && result.dataset.email
      ? "&email=" + encodeURIComponent(result.dataset.email) : ""));
    body.replaceChildren(form, status, result,
      E.el("h3", {class: "portal-subhead"}, state.email ? "Recent access for this customer" : "Recent access attempts"),
      accessList(audit.entries));
  }

  E.registerCard({id: "portal", title: "Customer Portal", order: 30, wide: true, render: render});
})();
