// Incidents card (Phase 77, answerable since issue 15): the last 24 h of incidents grouped by
// fingerprint, with each group's state (open, acked, silenced, resolved), counts, pages, the
// delivery state of its latest page per channel, how long ago it was paged/acked, and Ack /
// Resolve buttons. Below: the deliveries that need a person, the silences in force (with time
// left and a Remove button) and a form to add one.
(function () {
  "use strict";
  if (!window.echoops) return;
  var E = window.echoops;
  var CHANNELS = ["telegram", "email"];
  var SEV_TONE = {CRITICAL: "bad", ERROR: "bad", WARNING: "warn", INFO: "info"};
  var SEVERITIES = ["CRITICAL", "ERROR", "WARNING", "INFO"]; // worst first
  var BY = "dashboard";

  // The outcome of the last action survives the re-render that shows its effect, and what is
  // typed in the silence form survives the 30 s refresh.
  var flash = null;
  var draft = {};

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

  /** Run one action, then refresh: the card shows what it did (or why it failed). */
  async function act(ctx, button, path, options, done) {
    button.disabled = true;
    try {
      var out = await ctx.api(path, options);
      flash = {tone: "good", text: done(out)};
    } catch (err) {
      flash = {tone: "bad", text: "Not done: " + err.message};
    }
    await ctx.refresh();
  }

  function since(g) {
    var parts = [];
    // paged_at is set only when a channel took a page; a page every channel refused or skipped
    // told nobody, and says so.
    if (g.paged_at) parts.push(E.el("span", {title: E.fmt.when(g.paged_at)}, "paged " + E.fmt.ago(g.paged_at)));
    else if (g.pages_raised) parts.push(E.el("span", {class: "inc-unpaged"}, "page raised, no channel took it"));
    if (g.acked_at && g.state !== "open") {
      parts.push(E.el("span", {title: E.fmt.when(g.acked_at)}, "acked " + E.fmt.ago(g.acked_at) + " by " + g.acked_by));
    }
    if (g.resolved_at) {
      parts.push(E.el("span", {title: E.fmt.when(g.resolved_at) + (g.note ? ": " + g.note : "")},
        "resolved " + E.fmt.ago(g.resolved_at) + " by " + g.resolved_by));
    }
    if (g.state === "silenced" && g.silence) parts.push(E.el("span", null, "silenced by " + g.silence));
    if (!parts.length) return E.el("span", {class: "muted"}, "not paged");
    return E.el("div", {class: "inc-since"}, parts);
  }

  function actions(g, ctx) {
    if (g.state === "resolved") return null;
    var ack = g.state === "acked" ? null : E.el("button", {class: "btn inc-ack", type: "button", onclick: function () {
      act(ctx, ack, "/api/incidents/ack", {method: "POST", body: {id: g.latest_id, by: BY}}, function (out) {
        return out.changed ? "Acked " + out.id + " (repeats held until " + E.fmt.when(out.ack_until) + ")"
          : out.id + " was already " + out.state;
      });
    }}, "Ack");
    var resolve = E.el("button", {class: "btn inc-resolve", type: "button", onclick: function () {
      act(ctx, resolve, "/api/incidents/resolve", {method: "POST", body: {id: g.latest_id, by: BY}}, function (out) {
        var sent = Object.keys(out.notices);
        return out.changed ? "Resolved " + out.id + (sent.length ? "; RESOLVED notice to " + sent.join(", ") : "")
          : out.id + " was already resolved";
      });
    }}, "Resolve");
    return E.el("div", {class: "inc-actions"}, ack, resolve);
  }

  // Each cell carries its column's name (data-label): on a phone the rows stack and show it.
  function cell(label, attrs, content) {
    return E.el("td", Object.assign({role: "cell", dataset: {label: label}}, attrs), content);
  }

  function groupRow(g, ctx) {
    var failed = hasFailed(g);
    return E.el("tr", {class: ["inc-row", failed ? "inc-failed" : null, "inc-state-" + g.state], role: "row",
      dataset: {fingerprint: g.fingerprint, id: g.latest_id}},
      cell("last seen", {class: "inc-when", title: E.fmt.when(g.last_seen)}, E.fmt.ago(g.last_seen)),
      cell("state", {class: "inc-state"}, E.el("div", {class: "inc-badges"}, E.stateBadge(g.state),
        E.el("span", {class: ["badge", "badge-" + (SEV_TONE[g.severity] || "muted"), "inc-sev"]}, g.severity))),
      cell("incident", {class: "inc-incident"}, E.el("div", {class: "inc-what"},
        E.el("span", {class: "inc-source"}, g.source),
        E.el("span", {class: "inc-msg", title: g.msg}, g.msg),
        since(g),
        actions(g, ctx))),
      cell("count", {class: "num inc-count", title: "first seen " + E.fmt.when(g.first_seen)}, E.fmt.num(g.count, 0)),
      cell("pages", {class: "num inc-pages", title: "pages a channel took, of those raised"},
        g.pages_raised ? g.pages + " of " + g.pages_raised : "0"),
      CHANNELS.map(function (c) {
        return cell(c, {class: "inc-delivery", dataset: {label: c, channel: c}}, delivery(g, c));
      }));
  }

  function attentionItem(a) {
    var what = a.state === "unconfirmed"
      ? "unconfirmed: the result of attempt " + a.attempts + " was never recorded (not sent again)"
      : "failed after " + a.attempts + " attempt" + (a.attempts === 1 ? "" : "s") + ": " + (a.last_error || a.last_status);
    return E.el("li", {class: "inc-attention-item", dataset: {id: a.id, channel: a.channel, state: a.state}},
      E.stateBadge(a.state), " ",
      E.el("strong", null, a.channel), a.kind && a.kind !== "page" ? " " + a.kind : "", " delivery of ",
      E.el("span", {class: "inc-attention-what"}, a.severity + " " + a.source + ": " + a.msg), " ",
      E.el("span", {class: "inc-attention-error"}, what), " ",
      E.el("span", {class: "muted", title: E.fmt.when(a.at)}, E.fmt.ago(a.at)), " ",
      E.el("code", {class: "inc-attention-cmd"}, "echoops page retry " + a.id));
  }

  function describe(match) {
    return Object.keys(match).map(function (k) { return k + (k.slice(-1) === "~" ? "" : "=") + match[k]; }).join(" ");
  }

  function left(seconds) {
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60);
    return h ? h + " h " + m + " min left" : m + " min left";
  }

  function silenceItem(x, ctx) {
    var remove = E.el("button", {class: "btn btn-quiet inc-unsilence", type: "button", onclick: function () {
      act(ctx, remove, "/api/incidents/silence?id=" + encodeURIComponent(x.id) + "&by=" + BY, {method: "DELETE"},
        function (out) { return "Silence " + out.id + " " + out.state; });
    }}, "Remove");
    return E.el("li", {class: "inc-silence", dataset: {id: x.id}},
      E.el("code", {class: "inc-silence-match"}, describe(x.match)), " ",
      E.el("span", {class: "inc-silence-left", title: "until " + E.fmt.when(x.ends_at)}, left(x.left_s)), " ",
      E.el("span", {class: "inc-silence-reason"}, x.reason), " ",
      E.el("span", {class: "muted"}, "by " + x.created_by + ", " + x.matched + " kept quiet"), " ",
      remove);
  }

  function silenceForm(ctx) {
    var keep = function (input) {
      if (draft[input.name] !== undefined) input.value = draft[input.name];
      input.addEventListener("input", function () { draft[input.name] = input.value; });
      input.addEventListener("change", function () { draft[input.name] = input.value; });
      return input;
    };
    var field = function (name, label, placeholder) {
      return keep(E.el("input", {type: "text", name: name, placeholder: placeholder, "aria-label": label, autocomplete: "off"}));
    };
    var source = field("source", "source", "source, e.g. maint");
    var severity = keep(E.el("select", {name: "severity", "aria-label": "severity"},
      E.el("option", {value: ""}, "any severity"),
      ["CRITICAL", "ERROR", "WARNING", "INFO"].map(function (s) { return E.el("option", {value: s}, s); })));
    var fingerprint = field("fingerprint", "fingerprint", "fingerprint");
    var msg = field("msg~", "message contains", "message contains");
    var duration = keep(E.el("select", {name: "for_min", "aria-label": "for how long"},
      [["30", "30 min"], ["60", "1 h"], ["120", "2 h"], ["240", "4 h"], ["1440", "1 day"]].map(function (o) {
        return E.el("option", {value: o[0], selected: o[0] === "120"}, o[1]);
      })));
    var reason = field("reason", "reason", "reason, e.g. db migration");
    var submit = E.el("button", {class: "btn btn-primary", type: "submit"}, "Silence");
    var form = E.el("form", {class: "inc-silence-form", novalidate: true, onsubmit: function (ev) {
      ev.preventDefault();
      var match = {};
      [source, severity, fingerprint, msg].forEach(function (input) {
        if (input.value.trim()) match[input.name] = input.value.trim();
      });
      var body = {match: match, for_min: Number(duration.value), reason: reason.value, by: BY};
      act(ctx, submit, "/api/incidents/silence", {method: "POST", body: body}, function (out) {
        draft = {};
        return "Silenced " + describe(out.match) + " until " + E.fmt.when(out.ends_at) + " (" + out.id + ")";
      });
    }},
    E.el("fieldset", {class: "inc-fieldset"},
      E.el("legend", null, "Silence incidents that match (all given fields), for a while"),
      E.el("div", {class: "inc-form-row"}, source, severity, fingerprint, msg),
      E.el("div", {class: "inc-form-row"}, duration, reason, submit)));
    return form;
  }

  async function render(body, ctx) {
    var both = await Promise.all([
      ctx.api("/api/incidents/summarize?hours=24", {method: "POST"}),
      ctx.api("/api/incidents/silences"),
    ]);
    var s = both[0], silences = both[1].silences || [];
    var t = s.totals || {};
    var d = t.deliveries || {};
    var by = t.by_state || {};
    var attention = s.attention || [];
    // The badge is the worst incident still open (not acked, silenced or resolved): CRITICAL
    // while one is listed open, whatever its deliveries did (they have their own column and box).
    var open = (s.groups || []).filter(function (g) { return g.state === "open"; });
    var worst = SEVERITIES.filter(function (sev) { return open.some(function (g) { return g.severity === sev; }); })[0];
    ctx.setState(worst ? worst.toLowerCase() : by.acked ? "acked" : attention.length ? "failed" : "ok");
    var rank = {open: 0, acked: 1, silenced: 2, resolved: 3};
    var groups = (s.groups || []).slice().sort(function (a, b) {
      // failures first, then what still needs a person; stable: newest first within each
      return ((hasFailed(b) ? 1 : 0) - (hasFailed(a) ? 1 : 0)) || (rank[a.state] - rank[b.state]);
    });
    // role attributes keep the table a table for screen readers when a phone stacks its rows
    var table = groups.length
      ? E.el("div", {class: "inc-table-wrap"}, E.el("table", {class: ["kv", "inc-table"], role: "table"},
          E.el("thead", {role: "rowgroup"}, E.el("tr", {role: "row"},
            ["last seen", "state", "incident", "count", "pages", "telegram", "email"].map(function (h) {
              return E.el("th", {scope: "col", role: "columnheader", class: h === "count" || h === "pages" ? "num" : null}, h);
            }))),
          E.el("tbody", {role: "rowgroup"}, groups.map(function (g) { return groupRow(g, ctx); }))))
      : E.el("p", {class: "muted inc-empty"}, "No incidents in the last 24 h. Raise one with `echoops page raise` or POST /api/incidents/raise.");
    var note = flash ? E.el("p", {class: ["inc-flash", "tone-" + flash.tone], role: "status"}, flash.text) : null;
    flash = null;
    body.replaceChildren(
      E.el("div", {class: "metrics"},
        metric("incidents (24 h)", E.fmt.num(t.incidents || 0, 0), "incidents"),
        metric("open", E.fmt.num(by.open || 0, 0), "open", by.open ? "bad" : null),
        metric("acked", E.fmt.num(by.acked || 0, 0), "acked", by.acked ? "warn" : null),
        metric("pages delivered (of " + E.fmt.num(t.pages_raised || 0, 0) + " raised)", E.fmt.num(t.pages || 0, 0), "pages",
          (t.pages_raised || 0) > (t.pages || 0) ? "warn" : null),
        metric("failed deliveries", E.fmt.num(d.failed || 0, 0), "failed", d.failed ? "bad" : null),
        metric("pending", E.fmt.num(d.pending || 0, 0), "pending", d.pending ? "warn" : null)),
      note,
      attention.length
        ? E.el("div", {class: "inc-attention", role: "status"},
            E.el("p", {class: "inc-alert"},
              attention.length + " deliver" + (attention.length === 1 ? "y needs" : "ies need") +
              " attention (failed after 6 attempts, or unconfirmed); the other channel was notified. " +
              "Re-send with the command shown."),
            E.el("ul", {class: "inc-attention-list"}, attention.map(attentionItem)))
        : null,
      table,
      E.el("div", {class: "inc-silences"},
        E.el("h3", null, "Silences"),
        silences.length
          ? E.el("ul", {class: "inc-silence-list"}, silences.map(function (x) { return silenceItem(x, ctx); }))
          : E.el("p", {class: "muted inc-no-silences"}, "No silences in force."),
        silenceForm(ctx)));
  }

  E.registerCard({id: "incidents", title: "Incidents", order: 20, span: 3, render: render});
})();
