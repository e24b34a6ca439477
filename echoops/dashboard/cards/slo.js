// SLO & Error Budget card (Phase 76): state in colour and words, p95/p99/error rate against
// target, remaining budget bar, burn per window, the deploy-gate banner with its reason, charts
// of p95 against its target and of the 1 h burn rate against the 1x and 2x lines over the last
// 24 h of ticks (`history`), and the operator's gate override (since, by, reason, until).
(function () {
  "use strict";
  if (!window.echoops) return;
  var E = window.echoops;
  var SHOWN = ["10m", "1h", "2h", "6h", "24h", "7d"];

  function metric(label, value, id, tone) {
    return E.metric(label, value, id, tone ? "slo-" + tone : null);
  }

  function charts(s, t) {
    var hist = s.history || [];
    var last = hist[hist.length - 1];
    var end = E.fmt.when(last.ts);
    var max = new Date(last.ts).getTime();
    var x = {min: new Date(max - 24 * 3600 * 1000), max: new Date(max)};
    var ms = function (v) { return E.fmt.ms(v); };
    var times = function (v) { return (typeof v === "number" ? v.toFixed(2) : "\u2014") + "\u00d7"; };
    var axisTimes = function (v) { return E.fmt.num(v, 1) + "\u00d7"; };
    return E.el("div", {class: "charts slo-charts"},
      E.timeChart({
        id: "slo-p95", caption: "p95 latency vs target, last 24 h",
        latest: "p95 " + E.fmt.ms(last.p95_ms) + " at " + end + " (target " + E.fmt.ms(t.p95_ms) + ")",
        x: x, y: {min: 0, suggestedMax: t.p95_ms * 1.1, format: ms},
        series: [{label: "p95", color: "--chart-1", format: ms, points: hist.map(function (h) { return [h.ts, h.p95_ms]; })}],
        refs: [{label: "target " + E.fmt.ms(t.p95_ms), value: t.p95_ms, tone: "bad", format: ms}],
      }),
      E.timeChart({
        id: "slo-burn", caption: "Error budget burn rate (1 h window), last 24 h",
        latest: "burn " + times(last.burn_1h) + " at " + end + " (1\u00d7 spends the budget exactly)",
        x: x, y: {min: 0, suggestedMax: 2.5, format: axisTimes},
        series: [{label: "burn 1 h", color: "--chart-2", format: times, points: hist.map(function (h) { return [h.ts, h.burn_1h]; })}],
        refs: [{label: "1\u00d7 on budget", value: 1, tone: "warn", format: times},
          {label: "2\u00d7 gate (sustained 2 h)", value: 2, tone: "bad", format: times}],
      }));
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
          gate.since ? E.el("span", {class: "muted"}, " since " + E.fmt.when(gate.since)) : null,
          E.el("p", {class: "slo-gate-reason"}, gate.reason || "no reason recorded"),
          E.el("p", {class: "muted"}, "Clear it with: echoops slo gate --clear --reason \u2026"))
      : null;
    var ov = gate.override;
    var override = ov
      ? E.el("div", {class: "slo-override", role: "status", dataset: {by: ov.by}},
          E.el("strong", null, "Gate override"),
          E.el("span", {class: "muted"}, " by " + (ov.by === "file" ? "removing the flag" : "command") +
            " since " + E.fmt.when(ov.since)),
          E.el("p", {class: "slo-override-reason"}, ov.reason),
          E.el("p", {class: "muted slo-override-until"}, "Holds until " + E.fmt.when(ov.until) +
            ", or once the burn has stayed above 2\u00d7 for 2 h after " +
            (ov.burn_dropped_at ? "it dropped at " + E.fmt.when(ov.burn_dropped_at) : "it drops to 2\u00d7 or below") +
            (gate.condition ? ". The gate condition holds right now." : ".")))
      : null;
    var stale = s.stale
      ? E.el("div", {class: "slo-stale", role: "alert"},
          E.el("strong", null, "Stale: the SLO source cannot answer"),
          E.el("span", {class: "muted"}, " since " + E.fmt.when(s.stale.since) + " (" + s.stale.failed_ticks + " ticks)"),
          E.el("p", {class: "slo-stale-error"}, s.stale.error),
          E.el("p", {class: "muted"}, s.stale.last_good_at
            ? "Showing the last good status, from " + E.fmt.when(s.stale.last_good_at) + "; the deploy gate is left as it was."
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
        metric("p95 last " + s.period + " (target " + E.fmt.ms(t.p95_ms) + ")", E.fmt.ms(s.p95_ms), "p95", p95Tone),
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
        ? charts(s, t)
        : E.el("p", {class: "muted"}, "No ticks recorded yet: `echoops slo tick` runs every 15 minutes."),
      E.el("p", {class: "muted slo-updated"}, s.updated_at ? "updated " + E.fmt.ago(s.updated_at) : "never updated"));
  }

  E.registerCard({id: "slo", title: "SLO & Error Budget", order: 10, wide: true, render: render});
})();
