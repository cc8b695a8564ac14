// vdm dashboard: renders vdm.server.observe.dashboard_state, first fetched, then pushed
// over SSE (polling when SSE fails). No framework, no build step. Every string from the
// server goes into the DOM as text (textContent, createTextNode): a model or session name
// chosen by a client can never become markup.
"use strict";

(function () {
  const STATE_URL = "api/state";
  const EVENTS_URL = "api/events";
  const LOGIN_URL = "login";
  const TOTALS_URL = "../metrics/running-totals";
  const POLL_MS = 2000;
  // The first render comes from a fetch; the live feed opens a little later. (A headless
  // browser dumping the page waits for open requests: a feed opened at once never ends.)
  const SSE_DELAY_MS = 1500;
  const SSE_FAILURES_BEFORE_POLLING = 3;
  const SSE_RETRY_FROM_POLLING_MS = 30000;
  const SVG = "http://www.w3.org/2000/svg";

  let current = null;        // the last state
  let receivedAt = 0;        // performance.now() when it arrived
  let source = null;         // the EventSource
  let sseFailures = 0;
  let pollTimer = null;
  let range = 900;           // chart range, seconds
  let session = null;        // the selected session, filtering the models table
  let sessionTotals = null;  // /metrics/running-totals?session=… for it
  let sessionFetching = false;

  // --- DOM helpers: text only ---------------------------------------------------------------

  function el(tag, props, children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (value === undefined || value === null || value === false) continue;
        if (key === "class") node.className = value;
        else if (key === "text") node.textContent = String(value);
        else if (key === "on") for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
        else node.setAttribute(key, String(value));
      }
    }
    for (const child of children || []) {
      if (child === null || child === undefined) continue;
      node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs, children) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    for (const child of children || []) node.appendChild(child);
    return node;
  }

  function tip(text) {
    const t = document.createElementNS(SVG, "title");
    t.textContent = text;
    return t;
  }

  const $ = (id) => document.getElementById(id);

  function fill(tbody, rows, columns, emptyText) {
    tbody.replaceChildren(...(rows.length ? rows : [
      el("tr", null, [el("td", { class: "empty", colspan: columns, text: emptyText })]),
    ]));
  }

  // --- formats ------------------------------------------------------------------------------

  function num(n) {
    if (n === null || n === undefined) return "–";
    const a = Math.abs(n);
    if (a >= 1e9) return (n / 1e9).toFixed(a >= 1e10 ? 1 : 2) + "B";
    if (a >= 1e6) return (n / 1e6).toFixed(a >= 1e7 ? 1 : 2) + "M";
    if (a >= 1e4) return (n / 1e3).toFixed(a >= 1e5 ? 0 : 1) + "k";
    return Math.round(n).toLocaleString("en-US");
  }

  function exact(n) {
    return n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en-US");
  }

  function cost(usd, complete) {
    if (usd === null || usd === undefined) return "n/a";
    let text;
    if (usd === 0) text = "$0";
    else if (usd < 0.01) text = "$" + usd.toFixed(4);
    else if (usd < 100) text = "$" + usd.toFixed(2);
    else text = "$" + Math.round(usd).toLocaleString("en-US");
    return complete === false ? text + "+" : text;
  }

  function ms(value) {
    if (value === null || value === undefined) return "–";
    if (value < 1000) return Math.round(value) + " ms";
    if (value < 60000) return (value / 1000).toFixed(value < 10000 ? 2 : 1) + " s";
    return duration(value / 1000);
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    const d = Math.floor(seconds / 86400), h = Math.floor(seconds / 3600) % 24;
    const m = Math.floor(seconds / 60) % 60, s = seconds % 60;
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + m + "m";
    if (m) return m + "m " + s + "s";
    return s + "s";
  }

  function serverNow() {
    if (!current) return Date.now() / 1000;
    const t = current.running_totals;
    return t.started_at + t.uptime_s + (performance.now() - receivedAt) / 1000;
  }

  function ago(at) {
    const s = serverNow() - at;
    return s < 5 ? "just now" : duration(s) + " ago";
  }

  function clock(at) {
    const d = new Date(at * 1000);
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  // `provider:model`; a request that failed before routing has no provider: its name alone.
  function modelName(provider, model) {
    return provider ? provider + ":" + (model || "?") : model || "?";
  }

  // --- sections -----------------------------------------------------------------------------

  function renderHeader(state) {
    const t = state.running_totals;
    $("version").textContent = "v" + t.version;
    $("uptime").textContent = duration(t.uptime_s);
    $("foot").textContent = "vdm " + t.version + " · started " + new Date(t.started_at * 1000).toLocaleString();
  }

  function stat(label, value, detail, extra) {
    return el("div", { class: "card-stat" + (extra ? " " + extra : "") }, [
      el("div", { class: "label", text: label }),
      el("div", { class: "value", text: value }),
      el("div", { class: "detail", text: detail || "\u00a0" }),
    ]);
  }

  function renderCards(state) {
    const total = state.running_totals.total;
    const rate = total.requests ? (100 * total.errors / total.requests).toFixed(1) + "% of requests" : "";
    const cached = total.cache_read_input_tokens + total.cache_creation_input_tokens;
    $("cards").replaceChildren(
      stat("Requests", exact(total.requests), state.active.count + " active"),
      stat("Errors", exact(total.errors), rate, total.errors ? "bad" : ""),
      stat("Input tokens", num(total.input_tokens), exact(total.input_tokens)),
      stat("Output tokens", num(total.output_tokens), total.reasoning_tokens ? num(total.reasoning_tokens) + " reasoning" : exact(total.output_tokens)),
      stat("Cache tokens", num(cached), num(total.cache_read_input_tokens) + " read · " + num(total.cache_creation_input_tokens) + " write"),
      stat("Cost", cost(total.cost_usd, total.cost_complete), total.cost_complete === false ? "some models have no price" : "from the price table"),
      stat("Sessions", exact(state.running_totals.sessions), state.running_totals.subagents ? exact(state.running_totals.subagents) + " subagents" : ""),
    );
  }

  function renderActive(state) {
    const rows = state.active.active.map((a) => el("tr", null, [
      el("td", { class: "id", text: a.request_id }),
      el("td", { text: a.endpoint }),
      el("td", { text: a.requested || "–" }),
      el("td", { class: "model", text: a.provider ? modelName(a.provider, a.model) : "–" }),
      el("td", { text: a.client || "–" }),
      el("td", { class: "num", text: a.ttft_ms === null || a.ttft_ms === undefined ? "waiting" : ms(a.ttft_ms) }),
      el("td", { class: "num elapsed", "data-elapsed": a.elapsed_ms, text: ms(a.elapsed_ms) }),
    ]));
    $("active-count").textContent = state.active.count ? "(" + state.active.count + ")" : "";
    fill($("active").tBodies[0], rows, 7, "no request running");
  }

  function tick() {
    if (!current) return;
    const since = performance.now() - receivedAt;
    for (const cell of document.querySelectorAll("td.elapsed")) {
      cell.textContent = ms(Number(cell.getAttribute("data-elapsed")) + since);
    }
    for (const cell of document.querySelectorAll("[data-left]")) {
      const left = Number(cell.getAttribute("data-left")) - since / 1000;
      cell.textContent = left > 0 ? "back in " + duration(Math.ceil(left)) : "back now";
    }
    $("uptime").textContent = duration(current.running_totals.uptime_s + since / 1000);
  }

  function renderModels(state) {
    const totals = session && sessionTotals ? sessionTotals : state.running_totals;
    const models = [...totals.models].sort((a, b) => b.requests - a.requests || (b.cost_usd || 0) - (a.cost_usd || 0));
    const rows = models.map((m) => {
      const name = modelName(m.provider, m.model);
      const types = Object.entries(m.errors_by_type || {}).map(([k, v]) => k + ": " + v).join(", ");
      return el("tr", { "data-model": name }, [
        el("td", { class: "model", title: name, text: name }),
        el("td", { class: "num", text: exact(m.requests) }),
        el("td", { class: "num" + (m.errors ? " bad" : ""), title: types || null, text: exact(m.errors) }),
        el("td", { class: "num", title: exact(m.input_tokens), text: num(m.input_tokens) }),
        el("td", { class: "num", title: exact(m.output_tokens), text: num(m.output_tokens) }),
        el("td", { class: "num", title: exact(m.cache_read_input_tokens), text: num(m.cache_read_input_tokens) }),
        el("td", { class: "num", title: exact(m.cache_creation_input_tokens), text: num(m.cache_creation_input_tokens) }),
        el("td", { class: "num", text: ms(m.ttft_p50_ms) }),
        el("td", { class: "num", text: ms(m.ttft_p95_ms) }),
        el("td", { class: "num", text: ms(m.latency_p50_ms) }),
        el("td", { class: "num", text: cost(m.cost_usd) }),
      ]);
    });
    fill($("models").tBodies[0], rows, 11, session ? "no request in this session" : "no request yet");
    const filter = $("filter");
    if (session) {
      filter.replaceChildren(
        el("span", { class: "muted", text: "session" }),
        el("span", { class: "pill", text: session }),
        el("button", { type: "button", text: "clear", on: { click: () => selectSession(null) } }),
      );
      filter.hidden = false;
    } else {
      filter.hidden = true;
    }
  }

  function densify(series, seconds, now) {
    const step = series.bucket_s || 10;
    const byT = new Map(series.points.map((p) => [p.t, p]));
    const last = Math.floor(now / step) * step;
    const out = [];
    for (let t = last - seconds + step; t <= last; t += step) {
      out.push(byT.get(t) || { t: t, requests: 0, errors: 0, input_tokens: 0, output_tokens: 0, cost_usd: 0 });
    }
    return out;
  }

  const W = 400, H = 120, PAD_L = 4, PAD_B = 14, PAD_T = 6;

  function frame(maxLabel, seconds) {
    const g = svg("g");
    for (const f of [0, 0.5, 1]) {
      const y = PAD_T + (H - PAD_T - PAD_B) * f;
      g.appendChild(svg("line", { class: "grid", x1: PAD_L, x2: W, y1: y, y2: y }));
    }
    const top = svg("text", { class: "axis", x: PAD_L + 2, y: PAD_T + 9 });
    top.textContent = maxLabel;
    const left = svg("text", { class: "axis", x: PAD_L, y: H - 2 });
    left.textContent = "−" + (seconds >= 3600 ? "60 min" : Math.round(seconds / 60) + " min");
    const right = svg("text", { class: "axis", x: W - 2, y: H - 2, "text-anchor": "end" });
    right.textContent = "now";
    g.append(top, left, right);
    return g;
  }

  function bars(points, seconds, layers, format) {
    const plot = svg("svg", { class: "plot", viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none" });
    const max = Math.max(1, ...points.map((p) => layers.reduce((s, l) => s + (p[l.key] || 0), 0)));
    plot.appendChild(frame(format(max), seconds));
    const width = (W - PAD_L) / points.length;
    const height = H - PAD_T - PAD_B;
    points.forEach((p, i) => {
      let base = H - PAD_B;
      const label = [clock(p.t)].concat(layers.map((l) => l.label + " " + format(p[l.key] || 0))).join("\n");
      for (const l of layers) {
        const v = p[l.key] || 0;
        if (!v) continue;
        const h = Math.max(1, (v / max) * height);
        base -= h;
        plot.appendChild(svg("rect", {
          class: l.cls, x: PAD_L + i * width + width * 0.1, y: base, width: Math.max(0.5, width * 0.8), height: h,
        }, [tip(label)]));
      }
    });
    return plot;
  }

  function costLine(points, seconds) {
    const plot = svg("svg", { class: "plot", viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none" });
    let run = 0;
    const cumulative = points.map((p) => (run += p.cost_usd || 0));
    const max = Math.max(run, 1e-9);
    plot.appendChild(frame(cost(run), seconds));
    const width = (W - PAD_L) / Math.max(1, points.length - 1);
    const height = H - PAD_T - PAD_B;
    const xy = cumulative.map((v, i) => [PAD_L + i * width, H - PAD_B - (v / max) * height]);
    const line = xy.map(([x, y], i) => (i ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1)).join(" ");
    if (run > 0) {
      plot.appendChild(svg("path", { class: "a-cost", d: line + " L" + (W).toFixed(1) + " " + (H - PAD_B) + " L" + PAD_L + " " + (H - PAD_B) + " Z" }));
      plot.appendChild(svg("path", { class: "l-cost", d: line }, [tip("cost in the last " + Math.round(seconds / 60) + " min: " + cost(run))]));
    }
    return plot;
  }

  function chart(title, total, legend, plot) {
    return el("div", { class: "chart" }, [
      el("div", { class: "chart-title" }, [el("b", { text: title }), el("span", { text: total })]),
      el("div", { class: "legend" }, legend.map(([cls, text]) => el("span", null, [el("i", { class: cls }), text]))),
      plot,
    ]);
  }

  function renderCharts(state) {
    const series = state.timeseries || { bucket_s: 10, points: [] };
    const points = densify(series, range, serverNow());
    const sum = (key) => points.reduce((s, p) => s + (p[key] || 0), 0);
    const step = series.bucket_s || 10;
    $("charts").replaceChildren(
      chart("Requests", exact(sum("requests")) + " · " + exact(sum("errors")) + " errors",
        [["req", "requests / " + step + " s"], ["err", "errors"]],
        bars(points, range, [{ key: "errors", cls: "b-err", label: "errors" }, { key: "ok", cls: "b-req", label: "ok" }]
          , exact)),
      chart("Tokens", num(sum("input_tokens")) + " in · " + num(sum("output_tokens")) + " out",
        [["in", "input"], ["out", "output"]],
        bars(points, range, [{ key: "input_tokens", cls: "b-in", label: "input" }, { key: "output_tokens", cls: "b-out", label: "output" }], num)),
      chart("Cost", cost(sum("cost_usd")), [["cost", "cumulative over the range"]], costLine(points, range)),
    );
  }

  function renderProviders(state) {
    const blocks = state.providers.map((p) => {
      const cooling = p.cooling || [];
      const health = cooling.length
        ? el("span", { class: "pill warn", text: cooling.length + " cooling" })
        : el("span", { class: "pill ok", text: "healthy" });
      return el("div", { class: "provider", "data-provider": p.name }, [
        el("div", { class: "provider-head" }, [
          el("span", { class: "provider-name", text: p.name }),
          el("span", { class: "pill", text: p.api_format }),
          health,
          el("span", { class: "provider-url", text: p.base_url }),
        ]),
        el("div", { class: "keys", text: p.keys.length + (p.keys.length === 1 ? " key: " : " keys: ") + p.keys.join(", ") }),
        cooling.length ? el("ul", { class: "cooling" }, cooling.map((c) => el("li", null, [
          el("span", { class: "mono", text: c.key }),
          el("span", { class: "what", title: c.model || null, text: c.model ? "for " + c.model : "all models" }),
          el("span", { class: "pill bad", text: String(c.status) }),
          el("span", { class: "muted when", title: "until " + clock(c.until), "data-left": c.seconds_left, text: "back in " + duration(Math.ceil(c.seconds_left)) }),
        ]))) : null,
      ]);
    });
    $("providers").replaceChildren(...(blocks.length ? blocks : [el("div", { class: "provider muted", text: "no provider configured" })]));
  }

  function renderAliases(state) {
    const all = $("all-aliases").checked;
    const rows = state.aliases.filter((a) => all || a.active).map((a) => el("tr", { class: a.active ? "" : "inactive" }, [
      el("td", { class: "model" }, [a.name, a.kind === "fallback" ? el("span", { class: "pill", text: "fallback" }) : null]),
      el("td", { class: a.resolves_to ? "model" : "bad", title: a.error || null, text: a.resolves_to || "unresolved" }),
      el("td", { class: "muted", text: a.source }),
    ]));
    fill($("aliases").tBodies[0], rows, 3, "no alias");
  }

  function renderErrors(state) {
    const rows = state.recent_errors.map((e) => el("tr", null, [
      el("td", { title: new Date(e.at * 1000).toLocaleString(), text: clock(e.at) }),
      el("td", { class: "id", text: e.request_id }),
      el("td", { text: e.requested || "–" }),
      el("td", { class: "model", text: e.provider ? modelName(e.provider, e.model) : "–" }),
      el("td", { class: "num bad", text: e.status }),
      el("td", { text: e.type || "–" }),
      el("td", { class: "wrap", text: e.message || "" }),
    ]));
    $("error-count").textContent = state.recent_errors.length ? "(" + state.recent_errors.length + ")" : "";
    fill($("errors").tBodies[0], rows, 7, "no error");
  }

  function renderSessions(state) {
    const rows = state.sessions.map((s) => el("tr", {
      class: "click" + (s.session === session ? " selected" : ""),
      "data-session": s.session,
      title: "filter the models table by this session",
      on: { click: () => selectSession(s.session === session ? null : s.session) },
    }, [
      el("td", { class: "id", text: s.session }),
      el("td", { class: "num", text: exact(s.requests) }),
      el("td", { class: "num" + (s.errors ? " bad" : ""), text: exact(s.errors) }),
      el("td", { class: "num", text: num(s.input_tokens) }),
      el("td", { class: "num", text: num(s.output_tokens) }),
      el("td", { class: "num", text: num(s.cache_read_input_tokens) }),
      el("td", { class: "num", text: exact(s.subagents) }),
      el("td", { class: "num", text: cost(s.cost_usd) }),
      el("td", { class: "list mono", title: (s.models || []).join("\n"), text: (s.models || []).join(", ") }),
      el("td", { class: "num", title: new Date(s.last_seen * 1000).toLocaleString(), text: ago(s.last_seen) }),
    ]));
    $("session-count").textContent = state.sessions.length ? "(" + state.sessions.length + ")" : "";
    fill($("sessions").tBodies[0], rows, 10, "no Claude Code session seen (sessions come from Claude Code's x-claude-code-session-id)");
  }

  function render(state) {
    current = state;
    receivedAt = performance.now();
    for (const p of (state.timeseries && state.timeseries.points) || []) p.ok = Math.max(0, p.requests - p.errors);
    renderHeader(state);
    renderCards(state);
    renderCharts(state);
    renderActive(state);
    renderModels(state);
    renderProviders(state);
    renderAliases(state);
    renderErrors(state);
    renderSessions(state);
    $("main").hidden = false;
    $("login").hidden = true;
    if (session) refreshSession();
  }

  // --- sessions filter ----------------------------------------------------------------------

  function selectSession(name) {
    session = name;
    sessionTotals = null;
    if (current) {
      renderModels(current);
      renderSessions(current);
    }
    if (name) refreshSession();
  }

  async function refreshSession() {
    if (sessionFetching || !session) return;
    sessionFetching = true;
    const asked = session;
    try {
      const response = await fetch(TOTALS_URL + "?session=" + encodeURIComponent(asked), { cache: "no-store" });
      if (response.ok && asked === session) {
        sessionTotals = await response.json();
        if (current) renderModels(current);
      }
    } catch (err) {
      // The next state refreshes it.
    } finally {
      sessionFetching = false;
    }
  }

  // --- feeds --------------------------------------------------------------------------------

  function connection(kind, text) {
    $("conn").className = "dot " + kind;
    $("conn-text").textContent = text;
  }

  async function fetchState() {
    const response = await fetch(STATE_URL, { cache: "no-store" });
    if (response.status === 401) {
      showLogin(null);
      return false;
    }
    if (!response.ok) throw new Error("HTTP " + response.status);
    render(await response.json());
    return true;
  }

  function openEvents() {
    if (source) source.close();
    const opened = (source = new EventSource(EVENTS_URL));
    opened.addEventListener("state", (event) => {
      sseFailures = 0;
      stopPolling();
      connection("live", "live");
      render(JSON.parse(event.data));
    });
    opened.addEventListener("error", () => {
      if (opened !== source) return;  // replaced or closed since
      sseFailures += 1;
      if (opened.readyState === EventSource.CLOSED || sseFailures >= SSE_FAILURES_BEFORE_POLLING) {
        opened.close();
        source = null;
        startPolling();
      } else {
        connection("poll", "reconnecting…");
      }
    });
  }

  function startPolling() {
    if (pollTimer) return;
    connection("poll", "polling");
    const started = performance.now();
    const poll = async () => {
      try {
        if (await fetchState()) connection("poll", "polling");
        else return stopPolling();
      } catch (err) {
        connection("down", "vdm unreachable");
      }
      if (performance.now() - started > SSE_RETRY_FROM_POLLING_MS) {
        stopPolling();
        sseFailures = 0;
        openEvents();
      }
    };
    pollTimer = setInterval(poll, POLL_MS);
  }

  function stopPolling() {
    if (pollTimer) clearInterval(pollTimer);
    pollTimer = null;
  }

  // --- login --------------------------------------------------------------------------------

  function showLogin(message) {
    if (source) source.close();
    source = null;
    stopPolling();
    connection("down", "locked");
    $("main").hidden = true;
    $("login").hidden = false;
    const error = $("login-error");
    error.textContent = message || "";
    error.hidden = !message;
    $("login-key").focus();
  }

  async function login(key) {
    const response = await fetch(LOGIN_URL, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": key },
      body: "{}",
      cache: "no-store",
    });
    return response.ok;
  }

  async function start() {
    // `vdm wrap --dashboard` prints …/dashboard/#key=TOKEN: trade it for the cookie, then
    // take it out of the address bar (and of the history).
    const match = /(?:^#|&)key=([^&]*)/.exec(location.hash);
    if (match) {
      history.replaceState(null, "", location.pathname + location.search);
      try {
        if (!(await login(decodeURIComponent(match[1])))) return showLogin("that link's key was not accepted");
      } catch (err) {
        connection("down", "vdm unreachable");
      }
    }
    try {
      if (!(await fetchState())) return;
      connection("poll", "connecting…");
      setTimeout(openEvents, SSE_DELAY_MS);
    } catch (err) {
      connection("down", "vdm unreachable");
      startPolling();
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const key = $("login-key").value.trim();
      if (!key) return;
      try {
        if (await login(key)) {
          $("login-key").value = "";
          start();
        } else {
          showLogin("wrong key");
        }
      } catch (err) {
        showLogin("vdm is unreachable");
      }
    });
    for (const button of document.querySelectorAll("#range button")) {
      button.addEventListener("click", () => {
        range = Number(button.getAttribute("data-range"));
        for (const b of document.querySelectorAll("#range button")) b.classList.toggle("on", b === button);
        if (current) renderCharts(current);
      });
    }
    $("all-aliases").addEventListener("change", () => current && renderAliases(current));
    setInterval(tick, 1000);
    start();
  });
})();
