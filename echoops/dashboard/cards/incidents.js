// Incidents card (Phase 77): the last 24 h of incidents grouped by fingerprint, with counts,
// pages and the delivery state of each group's latest page per channel. Groups with a failed
// delivery are highlighted (and sorted first). Deliveries that need a person (failed after their
// 6 attempts, or unconfirmed) are listed with their error and the command that re-sends them.
(function () {
  "use strict";
  if (!window.echoops) return;
  var E = window.echoops;
  var CHANNELS = ["telegram", "email"];
  var SEV_TONE = {CRITICAL: "bad", ERROR: "bad", WARNING: "warn", INFO: "info"};

  function metric(label, value, id, tone) {
    return E.metric(label, value, id, tone ? "inc-metric-" + tone : null);
  }

  function hasFailed(g) {
    return g.failed_deliveries > 0; // counts every page of the group, the latest one included
  }

  function delivery(g, channel) {
    var state = g.deliveries[channel];
    return state ? E.stateBadge(state) : E.el("span", {class: "muted", title: "not paged"}, "\u2014");
  }

  function groupRow(g) {
    var failed = hasFailed(g);
    return E.el("tr", {class: ["inc-row", failed ? "inc-failed" : null], dataset: {fingerprint: g.fingerprint}},
      E.el("td", {class: "inc-when", title: g.last_seen}, E.fmt.ago(g.last_seen)),
      E.el("td", null, E.el("span", {class: ["badge", "badge-" + (SEV_TONE[g.severity] || "muted"), "inc-sev"]}, g.severity)),
      E.el("td", null, E.el("div", {class: "inc-what"},
        E.el("span", {class: "inc-source"}, g.source),
        E.el("span", {class: "inc-msg", title: g.msg}, g.msg))),
      E.el("td", {class: "num", title: "first seen " + g.first_seen}, E.fmt.num(g.count, 0)),
      E.el("td", {class: "num"}, String(g.pages)),
      CHANNELS.map(function (c) { return E.el("td", {class: "inc-delivery", dataset: {channel: c}}, delivery(g, c)); }));
  }

  function attentionItem(a) {
    var what = a.state === "unconfirmed"
      ? "unconfirmed: the result of attempt " + a.attempts + " was never recorded (not sent again)"
      : "failed after " + a.attempts + " attempt" + (a.attempts === 1 ? "" : "s") + ": " + (a.last_error || a.last_status);
    return E.el("li", {class: "inc-attention-item", dataset: {id: a.id, channel: a.channel, state: a.state}},
      E.stateBadge(a.state), " ",
      E.el("strong", null, a.channel), " delivery of ",
      E.el("span", {class: "inc-attention-what"}, a.severity + " " + a.source + ": " + a.msg), " ",
      E.el("span", {class: "inc-attention-error"}, what), " ",
      E.el("span", {class: "muted", title: a.at}, E.fmt.ago(a.at)), " ",
      E.el("code", {class: "inc-attention-cmd"}, "echoops page retry " + a.id));
  }

  async function render(body, ctx) {
    var s = await ctx.api("/api/incidents/summarize?hours=24", {method: "POST"});
    var t = s.totals || {};
    var d = t.deliveries || {};
    // Pages that reached no channel at all (none configured) must not read as "ok".
    var unrouted = (t.pages || 0) > 0 && !d.ok && !d.failed && !d.pending && d.skipped > 0;
    var attention = s.attention || [];
    ctx.setState(d.failed || d.unconfirmed || attention.length ? "failed" : d.pending ? "pending" : unrouted ? "skipped" : "ok");
    var groups = (s.groups || []).slice().sort(function (a, b) {
      return (hasFailed(b) ? 1 : 0) - (hasFailed(a) ? 1 : 0); // stable: newest first within each
    });
    var table = groups.length
      ? E.el("div", {class: "table-scroll"}, E.el("table", {class: ["kv", "inc-table"]},
          E.el("thead", null, E.el("tr", null,
            ["last seen", "severity", "incident", "count", "pages", "telegram", "email"].map(function (h) {
              return E.el("th", {scope: "col", class: h === "count" || h === "pages" ? "num" : null}, h);
            }))),
          E.el("tbody", null, groups.map(groupRow))))
      : E.el("p", {class: "muted inc-empty"}, "No incidents in the last 24 h. Raise one with `echoops page raise` or POST /api/incidents/raise.");
    body.replaceChildren(
      E.el("div", {class: "metrics"},
        metric("incidents (24 h)", E.fmt.num(t.incidents || 0, 0), "incidents"),
        metric("groups", E.fmt.num(t.groups || 0, 0), "groups"),
        metric("pages", E.fmt.num(t.pages || 0, 0), "pages"),
        metric("failed deliveries", E.fmt.num(d.failed || 0, 0), "failed", d.failed ? "bad" : null),
        metric("pending", E.fmt.num(d.pending || 0, 0), "pending", d.pending ? "warn" : null)),
      attention.length
        ? E.el("div", {class: "inc-attention", role: "status"},
            E.el("p", {class: "inc-alert"},
              attention.length + " deliver" + (attention.length === 1 ? "y needs" : "ies need") +
              " attention (failed after 6 attempts, or unconfirmed); the other channel was notified. " +
              "Re-send with the command shown."),
            E.el("ul", {class: "inc-attention-list"}, attention.map(attentionItem)))
        : null,
      table);
  }

  E.registerCard({id: "incidents", title: "Incidents", order: 20, wide: true, render: render});
})();
