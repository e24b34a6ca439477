// Autoscale card (Phase 80): desired vs actual workers, dry-run badge, the decision's reason,
// the forecast method in use and why, the queue source's health, cooldown, deploy gate, and
// sparklines of desired/actual workers and backlog per decision.
(function () {
  "use strict";
  if (!window.echoops) return;
  var E = window.echoops;

  var metric = E.metric;

  function row(label, value) {
    return E.el("tr", null, E.el("th", {scope: "row"}, label), E.el("td", null, value));
  }

  function spark(title, values, opts) {
    return E.el("figure", {class: "scale-spark"},
      E.sparkline(values, Object.assign({width: 220, height: 40, label: title}, opts || {})),
      E.el("figcaption", {class: "muted"}, title));
  }

  async function render(body, ctx) {
    var s = await ctx.api("/api/scale/status");
    var f = s.forecast || {};
    var mode = E.el("span", {class: ["badge", s.dry_run ? "badge-info" : "badge-good", "scale-mode"]},
      s.dry_run ? "DRY RUN" : "LIVE");
    ctx.setState(s.gate && s.gate.set ? "yellow" : s.desired === s.actual ? "ok" : "pending");

    var cooldown = s.cooldown_remaining_s > 0 ? Math.ceil(s.cooldown_remaining_s / 60) + " min left" : "none";
    var gate = s.gate && s.gate.set
      ? E.el("span", null, E.stateBadge("warn"), " set: no scale-up", s.gate.reason ? " (" + s.gate.reason + ")" : "")
      : "clear";
    var p95 = typeof s.p95_ms === "number" ? E.fmt.ms(s.p95_ms) + " (target " + E.fmt.ms(s.p95_target_ms) + ")" : "no data";
    var src = s.source || {kind: "file", missed_in_row: 0};
    var source = src.kind === "file" ? "file (the app writes queue.ndjson)"
      : src.missed_in_row
        ? E.el("span", null, E.stateBadge("warn"), " " + src.kind + ": " + src.missed_in_row + " missed in a row, holding (" + (src.last_error || "") + ")")
        : src.kind + ": sampled " + (src.last_ok_at ? E.fmt.ago(src.last_ok_at) : "never");
    var hist = s.history || [];
    var button = E.el("button", {class: "btn", type: "button", onclick: async function () {
      button.disabled = true;
      try { await ctx.api("/api/scale/apply", {method: "POST", body: {dry_run: true}}); }
      finally { await ctx.refresh(); }
    }}, "Decide now (dry run)");

    var max = Math.max.apply(null, [s.desired, s.actual].concat(hist.map(function (h) { return Math.max(h.desired, h.actual); })));
    body.replaceChildren(
      E.el("div", {class: "scale-head"}, mode,
        E.el("span", {class: "scale-action", dataset: {action: s.action}}, (s.action || "hold").replace("_", " "))),
      E.el("div", {class: "metrics"},
        metric("desired workers", String(s.desired), "desired"),
        metric("actual workers", String(s.actual), "actual"),
        metric("backlog (jobs)", E.fmt.num(f.backlog, 0), "backlog"),
        metric("arrivals/min now \u2192 in " + f.horizon_min + "m",
          E.fmt.num(f.rate_now_per_min, 1) + " \u2192 " + E.fmt.num(f.rate_in_horizon_per_min, 1), "rate")),
      E.el("p", {class: "scale-reason"}, s.reason),
      E.el("table", {class: "kv"}, E.el("tbody", null,
        row("cooldown", cooldown),
        row("deploy gate", gate),
        row("last change", s.last_change_at ? E.fmt.ago(s.last_change_at) : "never"),
        row("forecast", E.el("span", {class: "scale-method"}, f.method_reason || "")),
        row("queue source", source),
        row("throughput", E.fmt.num(f.jobs_per_worker_min, 1) + " jobs/min per worker (" + f.throughput_source + ")"),
        row("p95 latency", p95),
        row("bounds", s.bounds.min + "\u2013" + s.bounds.max + " workers"))),
      hist.length >= 2
        ? E.el("div", {class: "scale-sparks"},
            spark("desired workers", hist.map(function (h) { return h.desired; }), {min: 0, max: max}),
            spark("actual workers", hist.map(function (h) { return h.actual; }), {min: 0, max: max}),
            spark("backlog", hist.map(function (h) { return h.backlog; }), {min: 0}))
        : E.el("p", {class: "muted"}, (hist.length ? "One decision so far" : "No decisions recorded yet") +
            ": the sparklines fill in as `echoops scale tick` runs every 10 minutes."),
      E.el("div", {class: "scale-actions"}, button));
  }

  E.registerCard({id: "scale", title: "Autoscale", order: 50, render: render});
})();
