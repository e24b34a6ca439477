// SLO & Error Budget card (Phase 76): state in colour and words, p95/p99/error rate against
// target, remaining budget bar, burn per window, the deploy-gate banner with its reason, and
// sparklines of p95 and 1h burn over the last 24h of ticks (`history`), and the operator's
// gate override (since, by, reason, until) while one holds.
(function () {
  "use strict";
  if (!window.echoops) return;
  var E = window.echoops;
  var SHOWN = ["10m", "1h", "2h", "6h", "24h", "7d"];

  function metric(label, value, id, tone) {
    return E.metric(label, value, id, tone ? "slo-" + tone : null);
  }

  function spark(title, values, opts) {
    return E.el("figure", {class: "slo-spark"},
      E.sparkline(values, Object.assign({width: 220, height: 40, label: title}, opts || {})),
      E.el("figcaption", {class: "muted"}, title));
  }

  function burnGrid(s) {
    var w = s.windows || {};
    return E.el("dl", {class: "slo-burn", "aria-label": "error budget burn rate per window"},
      SHOWN.map(function (name) {
        var win = w[name] || {};
        var burn = s.burn ? s.burn[name] : null;
        var hot = typeof burn === "number" && burn > 1 && win.enough_traffic;
        return E.el("div", {class: ["slo-burn-item", hot ? "slo-hot" : null, win.enough_traffic ? null : "slo-thin"],
          dataset: {window: name},
          title: (win.requests || 0) + " requests, " + (win.errors || 0) + " errors" +
            (win.enough_traffic ? "" : " (too few to alarm)")},
          E.el("dt", null, name),
          E.el("dd", {class: "slo-burn-cell"}, typeof burn === "number" ? burn.toFixed(2) + "\u00d7" : "\u2013"));
      }));
  }

  async function render(body, ctx) {
    var s = await ctx.api("/api/slo/status");
    var t = s.target || {};
    ctx.setState(s.state);
    var gate = s.gate || {};
    var banner = gate.set
      ? E.el("div", {class: "slo-gate", role: "alert"},
          E.el("strong", null, "Deploy gate set"),
          gate.since ? E.el("span", {class: "muted"}, " since " + E.fmt.time(gate.since)) : null,
          E.el("p", {class: "slo-gate-reason"}, gate.reason || "no reason recorded"),
          E.el("p", {class: "muted"}, "Clear it with: echoops slo gate --clear --reason \u2026"))
      : null;
    var ov = gate.override;
    var override = ov
      ? E.el("div", {class: "slo-override", role: "status", dataset: {by: ov.by}},
          E.el("strong", null, "Gate override"),
          E.el("span", {class: "muted"}, " by " + (ov.by === "file" ? "removing the flag" : "command") +
            " since " + E.fmt.time(ov.since)),
          E.el("p", {class: "slo-override-reason"}, ov.reason),
          E.el("p", {class: "muted slo-override-until"}, "Holds until " + E.fmt.time(ov.until) +
            ", or once the burn has stayed above 2\u00d7 for 2 h after " +
            (ov.burn_dropped_at ? "it dropped at " + E.fmt.time(ov.burn_dropped_at) : "it drops to 2\u00d7 or below") +
            (gate.condition ? ". The gate condition holds right now." : ".")))
      : null;
    var stale = s.stale
      ? E.el("div", {class: "slo-stale", role: "alert"},
          E.el("strong", null, "Stale: the SLO source cannot answer"),
          E.el("span", {class: "muted"}, " since " + E.fmt.time(s.stale.since) + " (" + s.stale.failed_ticks + " ticks)"),
          E.el("p", {class: "slo-stale-error"}, s.stale.error),
          E.el("p", {class: "muted"}, s.stale.last_good_at
            ? "Showing the last good status, from " + E.fmt.time(s.stale.last_good_at) + "; the deploy gate is left as it was."
            : "No tick has succeeded yet."))
      : null;
    var p95Tone = typeof s.p95_ms === "number" && s.p95_ms > t.p95_ms ? "bad"
      : typeof s.p95_ms === "number" && s.p95_ms > 0.8 * t.p95_ms ? "warn" : null;
    var errTone = s.error_rate * 100 > t.error_budget_pct ? "bad" : null;
    var remaining = s.remaining_budget_pct;
    var budgetState = remaining < 0 ? "red" : remaining < 25 ? "yellow" : "green";
    var hist = s.history || [];
    body.replaceChildren(
      E.el("div", {class: "slo-head"}, E.stateBadge(s.state),
        E.el("span", {class: "slo-alert", dataset: {alert: s.burn_alert}}, "burn alert: " + s.burn_alert)),
      stale,
      banner,
      override,
      E.el("div", {class: "metrics"},
        metric("p95 (" + s.period + ", target " + E.fmt.ms(t.p95_ms) + ")", E.fmt.ms(s.p95_ms), "p95", p95Tone),
        metric("p99 (" + s.period + ")", E.fmt.ms(s.p99_ms), "p99"),
        metric("error rate (budget " + E.fmt.pct(t.error_budget_pct) + ")", E.fmt.ratio(s.error_rate), "error_rate", errTone),
        metric("requests (" + s.period + ")", E.fmt.num(s.requests, 0), "requests")),
      E.el("div", {class: "slo-budget"},
        E.el("div", {class: "slo-budget-label"},
          "Error budget left (" + (s.budget ? s.budget.window : "") + "): ",
          E.el("strong", {class: "slo-remaining"}, E.fmt.pct(remaining))),
        E.meter(remaining, {label: "remaining error budget", state: budgetState})),
      E.el("div", {class: "slo-burn-label muted"}, "burn rate (1\u00d7 = on budget)"),
      burnGrid(s),
      (s.reasons && s.reasons.length)
        ? E.el("ul", {class: "slo-reasons"}, s.reasons.map(function (r) { return E.el("li", null, r); }))
        : null,
      E.el("div", {class: "slo-notes"}, (s.notes || []).map(function (n) { return E.el("p", {class: "muted slo-note"}, n); })),
      hist.length
        ? E.el("div", {class: "slo-sparks"},
            spark("p95 ms, last 24h", hist.map(function (h) { return h.p95_ms; }), {target: t.p95_ms, min: 0}),
            spark("burn 1h, last 24h", hist.map(function (h) { return h.burn_1h; }), {target: 1, min: 0}))
        : E.el("p", {class: "muted"}, "No ticks recorded yet: `echoops slo tick` runs every 15 minutes."),
      E.el("p", {class: "muted slo-updated"}, s.updated_at ? "updated " + E.fmt.ago(s.updated_at) : "never updated"));
  }

  E.registerCard({id: "slo", title: "SLO & Error Budget", order: 10, wide: true, render: render});
})();
