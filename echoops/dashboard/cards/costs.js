// Cost Guardrails card (Phase 79): a chart of today's spend through the UTC day against the
// global cap with the forecast to midnight, today's AI spend per scope (global and each capped
// model) as utilisation bars with state colours, where each cap comes from (environment or API,
// since when), the end-of-day forecast, per-call enforcement (reservations in flight, USD held,
// calls recorded one by one per minute), Stripe fees (which never throttle AI), unpriced models,
// monitoring-only mode (COST_ENFORCE=false), and a form to set a cap (POST /api/costs/set-cap).
(function () {
  "use strict";
  if (!window.echoops) return;
  var E = window.echoops;

  var metric = E.metric;

  function capSource(entry) {
    if (!entry.cap_source) return null;
    var what = entry.cap_source === "api" ? "cap set through the API" : "cap from the environment";
    return E.el("p", {class: "muted costs-cap-source", dataset: {source: entry.cap_source}},
      what + (entry.cap_since ? " since " + E.fmt.when(entry.cap_since) : ""));
  }

  function scopeRow(name, entry, monitor) {
    var capped = typeof entry.cap_usd === "number";
    // Monitoring only: over the cap is shown as such, never as a throttle that is not happening.
    var state = monitor && entry.state === "throttle" ? "over" : entry.state;
    var amount = E.fmt.usd(entry.spent_usd) + (capped ? " of " + E.fmt.usd(entry.cap_usd) : " (no cap)");
    var held = entry.reserved_usd > 0
      ? E.el("span", {class: "costs-held muted", dataset: {held: String(entry.reserved_usd)}},
          "+ " + E.fmt.usd(entry.reserved_usd) + " reserved")
      : null;
    var action = entry.action && entry.action !== "allow"
      ? E.el("span", {class: "costs-action", dataset: {action: entry.action}}, entry.action)
      : null;
    return E.el("li", {class: "costs-scope", dataset: {scope: name, state: entry.state}},
      E.el("div", {class: "costs-scope-head"},
        E.el("span", {class: "costs-scope-name"}, name),
        E.stateBadge(state), action,
        E.el("span", {class: "costs-amount num"}, amount), held),
      capped ? E.meter(entry.pct, {label: name, state: entry.state})
        : E.el("p", {class: "muted costs-uncapped"}, "counts toward the global cap only"),
      capSource(entry),
      entry.members ? E.el("p", {class: "muted costs-members"}, "covers " + entry.members.join(", ")) : null);
  }

  function feesLine(fees) {
    var parts = [E.fmt.usd(fees.spent_usd) + " today"];
    if (typeof fees.cap_usd === "number") parts.push("cap " + E.fmt.usd(fees.cap_usd) + " (" + E.fmt.pct(fees.pct) + ")");
    parts.push("source: " + (fees.source || "none") + (fees.fetched_at ? ", read " + E.fmt.ago(fees.fetched_at) : ""));
    var badge = fees.state
      ? E.el("span", {class: ["badge", fees.state === "over" ? "badge-bad" : fees.state === "warn" ? "badge-warn" : "badge-good"],
          dataset: {state: fees.state}}, fees.state.toUpperCase())
      : null;
    // A failed read is never shown as $0: the last good figure stays, with the failure beside it.
    var failed = fees.error
      ? E.el("span", {class: "costs-fees-error", role: "alert"},
          E.el("span", {class: ["badge", "badge-bad"], dataset: {state: "error"}}, "READ FAILED"), " ",
          fees.error, " (" + E.fmt.ago(fees.error_at) + ")")
      : null;
    return E.el("p", {class: "costs-fees", dataset: {error: fees.error ? "true" : "false"}},
      E.el("strong", null, "Stripe fees: "), parts.join(" \u00b7 "), " ", badge, failed,
      E.el("span", {class: "muted costs-fees-note"}, " Fees warn and page only; they never throttle AI calls."));
  }

  // Per-call enforcement: what spend() and POST /api/costs/reserve hold right now, and how fast
  // calls are recorded one by one (they count at once, not at the next tick).
  function callsLine(calls) {
    var expired = calls.expired
      ? E.el("span", {class: "costs-calls-expired", dataset: {expired: String(calls.expired)}},
          " \u00b7 " + calls.expired + " expired (settled at their estimate by the next tick)")
      : null;
    return E.el("p", {class: "costs-calls", dataset: {inFlight: String(calls.in_flight)}},
      E.el("strong", null, "Per call: "),
      calls.in_flight + " in flight (" + E.fmt.usd(calls.reserved_usd) + " reserved) \u00b7 " +
        calls.per_min + " calls/min recorded (last 5 min)", expired,
      E.el("span", {class: "muted costs-calls-note"},
        " Unsettled reservations settle at their estimate after " + calls.ttl_s + " s."));
  }

  /** Spend through the UTC day (from $0 at midnight) with the cap and the forecast to midnight. */
  function spendChart(s) {
    var g = s.global;
    var midnight = Date.parse(s.day + "T00:00:00Z"), end = midnight + 86400 * 1000;
    var points = [[new Date(midnight), 0]].concat((s.spend_today || []).map(function (p) { return [p.ts, p.spent_usd]; }));
    if (points.length === 1) return null; // no tick today yet: nothing but the midnight zero to draw
    var last = points[points.length - 1];
    var usd = function (v) { return E.fmt.usd(v); };
    var capped = typeof g.cap_usd === "number";
    return E.timeChart({
      id: "costs-spend", caption: "AI spend today (UTC day) vs the global cap",
      latest: "spent " + E.fmt.usd(last[1]) + " by " + E.fmt.when(last[0]) + "; forecast " + E.fmt.usd(g.forecast_usd) +
        " by midnight UTC" + (capped ? "; cap " + E.fmt.usd(g.cap_usd) : "; no global cap"),
      x: {min: new Date(midnight), max: new Date(end)}, y: {min: 0, format: usd},
      series: [
        {label: "spent", color: "--chart-1", points: points, fill: false},
        {label: "forecast to midnight", color: "--chart-3", dashed: true, points: [last, [new Date(end), g.forecast_usd]]},
      ],
      refs: capped ? [{label: "cap " + E.fmt.usd(g.cap_usd), value: g.cap_usd, tone: "bad"}] : [],
    });
  }

  // The outcome of the last set-cap survives the re-render that shows its effect.
  var flash = null;

  function capForm(models, ctx) {
    var scope = E.el("select", {name: "scope", id: "costs-scope", "aria-label": "cap scope"},
      E.el("option", {value: "daily"}, "global (daily)"),
      E.el("option", {value: "model"}, "one model"));
    var key = E.el("input", {type: "text", name: "key", id: "costs-key", placeholder: "model, e.g. gpt-4o-mini",
      list: "costs-models", autocomplete: "off", "aria-label": "model", disabled: true});
    var list = E.el("datalist", {id: "costs-models"}, models.map(function (m) { return E.el("option", {value: m}); }));
    var usd = E.el("input", {type: "number", name: "usd_cap", id: "costs-usd", min: "0", step: "0.01",
      placeholder: "USD per day", required: true, "aria-label": "cap in USD per day"});
    var msg = E.el("p", {class: ["costs-form-msg", flash ? "tone-" + flash.tone : null], role: "status", hidden: !flash},
      flash ? flash.text : "");
    flash = null;
    var submit = E.el("button", {class: "btn btn-primary", type: "submit"}, "Set cap");
    scope.addEventListener("change", function () { key.disabled = scope.value !== "model"; });
    var form = E.el("form", {class: "costs-form", novalidate: true, onsubmit: async function (ev) {
      ev.preventDefault();
      var body = {scope: scope.value, usd_cap: usd.value === "" ? null : Number(usd.value)};
      if (scope.value === "model") body.key = key.value.trim();
      submit.disabled = true;
      msg.hidden = false;
      msg.className = "costs-form-msg";
      try {
        var out = await ctx.api("/api/costs/set-cap", {method: "POST", body: body});
        var cap = out.cap;
        flash = {tone: "good", text: (cap.key || "global") + " cap set to " + E.fmt.usd(cap.usd_cap) +
          " (was " + (cap.old_usd_cap === null ? "unset" : E.fmt.usd(cap.old_usd_cap)) + ")"};
        await ctx.refresh();
      } catch (err) {
        var field = err.body && err.body.field;
        msg.textContent = "Not saved: " + err.message;
        msg.classList.add("tone-bad");
        [key, usd].forEach(function (input) { input.setAttribute("aria-invalid", input.name === field ? "true" : "false"); });
      } finally {
        submit.disabled = false;
      }
    }},
    E.el("fieldset", {class: "costs-fieldset"},
      E.el("legend", null, "Set a daily cap (overrides the environment)"),
      E.el("div", {class: "costs-form-row"}, scope, key, list, usd, submit)),
    msg);
    return form;
  }

  async function render(body, ctx) {
    var s = await ctx.api("/api/costs/status");
    var g = s.global;
    // The card's badge is the worst scope: a model at WARN must show even when global is ok.
    var rank = {ok: 0, warn: 1, throttle: 2};
    var worst = Object.keys(s.models || {}).reduce(function (w, name) {
      var st = s.models[name].state;
      return (rank[st] || 0) > (rank[w] || 0) ? st : w;
    }, g.state);
    ctx.setState(s.mode === "monitor" && worst === "throttle" ? "over" : worst);
    var monitor = s.mode === "monitor";
    var names = Object.keys(s.models);
    var scopes = E.el("ul", {class: "costs-scopes"}, scopeRow("global", g, monitor),
      names.map(function (n) { return scopeRow(n, s.models[n], monitor); }));
    // As core's forecast_over: a $0 cap is closed on purpose, there is no forecast to cross.
    var forecastOver = typeof g.cap_usd === "number" && g.cap_usd > 0 && g.forecast_usd >= g.cap_usd;
    body.replaceChildren(
      monitor ? E.el("p", {class: "costs-monitor", role: "status"}, E.el("strong", null, "Monitoring only"),
        " (COST_ENFORCE=false): spend, caps and alerts are measured as usual; AI calls are never throttled or switched.")
        : null,
      E.el("div", {class: "metrics"},
        metric("spent today (UTC " + s.day + ")", E.fmt.usd(g.spent_usd), "spent"),
        metric("global cap", E.fmt.usd(g.cap_usd), "cap"),
        metric("end-of-day forecast", E.fmt.usd(g.forecast_usd), "forecast"),
        metric("AI calls in flight", String(s.calls.in_flight), "in-flight"),
        metric("recorded per call / min", String(s.calls.per_min), "per-min"),
        metric("Stripe fees today", E.fmt.usd(s.stripe_fees.spent_usd), "fees")),
      spendChart(s),
      forecastOver ? E.el("p", {class: "costs-forecast-warn"}, E.stateBadge("warn"),
        " At today's rate spend reaches " + E.fmt.usd(g.forecast_usd) + ", over the " + E.fmt.usd(g.cap_usd) + " cap.") : null,
      scopes,
      callsLine(s.calls),
      s.unpriced.length ? E.el("p", {class: "costs-unpriced"}, E.stateBadge("warn"),
        " No price for " + s.unpriced.join(", ") + ": counted at a conservative default. Add it to MODEL_PRICES_JSON.") : null,
      feesLine(s.stripe_fees),
      capForm(names, ctx),
      E.el("p", {class: "muted costs-updated"}, "Log lines last ingested " + (s.updated_at ? E.fmt.ago(s.updated_at) : "never") +
        " (echoops costs tick, hourly); calls recorded one by one count at once."));
  }

  // order 15: in the page's order it sits beside the SLO card, where the grid shows it
  E.registerCard({id: "costs", title: "AI cost guardrails", order: 15, render: render});
})();
