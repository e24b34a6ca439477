// Autoscale card (Phase 80): desired vs actual workers, dry-run badge, the decision's reason,
// the forecast method in use and why, the queue source's health, cooldown, deploy gate, and a
// chart of desired/actual workers and the backlog per decision, with the backlog the forecast
// expects over the next 30 minutes (with the workers running, and with the desired ones).
(function () {
  "use strict";
  if (!window.echoops) return;
  var E = window.echoops;

  var metric = E.metric;

  function row(label, value) {
    return E.el("tr", null, E.el("th", {scope: "row"}, label), E.el("td", null, value));
  }

  /** Decisions so far and now (workers, left axis; backlog, right axis), then the projection. */
  function workersChart(s, now) {
    var hist = (s.history || []).slice();
    var proj = s.projection || [];
    var f = s.forecast || {};
    var points = hist.map(function (h) { return {ts: h.ts, desired: h.desired, actual: h.actual, backlog: h.backlog}; });
    points.push({ts: proj.length ? proj[0].ts : now, desired: s.desired, actual: s.actual, backlog: f.backlog});
    var start = points[0].ts, end = proj.length ? proj[proj.length - 1].ts : now;
    var jobs = function (v) { return E.fmt.num(v, 0) + " jobs"; };
    var workers = function (v) { return E.fmt.num(v, 1) + " workers"; };
    var pick = function (key) { return points.map(function (p) { return [p.ts, p[key]]; }); };
    var ahead = function (key) { return proj.map(function (p) { return [p.ts, p[key]]; }); };
    var tail = proj.length ? proj[proj.length - 1] : null;
    var latest = "now: desired " + s.desired + ", actual " + s.actual + " workers, backlog " + E.fmt.num(f.backlog, 0) + " jobs" +
      (tail ? "; in " + tail.in_min + " min: " + E.fmt.num(tail.backlog_at_actual, 0) + " with " + s.actual +
        " workers, " + E.fmt.num(tail.backlog_at_desired, 0) + " with " + s.desired : "");
    return E.timeChart({
      id: "scale-workers", caption: "Workers and backlog, with the " + (f.horizon_min || 30) + "-minute forecast",
      latest: latest, x: {min: start, max: end},
      y: {min: 0, suggestedMax: s.bounds.max, title: "workers", format: function (v) { return E.fmt.num(v, 0); }},
      y2: {min: 0, title: "backlog (jobs)", format: function (v) { return E.fmt.num(v, 0); }},
      series: [
        {label: "desired", color: "--chart-1", step: true, points: pick("desired"), format: workers},
        {label: "actual", color: "--chart-2", step: true, points: pick("actual"), format: workers},
        {label: "backlog", color: "--chart-3", axis: "y2", points: pick("backlog"), format: jobs},
        {label: "backlog ahead, " + s.actual + " workers", color: "--bad-fill", axis: "y2", dashed: true,
          points: ahead("backlog_at_actual"), format: jobs},
        {label: "backlog ahead, " + s.desired + " workers", color: "--good-fill", axis: "y2", dashed: true,
          points: ahead("backlog_at_desired"), format: jobs},
      ],
    });
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
    var p95 = (typeof s.p95_ms === "number" ? E.fmt.ms(s.p95_ms) : "no requests") + " (target " + E.fmt.ms(s.p95_target_ms) + ")";
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
      workersChart(s, ctx.now),
      E.el("table", {class: "kv"}, E.el("tbody", null,
        row("cooldown", cooldown),
        row("deploy gate", gate),
        row("last change", s.last_change_at ? E.fmt.ago(s.last_change_at) : "never"),
        row("forecast", E.el("span", {class: "scale-method"}, f.method_reason || "")),
        row("queue source", source),
        row("throughput", E.fmt.num(f.jobs_per_worker_min, 1) + " jobs/min per worker (" + f.throughput_source + ")"),
        row("p95 last " + (s.p95_window_min || 15) + " min", p95),
        row("bounds", s.bounds.min + "\u2013" + s.bounds.max + " workers"))),
      hist.length < 2
        ? E.el("p", {class: "muted scale-few"}, (hist.length ? "One decision so far" : "No decisions recorded yet") +
            ": the past fills in as `echoops scale tick` runs every 10 minutes.")
        : null,
      E.el("div", {class: "scale-actions"}, button));
  }

  E.registerCard({id: "scale", title: "Autoscale", order: 50, render: render});
})();
