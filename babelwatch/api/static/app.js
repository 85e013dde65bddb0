// babelwatch dashboard: plain DOM and SVG, no framework, no third-party code.
// The token is typed once and kept in sessionStorage (this tab only); it travels only in the
// Authorization header, never in a URL. Data never goes through innerHTML (textContent only).
"use strict";
(() => {
  const TOKEN_KEY = "babelwatch.token";
  const POLL_MS = 2000;
  const CONFIG_POLL_MS = 10000;
  const PALETTE = ["#0b57d0", "#a50e0e", "#0b6b2b", "#8a5a00", "#6a1b9a", "#00695c", "#ad1457", "#37474f", "#e65100", "#283593"];
  const $ = (id) => document.getElementById(id);
  const state = { token: sessionStorage.getItem(TOKEN_KEY), overview: null, topic: null, window: null,
                  samples: new Map(), samplesServed: true, timers: [], stream: null, feedCount: 0, updates: 0 };

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }

  class ApiError extends Error {
    constructor(status, message, detail) { super(message); this.status = status; this.detail = detail; }
  }

  function describe(detail) {
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail.map((d) => `${(d.loc || []).filter((x) => x !== "body").join(".")}: ${d.msg}`).join("\n");
    }
    return JSON.stringify(detail);
  }

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${state.token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                                     cache: "no-store", credentials: "omit" });
    if (resp.status === 204) return null;
    const data = await resp.json().catch(() => null);
    if (!resp.ok) {
      if (resp.status === 401) {  // unknown token: stop asking with it, ask for another
        forget(`Token refused (401): enter a valid API token.`, "bad");
      } else if (resp.status === 403) {
        setConn(`Not allowed with this token (403): ${describe(data && data.detail)}`, "bad");
      }
      throw new ApiError(resp.status, describe(data && data.detail !== undefined ? data.detail : resp.statusText), data);
    }
    return data;
  }

  function setConn(text, cls) {
    const c = $("conn");
    c.textContent = text;
    c.className = cls || "";
  }

  // ------------------------------------------------------------------------------------ charts
  function colour(lang, langs) { return PALETTE[langs.indexOf(lang) % PALETTE.length]; }

  function drawChart(target, series, langs, value, lo, hi) {
    const W = 600, H = 220, pad = 6;
    target.replaceChildren();
    if (lo !== 0 || hi !== 0) {
      const zero = H - pad - ((0 - lo) / (hi - lo || 1)) * (H - 2 * pad);
      target.append(svg("line", { class: "axis", x1: 0, x2: W, y1: zero, y2: zero }));
    }
    for (const s of series) {
      const n = s.points.length;
      const pts = [];
      s.points.forEach((p, i) => {
        const v = value(p);
        if (v === null || v === undefined) return;
        const x = n > 1 ? (i / (n - 1)) * W : W / 2;
        const y = H - pad - ((v - lo) / (hi - lo || 1)) * (H - 2 * pad);
        pts.push(`${x.toFixed(1)},${y.toFixed(1)}`);
      });
      if (!pts.length) continue;
      const line = svg("polyline", { points: pts.join(" "), stroke: colour(s.lang, langs), "data-lang": s.lang });
      const title = svg("title", {});
      title.textContent = s.lang === "*" ? "all languages" : s.lang;
      line.append(title);
      target.append(line);
    }
  }

  function renderTrends() {
    const ov = state.overview;
    const topics = [...new Set(ov.series.map((s) => s.topic))];
    const sel = $("topic");
    if (!state.topic || !topics.includes(state.topic)) state.topic = topics[0] || null;
    if (sel.options.length !== topics.length || [...sel.options].some((o, i) => o.value !== topics[i])) {
      sel.replaceChildren(...topics.map((t) => el("option", { value: t, text: t })));
    }
    if (state.topic) sel.value = state.topic;
    const wsel = $("window");
    if (wsel.options.length !== ov.windows.length) {
      wsel.replaceChildren(...ov.windows.map((w) => el("option", { value: w, text: windowLabel(w) })));
    }
    wsel.value = ov.window;
    const series = ov.series.filter((s) => s.topic === state.topic);
    const langs = series.map((s) => s.lang);
    const maxCount = Math.max(1, ...series.flatMap((s) => s.points.map((p) => p.count)));
    const vol = $("chart-volume"), sen = $("chart-sentiment");
    drawChart(vol, series, langs, (p) => p.count, 0, maxCount);
    drawChart(sen, series, langs, (p) => p.sentiment_mean, -1, 1);
    const total = series.reduce((a, s) => a + s.points.reduce((b, p) => b + p.count, 0), 0);
    state.updates += 1;
    vol.dataset.total = String(total);
    vol.dataset.updates = String(state.updates);
    vol.setAttribute("aria-label", `${state.topic || "no topic"}: ${total} events in the last ${series[0] ? series[0].points.length : 0} windows`);
    $("legend").replaceChildren(...series.map((s) => el("li", {}, el("i", { style: null, "data-c": colour(s.lang, langs) }),
      s.lang === "*" ? "all languages" : s.lang)));
    // colours set through the CSSOM: the page's CSP allows no inline style attributes
    for (const i of $("legend").querySelectorAll("i")) i.style.background = i.dataset.c;
  }

  function windowLabel(name) {
    const [size, hop] = name.split("/");
    return hop ? `${size} s every ${hop} s` : `${size} s`;
  }

  function heatColour(mean) {
    if (mean === null || mean === undefined) return "#f2f2f2";
    const m = Math.max(-1, Math.min(1, mean));
    const hue = m < 0 ? 0 : 130;
    const light = 96 - Math.abs(m) * 30; // stays >= 66 %: dark text keeps a contrast >= 4.5:1
    return `hsl(${hue}, 70%, ${light}%)`;
  }

  function renderHeatmap() {
    const ov = state.overview;
    const table = $("heatmap");
    const topics = [...new Set(ov.series.map((s) => s.topic))];
    const langs = [...new Set(ov.series.map((s) => s.lang))].sort((a, b) => (a === "*" ? -1 : b === "*" ? 1 : a.localeCompare(b)));
    const cell = new Map(ov.series.map((s) => [`${s.topic}\u0000${s.lang}`, s.points[s.points.length - 1]]));
    const caption = table.querySelector("caption");
    const head = el("tr", {}, el("th", { scope: "col", text: "topic" }),
      ...langs.map((l) => el("th", { scope: "col", text: l === "*" ? "all" : l })));
    const rows = topics.map((t) => el("tr", {}, el("th", { scope: "row", text: t }), ...langs.map((l) => {
      const p = cell.get(`${t}\u0000${l}`);
      const td = el("td", { "data-topic": t, "data-lang": l });
      if (p && p.count) {
        td.append(String(p.count), el("small", { text: p.sentiment_mean === null ? "" : (p.sentiment_mean >= 0 ? "+" : "") + p.sentiment_mean.toFixed(2) }));
        td.dataset.bg = heatColour(p.sentiment_mean);
      } else {
        td.append("·");
        td.dataset.bg = heatColour(null);
      }
      return td;
    })));
    table.replaceChildren(caption, el("thead", {}, head), el("tbody", {}, ...rows));
    for (const td of table.querySelectorAll("td")) td.style.background = td.dataset.bg;
  }

  function renderHealth() {
    const ov = state.overview;
    const dl = $("health");
    const dead = ov.dead_letters;
    const deadText = dead === null ? "not read by this process (served by babelwatch notify)"
      : (Object.values(dead).reduce((a, b) => a + b, 0) + (Object.keys(dead).length
        ? " (" + Object.entries(dead).map(([k, v]) => `${k}: ${v}`).join(", ") + ")" : ""));
    const items = [["dead letters", deadText], ["late events", String(ov.stats.late || 0)]];
    for (const [k, v] of Object.entries(ov.stats)) if (k !== "late") items.push([k.replace(/_/g, " "), String(v)]);
    items.push(["updated", new Date(ov.now * 1000).toLocaleTimeString()]);
    dl.replaceChildren(...items.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v, "data-stat": k })]));
  }

  // ------------------------------------------------------------------------------------ alerts
  function labelChips(labels) {
    return el("ul", { class: "chips", "aria-label": "labels" },
      ...Object.entries(labels).map(([k, v]) => el("li", { text: `${k}=${v}` })));
  }

  function sampleItem(id) {
    const s = state.samples.get(id);
    if (!s) return el("li", { class: "sample", "data-id": id }, el("span", { text: `event ${id} (no longer kept)` }));
    const li = el("li", { class: "sample", "data-id": id });
    if (s.thumbnail) li.append(el("img", { src: s.thumbnail, alt: `image of event ${id}`, width: "64", height: "64" }));
    li.append(el("div", {}, el("span", { class: "lang", text: s.lang || "?" }), " ",
      el("span", { class: "text", lang: s.lang || undefined, text: s.text || "(no text)" }),
      s.label ? el("small", { text: ` — ${s.label}` }) : null));
    return li;
  }

  async function renderAlerts(active) {
    const want = [...new Set(active.flatMap((a) => (a.annotations.sample_events || [])))].filter((id) => !state.samples.has(id));
    if (want.length && state.samplesServed) {
      try {
        const qs = want.slice(0, 20).map((id) => `id=${encodeURIComponent(id)}`).join("&");
        for (const s of await api("GET", `/v1/samples?${qs}`)) state.samples.set(s.id, s);
      } catch (e) {
        if (e.status === 404) state.samplesServed = false;
      }
    }
    const box = $("alerts");
    if (!active.length) { box.replaceChildren(el("p", { text: "None." })); return; }
    box.replaceChildren(...active.map((a) => {
      const ann = a.annotations || {};
      const samples = ann.sample_events || [];
      return el("article", { class: `alert ${a.state}`, "data-fingerprint": a.fingerprint, "data-topic": a.labels.topic,
                             "aria-label": `${a.state} alert ${a.labels.detector || ""} on ${a.labels.topic}` },
        el("strong", { text: `${a.state.toUpperCase()} · ${a.labels.topic} [${a.labels.language}] · ${a.labels.severity || ""}` }),
        labelChips(a.labels),
        el("p", { text: ann.summary || "" }),
        el("p", { class: "hint", text: `value ${fmt(ann.value)}, baseline ${fmt(ann.baseline)}, score ${fmt(ann.score)} (threshold ${fmt(ann.threshold)})` }),
        samples.length ? el("ul", { class: "samples", "aria-label": "sample events" }, ...samples.map(sampleItem)) : null);
    }));
  }

  function fmt(v) { return typeof v === "number" ? (Math.round(v * 100) / 100).toString() : (v ?? "–"); }

  // ---------------------------------------------------------------------------- live feed (SSE)
  // fetch + a stream reader instead of EventSource: EventSource cannot send the Authorization header
  async function openFeed() {
    const status = $("feed-status");
    const ctrl = new AbortController();
    state.stream = ctrl;
    let delay = 1000;
    while (!ctrl.signal.aborted) {
      try {
        const resp = await fetch("/v1/alerts/stream?heartbeat_s=10", { headers: { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" },
                                                                      signal: ctrl.signal, cache: "no-store" });
        if (resp.status === 404) { status.textContent = "No live feed here: it is served by `babelwatch notify`."; return; }
        if (resp.status === 401) { forget("Token refused (401): enter a valid API token.", "bad"); return; }
        if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
        status.textContent = "Live: new alerts appear below as they fire and resolve.";
        status.dataset.live = "1";
        delay = 1000;
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            handleSse(buf.slice(0, cut));
            buf = buf.slice(cut + 2);
          }
        }
      } catch (e) {
        if (ctrl.signal.aborted) return;
        status.textContent = `Live feed interrupted (${e.message}); reconnecting.`;
      }
      status.dataset.live = "0";
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 15000);
    }
  }

  function handleSse(block) {
    let type = "message"; const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) type = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (!data.length || type === "heartbeat") return;
    let ev;
    try { ev = JSON.parse(data.join("\n")); } catch { return; }
    const d = ev.data || {};
    const lab = d.labels || {};
    const st = String(ev.type || type).split(".").pop();
    state.feedCount += 1;
    const li = el("li", { "data-state": st, "data-topic": lab.topic || "" },
      el("span", { class: st === "resolved" ? "resolved" : "firing", text: st }), " ",
      el("span", { text: `${new Date().toLocaleTimeString()} ${lab.topic || ""} [${lab.language || ""}] ${lab.detector || ""} — ${(d.annotations || {}).summary || ""}` }));
    const feed = $("feed");
    feed.prepend(li);
    while (feed.children.length > 100) feed.lastElementChild.remove();
    refresh().catch(() => {});
  }

  // ----------------------------------------------------------------------- silences, subscriptions
  function when(ts) { return new Date(ts * 1000).toLocaleString(); }

  function silenceState(s, now) { return now < s.starts_at ? "pending" : now < s.ends_at ? "active" : "expired"; }

  async function loadSilences() {
    const list = await api("GET", "/v1/silences");
    const now = Date.now() / 1000;
    const table = $("silences");
    const caption = table.querySelector("caption");
    const head = el("tr", {}, ...["state", "matchers", "until", "by", "comment", ""].map((h) => el("th", { scope: "col", text: h })));
    const rows = list.sort((a, b) => b.starts_at - a.starts_at).map((s) => {
      const st = silenceState(s, now);
      const btn = st === "expired" ? "" : el("button", { type: "button", class: "secondary", "data-expire": s.id,
                                                          "aria-label": `Expire silence ${s.id}`, text: "Expire" });
      return el("tr", { "data-silence": s.id, "data-state": st }, el("td", { text: st }),
        el("td", {}, el("code", { text: s.matchers.map((m) => `${m.name}${m.op}${JSON.stringify(m.value)}`).join(", ") })),
        el("td", { text: when(s.ends_at) }), el("td", { text: s.created_by }), el("td", { text: s.comment || "" }), el("td", {}, btn));
    });
    table.replaceChildren(caption, el("thead", {}, head), el("tbody", {}, ...rows));
  }

  async function loadSubscriptions() {
    const list = await api("GET", "/v1/subscriptions");
    const table = $("subscriptions");
    const caption = table.querySelector("caption");
    const head = el("tr", {}, ...["id", "matchers", "receivers", ""].map((h) => el("th", { scope: "col", text: h })));
    const rows = list.map((r) => el("tr", { "data-subscription": r.id }, el("td", { text: r.id }),
      el("td", {}, el("code", { text: r.matchers.map((m) => `${m.name}${m.op}${JSON.stringify(m.value)}`).join(", ") || "(all)" })),
      el("td", { text: r.receivers.map((x) => `${x.type}${x.url ? " " + x.url : x.channel ? " " + x.channel : x.topic ? " " + x.topic : ""}`).join("; ") }),
      el("td", {}, el("button", { type: "button", class: "secondary", "data-delete": r.id, "aria-label": `Delete subscription ${r.id}`, text: "Delete" }))));
    table.replaceChildren(caption, el("thead", {}, head), el("tbody", {}, ...rows));
  }

  async function createSilence(ev) {
    ev.preventDefault();
    const err = $("sil-error");
    err.textContent = "";
    const matchers = $("sil-matchers").value.split("\n").map((x) => x.trim()).filter(Boolean);
    const now = Date.now() / 1000;
    const body = { matchers, starts_at: now, ends_at: now + Number($("sil-duration").value),
                   created_by: $("sil-by").value.trim(), comment: $("sil-comment").value };
    try {
      // the API validates (matcher syntax, label names, RE2 regexes) and its 422 is shown as is
      const s = await api("POST", "/v1/silences", body);
      $("sil-matchers").value = "";
      err.textContent = "";
      $("sil-error").dataset.created = s.id;
      await loadSilences();
    } catch (e) {
      err.textContent = `Not created: ${e.message}`;
    }
  }

  async function createSubscription(ev) {
    ev.preventDefault();
    const err = $("sub-error");
    err.textContent = "";
    let body;
    try { body = JSON.parse($("sub-json").value); } catch (e) { err.textContent = `Not JSON: ${e.message}`; return; }
    try {
      await api("POST", "/v1/subscriptions", body);
      await loadSubscriptions();
    } catch (e) {
      err.textContent = `Not created: ${e.message}`;
    }
  }

  async function onClick(ev) {
    const t = ev.target;
    if (!(t instanceof HTMLButtonElement)) return;
    try {
      if (t.dataset.expire) { await api("DELETE", `/v1/silences/${encodeURIComponent(t.dataset.expire)}`); await loadSilences(); }
      if (t.dataset.delete) { await api("DELETE", `/v1/subscriptions/${encodeURIComponent(t.dataset.delete)}`); await loadSubscriptions(); }
    } catch (e) {
      setConn(`Request failed: ${e.message}`, "bad");
    }
  }

  // ------------------------------------------------------------------------------- stories
  // the chosen topic's stories (GET /v1/stories), redrawn only when they change (focus and
  // screen readers are not disturbed every poll)
  const STORY_LIMIT = 10;

  function signed(v) { return (v >= 0 ? "+" : "") + v.toFixed(2); }
  function plural(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }

  function safeLink(link) {  // only web links become anchors; anything else (a source name) stays text
    try { const u = new URL(link); return ["http:", "https:"].includes(u.protocol) ? u.href : null; } catch { return null; }
  }

  function sentimentBars(st) {
    const langs = st.languages.filter((l) => st.sentiment[l] !== undefined);
    const W = 420, row = 20, label = 60, H = row * langs.length + 4, mid = label + (W - label - 60) / 2, half = (W - label - 60) / 2;
    const g = svg("svg", { class: "sentiment", viewBox: `0 0 ${W} ${H}`, role: "img",
      "aria-label": "mean sentiment per language: " + langs.map((l) => `${l} ${signed(st.sentiment[l])}`).join(", ") });
    g.append(svg("line", { class: "axis", x1: mid, x2: mid, y1: 0, y2: H }));
    langs.forEach((l, i) => {
      const v = Math.max(-1, Math.min(1, st.sentiment[l])), y = 2 + i * row;
      const t = svg("text", { x: 0, y: y + 14, "font-size": 13 }); t.textContent = l;
      const w = Math.abs(v) * half;
      const bar = svg("rect", { x: v < 0 ? mid - w : mid, y: y + 3, width: Math.max(w, 1), height: row - 8,
                                fill: v < 0 ? "#a50e0e" : "#0b6b2b", "data-lang": l });
      const n = svg("text", { x: W - 55, y: y + 14, "font-size": 13 }); n.textContent = signed(v);
      g.append(t, bar, n);
    });
    return g;
  }

  function storyCard(st) {
    const since = new Date(st.first_seen * 1000).toLocaleTimeString(), last = new Date(st.last_seen * 1000).toLocaleTimeString();
    const reps = st.languages.filter((l) => st.representatives[l]).map((l) => {
      const r = st.representatives[l], s = st.sentiment[l] ?? 0, href = r.link ? safeLink(r.link) : null;
      return el("li", { class: s < -0.05 ? "neg" : s > 0.05 ? "pos" : "", "data-lang": l },
        el("span", { class: "lang", text: l }), " ", el("small", { text: `${plural(st.counts[l], "event")}, sentiment ${signed(s)}` }),
        el("blockquote", { class: "text", lang: l === "und" ? undefined : l, text: r.text }),
        href ? el("a", { href, rel: "noopener noreferrer nofollow", target: "_blank", text: `event ${r.id}` })
             : el("small", { text: `event ${r.id}${r.link ? " · " + r.link : ""}` }));
    });
    return el("article", { class: "story", "data-story": st.id, "aria-labelledby": `story-${st.id}` },
      el("h3", { id: `story-${st.id}`, text: `${plural(st.count, "event")} in ${plural(st.languages.length, "language")} (${st.languages.join(", ")})` }),
      el("p", { class: "hint", text: `${since} – ${last} · growing ${st.rate_per_min.toFixed(2)} events/min · id ${st.id}` }),
      sentimentBars(st),
      el("ul", { class: "reps", "aria-label": "representative text per language" }, ...reps));
  }

  async function loadStories() {
    const topic = state.topic;
    if (!topic) return;
    const list = await api("GET", `/v1/stories?topic=${encodeURIComponent(topic)}&limit=${STORY_LIMIT}`);
    if (topic !== state.topic) return;  // the topic changed while this was on its way
    const sig = topic + JSON.stringify(list);
    const box = $("stories");
    box.dataset.updates = String(Number(box.dataset.updates || 0) + 1);
    if (sig === state.storiesSig) return;
    state.storiesSig = sig;
    $("stories-status").textContent = list.length ? `${list.length} active ${list.length === 1 ? "story" : "stories"} for ${topic}.`
      : `No active stories for ${topic}.`;
    box.replaceChildren(...list.map(storyCard));
  }

  // -------------------------------------------------------------------------------- wiring
  async function refresh() {
    const qs = state.window ? `?window=${encodeURIComponent(state.window)}` : "";
    const [ov, active] = await Promise.all([api("GET", `/v1/overview${qs}`), api("GET", "/v1/alerts/active")]);
    state.overview = ov;
    renderTrends();
    renderHeatmap();
    renderHealth();
    await renderAlerts(active);
    // stories come from a newer API: their failure is shown there and leaves the rest of the page be
    await loadStories().catch((e) => { if (e.status !== 401) $("stories-status").textContent = `Stories not available: ${e.message}`; });
    setConn("Connected.", "ok");
  }

  function every(ms, fn) {
    const tick = () => fn().catch((e) => { if (e.status !== 401 && e.status !== 403) setConn(`Update failed: ${e.message}`, "bad"); });
    tick();
    state.timers.push(setInterval(tick, ms));
  }

  function start() {
    stop();
    $("forget").hidden = false;
    $("token-form").hidden = true;
    setConn("Connecting…");
    every(POLL_MS, refresh);
    every(CONFIG_POLL_MS, () => Promise.all([loadSilences(), loadSubscriptions()]));
    openFeed();
  }

  function forget(message, cls) {
    stop();
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    $("forget").hidden = true;
    $("token-form").hidden = false;
    setConn(message, cls);
    $("token").focus();
  }

  function stop() {
    for (const t of state.timers) clearInterval(t);
    state.timers = [];
    if (state.stream) state.stream.abort();
    state.stream = null;
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const value = $("token").value.trim();
      if (!value) return;
      state.token = value;
      sessionStorage.setItem(TOKEN_KEY, value);
      $("token").value = "";
      start();
    });
    $("forget").addEventListener("click", () => forget("Not connected: enter an API token."));
    $("topic").addEventListener("change", (ev) => { state.topic = ev.target.value; if (state.overview) { renderTrends(); loadStories().catch(() => {}); } });
    $("window").addEventListener("change", (ev) => { state.window = ev.target.value; refresh().catch(() => {}); });
    $("silence-form").addEventListener("submit", createSilence);
    $("sub-form").addEventListener("submit", createSubscription);
    document.addEventListener("click", onClick);
    if (state.token) start();
  });
})();
