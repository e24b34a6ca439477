/*
 * echoops dashboard shell. Defines window.echoops (see CONTRIBUTING.md "Dashboard cards"):
 *
 *   echoops.registerCard({id, title, order, span?, wide?, render: async (body, ctx) => {}})
 *   echoops.api(path, {method, body}) -> parsed JSON; throws echoops.ApiError {status, body}
 *                                             (a GET answered with an ETag is re-asked conditionally)
 *   echoops.el(tag, attrs, ...children)       DOM builder; text goes in as textContent only
 *   echoops.sparkline(values, {width, height, label, target})  -> <svg>
 *   echoops.stateBadge(state)                 colour AND the word (green/yellow/red/ok/warn/...)
 *   echoops.meter(pct, {label, state})        a labelled horizontal bar (0-100)
 *   echoops.fmt.ms/pct/ratio/usd/ago/num/time
 *
 * The page's CSP forbids inline script and style: no innerHTML with data, no style="..."
 * attributes; sizes go through the CSSOM (node.style.width = "40%").
 */
(function () {
  "use strict";

  var KEY_STORE = "echoops.dashKey";
  var REFRESH_MS = 30000;
  var SVG_NS = "http://www.w3.org/2000/svg";
  // Checked when a key is entered: the auth hook answers it before routing (401 wrong key,
  // 503 no DASHBOARD_KEY); any other answer (200 once the route exists, or 404) means accepted.
  var PROBE = "/api/ping";

  // ---- DOM ---------------------------------------------------------------------------

  function appendChildren(node, children) {
    children.forEach(function (child) {
      if (child === null || child === undefined || child === false) return;
      if (Array.isArray(child)) return appendChildren(node, child);
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    });
  }

  function setAttrs(node, attrs) {
    Object.keys(attrs).forEach(function (name) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) return;
      if (name === "class" || name === "className") {
        node.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
      } else if (name === "text") {
        node.textContent = String(value);
      } else if (name === "style") {
        // Only objects, applied through the CSSOM (a style attribute would break the CSP).
        if (typeof value !== "object") throw new TypeError("el(): style must be an object");
        Object.keys(value).forEach(function (prop) { node.style[prop] = value[prop]; });
      } else if (name === "dataset") {
        Object.keys(value).forEach(function (k) { node.dataset[k] = value[k]; });
      } else if (name.slice(0, 2) === "on" && typeof value === "function") {
        node.addEventListener(name.slice(2).toLowerCase(), value);
      } else if (name === "html" || name === "innerHTML") {
        throw new TypeError("el(): no innerHTML; pass children or text");
      } else if (value === true) {
        node.setAttribute(name, "");
      } else {
        node.setAttribute(name, String(value));
      }
    });
  }

  /** el("div", {class: "x", onclick: fn}, "text", child, [more]) -> element. attrs may be omitted. */
  function el(tag, attrs) {
    var node = document.createElement(tag);
    var children = Array.prototype.slice.call(arguments, 2);
    if (attrs && typeof attrs === "object" && !(attrs instanceof Node) && !Array.isArray(attrs)) {
      setAttrs(node, attrs);
    } else if (attrs !== undefined) {
      children.unshift(attrs);
    }
    appendChildren(node, children);
    return node;
  }

  function svg(tag, attrs) {
    var node = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    return node;
  }

  // ---- formatting --------------------------------------------------------------------

  function isNum(v) { return typeof v === "number" && isFinite(v); }
  var DASH = "\u2014";

  function toDate(ts) {
    if (ts instanceof Date) return ts;
    if (isNum(ts)) return new Date(ts * 1000); // epoch seconds, as in the logs
    if (typeof ts === "string" && ts) { var d = new Date(ts); return isNaN(d.getTime()) ? null : d; }
    return null;
  }

  var fmt = {
    /** Milliseconds: "85 ms", "1.24 s", "2.5 min". */
    ms: function (v) {
      if (!isNum(v)) return DASH;
      if (Math.abs(v) < 1000) return Math.round(v) + " ms";
      if (Math.abs(v) < 60000) return (v / 1000).toFixed(2) + " s";
      return (v / 60000).toFixed(1) + " min";
    },
    /** A value already in percent (0-100): fmt.pct(92.34) -> "92.3%", fmt.pct(1.234) -> "1.23%", 0 -> "0%". */
    pct: function (v, digits) {
      if (!isNum(v)) return DASH;
      var d = digits !== undefined ? digits : v === 0 ? 0 : Math.abs(v) < 10 ? 2 : 1;
      return v.toFixed(d) + "%";
    },
    /** A ratio (0-1) shown as percent: fmt.ratio(0.0123) -> "1.23%". */
    ratio: function (v, digits) { return isNum(v) ? fmt.pct(v * 100, digits) : DASH; },
    /** US dollars as people read them (the CLI's and the incident messages' rule): "$13.80",
     *  "$150.83" (never "$150.832"); sub-cent amounts keep 4 decimals ("$0.0042"), "<$0.0001" below. */
    usd: function (v) {
      if (!isNum(v)) return DASH;
      var abs = Math.abs(v), sign = v < 0 ? "-" : "";
      if (abs !== 0 && abs < 0.0001) return sign + "<$0.0001";
      var s = abs !== 0 && abs < 0.01 ? abs.toFixed(4) : abs.toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2});
      return sign + "$" + s;
    },
    /** Relative time of an ISO string, epoch seconds or Date: "just now", "5 min ago", "in 2 h". */
    ago: function (ts, now) {
      var d = toDate(ts);
      if (!d) return DASH;
      var secs = Math.round(((now ? toDate(now) : new Date()).getTime() - d.getTime()) / 1000);
      var future = secs < 0;
      var a = Math.abs(secs);
      if (a < 5) return "just now";
      var text = a < 60 ? a + " s" : a < 3600 ? Math.floor(a / 60) + " min" : a < 172800 ? Math.floor(a / 3600) + " h" : Math.floor(a / 86400) + " d";
      return future ? "in " + text : text + " ago";
    },
    /** Plain number with thousands separators: fmt.num(12345.678, 1) -> "12,345.7". */
    num: function (v, digits) {
      if (!isNum(v)) return DASH;
      return v.toLocaleString("en-US", {maximumFractionDigits: digits === undefined ? 2 : digits});
    },
    /** UTC clock time "14:05:09 UTC" (echoops works in UTC); for a moment a person acts on, use `when`. */
    time: function (ts) {
      var d = toDate(ts);
      return d ? d.toISOString().slice(11, 19) + " UTC" : DASH;
    },
    /**
     * Day and time in the viewer's zone, then UTC: "Mon 30 Nov, 07:51 CET (06:51 UTC)"; the UTC
     * day is named too when it differs ("Tue 1 Dec, 00:30 CET (Mon 30 Nov, 23:30 UTC)"). A viewer
     * in UTC sees "Mon 30 Nov, 06:51 UTC". A link valid "until 02:59" never reads as expired.
     */
    when: function (ts) {
      var d = toDate(ts);
      if (!d) return DASH;
      var local = dayTime(d, undefined);
      var utc = dayTime(d, "UTC");
      if (isUtcZone()) return utc.day + ", " + utc.time + " UTC";
      return local.day + ", " + local.time + " " + local.zone + " (" +
        (utc.day === local.day ? "" : utc.day + ", ") + utc.time + " UTC)";
    },
    /** Clock time in the viewer's zone for chart axes: "07:51" (with the day when `withDay`). */
    clock: function (ts, withDay) {
      var d = toDate(ts);
      if (!d) return DASH;
      var parts = dayTime(d, undefined);
      return withDay ? parts.day + " " + parts.time : parts.time;
    },
  };

  var utcZone = null;
  function isUtcZone() {
    if (utcZone === null) {
      var zone = new Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
      utcZone = /^(Etc\/)?(UTC|GMT|UCT|Universal|Zulu)$/.test(zone);
    }
    return utcZone;
  }

  var dayFormats = {};
  /** {day: "Mon 30 Nov", time: "07:51", zone: "CET"} of `d` in `timeZone` (undefined: the viewer's). */
  function dayTime(d, timeZone) {
    var key = timeZone || "local";
    var f = dayFormats[key] || (dayFormats[key] = new Intl.DateTimeFormat("en-GB", {
      timeZone: timeZone, weekday: "short", day: "numeric", month: "short",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZoneName: "short"}));
    var p = {};
    f.formatToParts(d).forEach(function (part) { p[part.type] = part.value; });
    return {day: p.weekday + " " + p.day + " " + p.month, time: p.hour + ":" + p.minute, zone: p.timeZoneName || ""};
  }

  // ---- state badge, meter, sparkline -------------------------------------------------

  var STATE_TONE = {
    green: "good", ok: "good",
    yellow: "warn", warn: "warn",
    red: "bad", throttle: "bad", over: "bad", failed: "bad", unconfirmed: "bad",
    pending: "info",
    skipped: "muted",
    open: "bad", acked: "warn", silenced: "muted", resolved: "good", cancelled: "muted", active: "info",
    critical: "bad", error: "bad", warning: "warn", info: "info",
  };
  var TONE_ICON = {good: "\u2713", warn: "!", bad: "\u2715", info: "\u2026", muted: "\u2013"};

  /** A badge with colour AND the state word, readable without colour and in screenshots. */
  function stateBadge(state) {
    var word = String(state === null || state === undefined || state === "" ? "unknown" : state);
    var tone = STATE_TONE[word.toLowerCase()] || "muted";
    return el("span", {class: ["badge", "badge-" + tone], dataset: {state: word.toLowerCase()}},
      el("span", {class: "badge-icon", "aria-hidden": "true"}, TONE_ICON[tone]),
      el("span", {class: "badge-word"}, word.toUpperCase()));
  }

  /** A horizontal bar for a percentage (clamped to 0-100 for drawing; the label keeps the real value). */
  function meter(pct, opts) {
    opts = opts || {};
    var tone = opts.state ? STATE_TONE[String(opts.state).toLowerCase()] || "muted" : "neutral";
    var fill = el("span", {class: ["meter-fill", "fill-" + tone]});
    fill.style.width = (isNum(pct) ? Math.max(0, Math.min(100, pct)) : 0) + "%";
    var label = (opts.label ? opts.label + ": " : "") + fmt.pct(pct);
    return el("div", {class: "meter", role: "meter", "aria-valuemin": 0, "aria-valuemax": 100,
      "aria-valuenow": isNum(pct) ? Math.round(pct * 10) / 10 : 0, "aria-label": label},
      el("span", {class: "meter-track"}, fill));
  }

  /**
   * SVG sparkline of `values` (numbers; null/undefined are gaps). Options: width, height (px),
   * label (accessible name and <title>), target (a dashed reference line), min/max (y range).
   * Empty input draws a "no data" baseline; one value draws a dot; a flat series a mid line.
   */
  function sparkline(values, opts) {
    opts = opts || {};
    var w = opts.width || 160, h = opts.height || 36, pad = 3;
    var vals = Array.isArray(values) ? values.map(function (v) { return isNum(v) ? v : null; }) : [];
    var nums = vals.filter(function (v) { return v !== null; });
    var label = opts.label || "trend";
    var root = svg("svg", {class: "spark", width: w, height: h, viewBox: "0 0 " + w + " " + h, role: "img", preserveAspectRatio: "none"});
    var title = svg("title");
    root.appendChild(title);
    if (!nums.length) {
      title.textContent = label + ": no data";
      root.setAttribute("aria-label", title.textContent);
      root.appendChild(svg("line", {class: "spark-empty", x1: pad, x2: w - pad, y1: h / 2, y2: h / 2}));
      return root;
    }
    var hasTarget = isNum(opts.target);
    var lo = isNum(opts.min) ? opts.min : Math.min.apply(null, hasTarget ? nums.concat([opts.target]) : nums);
    var hi = isNum(opts.max) ? opts.max : Math.max.apply(null, hasTarget ? nums.concat([opts.target]) : nums);
    var flat = hi === lo;
    var x = function (i) { return vals.length === 1 ? w / 2 : pad + (i * (w - 2 * pad)) / (vals.length - 1); };
    var y = function (v) { return flat ? h / 2 : h - pad - ((v - lo) * (h - 2 * pad)) / (hi - lo); };
    var last = nums[nums.length - 1];
    title.textContent = label + ": " + nums.length + " points, last " + fmt.num(last) +
      ", min " + fmt.num(Math.min.apply(null, nums)) + ", max " + fmt.num(Math.max.apply(null, nums)) +
      (hasTarget ? ", target " + fmt.num(opts.target) : "");
    root.setAttribute("aria-label", title.textContent);
    if (hasTarget) {
      var ty = y(opts.target).toFixed(1);
      root.appendChild(svg("line", {class: "spark-target", x1: pad, x2: w - pad, y1: ty, y2: ty}));
    }
    // One path per run of non-null values, so gaps stay gaps.
    var d = "", open = false, lastIdx = -1;
    vals.forEach(function (v, i) {
      if (v === null) { open = false; return; }
      d += (open ? "L" : "M") + x(i).toFixed(1) + " " + y(v).toFixed(1) + " ";
      open = true;
      lastIdx = i;
    });
    if (nums.length > 1) root.appendChild(svg("path", {class: "spark-line", d: d.trim()}));
    root.appendChild(svg("circle", {class: "spark-dot", cx: x(lastIdx).toFixed(1), cy: y(vals[lastIdx]).toFixed(1), r: 2.5}));
    return root;
  }

  // ---- time-series charts (Chart.js 4, vendored in static/vendor/) ---------------------

  var charts = {}; // chart id -> Chart: a re-render replaces the canvas, the old chart is destroyed
  var MIN = 60000;
  var STEPS_MIN = [5, 10, 15, 30, 60, 120, 180, 240, 360, 720, 1440];
  var TONE_VAR = {bad: "--bad-fill", warn: "--warn-fill", good: "--good-fill", info: "--info-fill", muted: "--neutral-fill"};

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#64748b";
  }

  function toMs(ts) {
    var d = toDate(ts);
    return d ? d.getTime() : null;
  }

  /** Ticks every 5 min .. 1 day, about six across [min, max] (ms), on whole steps. */
  function timeTicks(min, max) {
    var span = (max - min) / MIN, step = STEPS_MIN[STEPS_MIN.length - 1];
    for (var i = 0; i < STEPS_MIN.length; i++) { if (span / STEPS_MIN[i] <= 7) { step = STEPS_MIN[i]; break; } }
    var ms = step * MIN, out = [];
    for (var t = Math.ceil(min / ms) * ms; t <= max; t += ms) out.push({value: t});
    return out;
  }

  /**
   * A time-series chart with axes, time labels and hover values, captioned above, with a text
   * fallback under it (the latest values; also the canvas' accessible name):
   *
   *   timeChart({id, caption, latest, x: {min, max}, y: {title, min, max, format}, y2?: {...},
   *     series: [{label, points: [[ts, value], ...], color: "--chart-1", dashed?, step?, axis?: "y2", fill?}],
   *     refs: [{label, value, tone: "bad" | "warn" | "muted", axis?}]})   -> <figure class="chart">
   *
   * `ts` is an ISO string, epoch seconds or a Date; `refs` are horizontal lines across the x range
   * (a target, a cap). Without Chart.js (a failed load) the caption and the text remain.
   */
  function timeChart(o) {
    var canvas = el("canvas", {role: "img", "aria-label": o.caption + ": " + o.latest}, o.latest);
    var fig = el("figure", {class: "chart", dataset: {chart: o.id}},
      el("figcaption", {class: "chart-caption"}, o.caption),
      el("div", {class: "chart-box"}, canvas),
      el("p", {class: "chart-latest muted"}, o.latest));
    if (charts[o.id]) { charts[o.id].destroy(); delete charts[o.id]; }
    if (!window.Chart) {
      fig.appendChild(el("p", {class: "muted chart-missing"}, "The chart library did not load; the figures above are current."));
      return fig;
    }
    var xmin = toMs(o.x.min), xmax = toMs(o.x.max);
    var spanDays = (xmax - xmin) > 36 * 3600 * 1000;
    var datasets = o.series.map(function (sr) {
      var color = cssVar(sr.color || "--chart-1");
      return {
        label: sr.label, yAxisID: sr.axis || "y", stepped: sr.step ? "before" : false,
        data: sr.points.map(function (p) { return {x: toMs(p[0]), y: isNum(p[1]) ? p[1] : null}; }),
        borderColor: color, backgroundColor: color, borderWidth: 2, borderDash: sr.dashed ? [6, 4] : [],
        pointRadius: sr.points.length > 40 ? 0 : 2, pointHoverRadius: 4, fill: sr.fill ? "origin" : false,
        spanGaps: false, tension: 0, format: sr.format,
      };
    });
    (o.refs || []).forEach(function (ref) {
      var color = cssVar(TONE_VAR[ref.tone] || TONE_VAR.muted);
      datasets.push({
        label: ref.label, yAxisID: ref.axis || "y", data: [{x: xmin, y: ref.value}, {x: xmax, y: ref.value}],
        borderColor: color, backgroundColor: color, borderWidth: 1.5, borderDash: [3, 3], pointRadius: 0,
        pointHoverRadius: 0, fill: false, format: ref.format,
      });
    });
    var text = cssVar("--muted"), grid = cssVar("--border");
    function axis(a, position, drawGrid) {
      return {type: "linear", position: position, min: a.min, max: a.max, suggestedMax: a.suggestedMax,
        title: {display: !!a.title, text: a.title, color: text},
        grid: {color: grid, drawOnChartArea: drawGrid}, border: {color: grid},
        ticks: {color: text, maxTicksLimit: 6, callback: function (v) { return a.format ? a.format(v) : fmt.num(v); }}};
    }
    var scales = {
      x: {type: "linear", min: xmin, max: xmax, grid: {color: grid}, border: {color: grid},
        afterBuildTicks: function (scale) { scale.ticks = timeTicks(scale.min, scale.max); },
        ticks: {color: text, maxRotation: 0, autoSkip: true, callback: function (v) { return fmt.clock(v / 1000, spanDays); }}},
      y: axis(o.y, "left", true),
    };
    if (o.y2) scales.y2 = axis(o.y2, "right", false);
    var formats = {y: o.y.format, y2: o.y2 && o.y2.format};
    charts[o.id] = new window.Chart(canvas, {
      type: "line",
      data: {datasets: datasets},
      options: {
        responsive: true, maintainAspectRatio: false, animation: false, normalized: true,
        interaction: {mode: "nearest", axis: "x", intersect: false},
        scales: scales,
        plugins: {
          legend: {position: "top", align: "start", labels: {color: text, boxWidth: 12, boxHeight: 2, padding: 8}},
          tooltip: {
            callbacks: {
              title: function (items) { return items.length ? fmt.when(items[0].parsed.x / 1000) : ""; },
              label: function (item) {
                var f = item.dataset.format || formats[item.dataset.yAxisID];
                return item.dataset.label + ": " + (f ? f(item.parsed.y) : fmt.num(item.parsed.y));
              },
            },
          },
        },
      },
    });
    return fig;
  }

  // ---- API ---------------------------------------------------------------------------

  /** A non-2xx answer: `status` (HTTP) and `body` (the parsed `{error, detail}` JSON, or null). */
  class ApiError extends Error {
    constructor(status, body) {
      super(body && typeof body === "object" && body.detail ? String(body.detail) : "HTTP " + status);
      this.name = "ApiError";
      this.status = status;
      this.body = body;
    }
  }

  var key = "";
  try { key = sessionStorage.getItem(KEY_STORE) || ""; } catch (e) { key = ""; }

  function isKeyRefusal(status, body) {
    if (status === 401) return "wrong";
    // 503 from the auth hook (no DASHBOARD_KEY); a feature's own 503 names something else.
    if (status === 503 && body && /DASHBOARD_KEY/.test(String(body.detail || ""))) return "unset";
    return null;
  }

  // The last answer to each GET that came with an ETag: the next GET of that path is conditional
  // (If-None-Match) and a 304 reuses the body held here. The status routes change on a tick, the
  // dashboard refreshes every 30 s: most refreshes move no document at all.
  var held = {};

  function request(path, opts, withKey) {
    opts = opts || {};
    var method = opts.method || "GET";
    var headers = {"Accept": "application/json", "X-Dash-Key": withKey};
    var init = {method: method, headers: headers, cache: "no-store", credentials: "same-origin"};
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body);
    }
    var last = method === "GET" ? held[path] : undefined;
    if (last) headers["If-None-Match"] = last.etag;
    return fetch(path, init).then(function (resp) {
      if (resp.status === 304 && last) return JSON.parse(last.text);
      return resp.text().then(function (text) {
        var body = null;
        if (text) { try { body = JSON.parse(text); } catch (e) { body = {error: "bad_json", detail: text.slice(0, 200)}; } }
        if (!resp.ok) throw new ApiError(resp.status, body);
        var etag = resp.headers.get("ETag");
        if (method === "GET" && etag) held[path] = {etag: etag, text: text};
        else if (method === "GET") delete held[path];
        return body;
      });
    });
  }

  /** GET/POST a same-origin /api path with X-Dash-Key; resolves to parsed JSON, rejects with ApiError. */
  function api(path, opts) {
    return request(path, opts, key).catch(function (err) {
      if (err instanceof ApiError) {
        var refusal = isKeyRefusal(err.status, err.body);
        if (refusal) shell.keyRefused(refusal);
      }
      throw err;
    });
  }

  // ---- cards -------------------------------------------------------------------------

  var cards = [];
  var seq = 0;

  function cardError(err) {
    var detail;
    if (err instanceof ApiError) {
      var refusal = isKeyRefusal(err.status, err.body);
      detail = refusal === "wrong" ? "The server refused the key (wrong key)." :
        refusal === "unset" ? "The server has no DASHBOARD_KEY set." :
        "HTTP " + err.status + (err.body && err.body.error ? " " + err.body.error : "") + ": " + err.message;
    } else {
      detail = (err && err.message) || String(err);
    }
    return el("div", {class: "card-error", role: "alert"},
      el("strong", null, "This card could not load."), " ", el("span", {class: "card-error-detail"}, detail));
  }

  function renderCard(card) {
    if (card.busy) return card.busy;
    var body = card.body;
    card.section.setAttribute("aria-busy", "true");
    var ctx = {
      api: api, el: el, fmt: fmt, sparkline: sparkline, timeChart: timeChart, stateBadge: stateBadge, meter: meter,
      now: new Date(), card: {id: card.def.id, title: card.def.title},
      /** Show a state badge next to the card title (null clears it). */
      setState: function (state) {
        card.headState.replaceChildren(state ? stateBadge(state) : "");
      },
      refresh: function () { return renderCard(card); },
    };
    card.busy = Promise.resolve()
      .then(function () { return card.def.render(body, ctx); })
      .then(function () { card.section.classList.remove("card-failed"); },
        function (err) {
          card.section.classList.add("card-failed");
          body.replaceChildren(cardError(err));
          if (window.console) console.warn("echoops card " + card.def.id + " failed:", err);
        })
      .then(function () { card.section.removeAttribute("aria-busy"); card.busy = null; });
    return card.busy;
  }

  function makeSection(def) {
    var titleId = "card-title-" + def.id;
    var headState = el("span", {class: "card-state"});
    var body = el("div", {class: "card-body"}, el("p", {class: "muted loading"}, "Loading\u2026"));
    // Cards build their content with `cond ? node : null`; the DOM would print "null". The
    // same rules as el()'s children: null/undefined/false skipped, arrays flattened.
    body.replaceChildren = function () {
      Element.prototype.replaceChildren.call(this);
      appendChildren(this, Array.prototype.slice.call(arguments));
    };
    var section = el("section", {class: ["card", def.wide ? "card-wide" : null, "card-span-" + def.span, "card-" + def.id],
      id: "card-" + def.id, "aria-labelledby": titleId},
      el("header", {class: "card-head"}, el("h2", {id: titleId, class: "card-title"}, def.title), headState),
      body);
    return {section: section, body: body, headState: headState};
  }

  /** Add (or replace, same id) a card; renders right away when the key is already accepted. */
  function registerCard(def) {
    if (!def || typeof def.id !== "string" || !/^[a-z0-9][a-z0-9_-]*$/i.test(def.id)) {
      throw new TypeError("registerCard: id must be a short identifier");
    }
    if (typeof def.render !== "function") throw new TypeError("registerCard(" + def.id + "): render must be a function");
    // span: the columns a card takes on a wide screen (3 across from 80rem, 2 from 48rem, else 1);
    // `wide: true` is span 2. A card wider than the columns there takes the whole row.
    var span = [1, 2, 3].indexOf(def.span) >= 0 ? def.span : def.wide ? 2 : 1;
    var card = {def: {id: def.id, title: String(def.title || def.id), order: isNum(def.order) ? def.order : 100,
      wide: span > 1, span: span, render: def.render}, seq: seq++};
    var parts = makeSection(card.def);
    card.section = parts.section; card.body = parts.body; card.headState = parts.headState;
    var old = cards.findIndex(function (c) { return c.def.id === def.id; });
    if (old >= 0) { cards[old].section.remove(); cards.splice(old, 1); }
    cards.push(card);
    cards.sort(function (a, b) { return a.def.order - b.def.order || a.seq - b.seq; });
    shell.placeCards();
    if (shell.ready) renderCard(card);
    return card.section;
  }

  // ---- shell -------------------------------------------------------------------------

  var shell = {
    ready: false,
    timer: null,
    lastRefresh: 0,
    $: function (id) { return document.getElementById(id); },

    placeCards: function () {
      var grid = this.$("cards");
      if (!grid) return;
      cards.forEach(function (c) { grid.appendChild(c.section); }); // appendChild moves: keeps order
      var empty = this.$("no-cards");
      if (cards.length && empty) empty.remove();
      if (!cards.length && !empty) {
        grid.appendChild(el("p", {id: "no-cards", class: "muted empty-state"},
          "No cards are installed yet. Each echoops feature adds its card here."));
      }
    },

    showPrompt: function (message, tone) {
      this.ready = false;
      this.stopTimer();
      document.body.classList.remove("is-ready");
      this.$("key-panel").hidden = false;
      this.$("cards").hidden = true;
      this.$("session-actions").hidden = true;
      var msg = this.$("key-message");
      msg.hidden = !message;
      msg.textContent = message || "";
      msg.className = "key-message" + (tone ? " tone-" + tone : "");
      var input = this.$("key-input");
      input.setAttribute("aria-invalid", tone === "bad" ? "true" : "false");
      input.focus();
    },

    keyRefused: function (why) {
      if (why === "unset") {
        this.showPrompt("The server has no DASHBOARD_KEY set, so its admin API is off. Set DASHBOARD_KEY where echoops runs and restart it.", "warn");
        document.body.dataset.keyState = "unset";
      } else {
        this.showPrompt("Wrong key: the server refused it. Check DASHBOARD_KEY and enter it again.", "bad");
        document.body.dataset.keyState = "wrong";
      }
    },

    accept: function () {
      this.ready = true;
      document.body.dataset.keyState = "ok";
      document.body.classList.add("is-ready");
      this.$("key-panel").hidden = true;
      this.$("key-message").hidden = true;
      this.$("cards").hidden = false;
      this.$("session-actions").hidden = false;
      this.$("key-input").value = "";
      this.placeCards();
      this.refreshAll();
      this.startTimer();
    },

    // A probe the auth hook answers before routing: 401 wrong key, 503 no key, else accepted.
    verify: function (candidate) {
      var self = this;
      return request(PROBE, {}, candidate).then(function () { return null; }, function (err) {
        if (err instanceof ApiError) return isKeyRefusal(err.status, err.body);
        throw err;
      }).then(function (refusal) {
        if (refusal) {
          self.keyRefused(refusal);
          return false;
        }
        key = candidate;
        try { sessionStorage.setItem(KEY_STORE, candidate); } catch (e) { /* private mode: key lives in memory */ }
        self.accept();
        return true;
      }, function () {
        self.showPrompt("Cannot reach the echoops server. Check that it is running, then try again.", "bad");
        return false;
      });
    },

    refreshAll: function () {
      if (!this.ready) return Promise.resolve();
      var self = this;
      var btn = this.$("refresh-btn");
      btn.disabled = true;
      return Promise.all(cards.map(renderCard)).then(function () {
        btn.disabled = false;
        self.lastRefresh = Date.now();
        var status = self.$("refresh-status");
        var when = new Date();
        status.replaceChildren("Updated ", el("time", {datetime: when.toISOString()}, fmt.time(when)));
        document.body.dataset.refreshedAt = String(self.lastRefresh);
      });
    },

    startTimer: function () {
      var self = this;
      this.stopTimer();
      this.timer = setInterval(function () {
        if (!document.hidden) self.refreshAll();
      }, REFRESH_MS);
    },
    stopTimer: function () {
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
    },

    forget: function () {
      key = "";
      try { sessionStorage.removeItem(KEY_STORE); } catch (e) { /* nothing stored */ }
      cards.forEach(function (c) { c.body.replaceChildren(el("p", {class: "muted"}, "Locked.")); c.headState.replaceChildren(); });
      document.body.dataset.keyState = "none";
      this.showPrompt("Key forgotten. Enter it again to continue.", "info");
    },

    start: function () {
      var self = this;
      this.$("key-form").addEventListener("submit", function (ev) {
        ev.preventDefault();
        var candidate = self.$("key-input").value.trim();
        if (!candidate) { self.showPrompt("Enter the dashboard key.", "bad"); return; }
        self.$("key-submit").disabled = true;
        self.verify(candidate).then(function () { self.$("key-submit").disabled = false; });
      });
      this.$("refresh-btn").addEventListener("click", function () { self.refreshAll(); });
      this.$("forget-btn").addEventListener("click", function () { self.forget(); });
      document.addEventListener("visibilitychange", function () {
        if (!document.hidden && self.ready && Date.now() - self.lastRefresh >= REFRESH_MS) self.refreshAll();
      });
      fetch("/healthz", {cache: "no-store"}).then(function (r) { return r.json(); }).then(function (h) {
        if (h && h.version) self.$("footer-version").textContent = "echoops " + h.version;
      }).catch(function () { /* the version is decoration */ });
      this.placeCards();
      document.body.dataset.shell = "started";
      if (key) this.verify(key); else { document.body.dataset.keyState = "none"; this.showPrompt("", null); }
    },
  };

  /** A big number with its label: the dashboard's metric tile (`data-metric=id`). */
  function metric(label, value, id, extraClass) {
    return el("div", {class: ["metric", extraClass || null], dataset: {metric: id}},
      el("span", {class: "metric-value"}, value),
      el("span", {class: "metric-label"}, label));
  }

  window.echoops = Object.freeze({
    registerCard: registerCard,
    api: api,
    ApiError: ApiError,
    el: el,
    sparkline: sparkline,
    timeChart: timeChart,
    stateBadge: stateBadge,
    meter: meter,
    metric: metric,
    fmt: Object.freeze(fmt),
    /** Re-render every card now (what the Refresh button does). */
    refresh: function () { return shell.refreshAll(); },
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { shell.start(); });
  } else {
    shell.start();
  }
})();
