// Community spaces dashboard: fetches /api/*, draws the chart by hand (SVG) and refreshes
// whenever /api/events (server-sent events) says the data changed. No dependencies.
"use strict";

const state = {
  center: null, month: null, centers: [], usage: null, occupancy: null, heatmapScope: "center",
};
const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg";

const nf = new Intl.NumberFormat("ko-KR");
const nf1 = new Intl.NumberFormat("ko-KR", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const fmtInt = (v) => nf.format(v);
const fmtHours = (v) => nf1.format(v);
const fmtPct = (v) => nf1.format(v * 100) + "%";
// A rate that may not exist (no booking reached its start): a dash.
const fmtRate = (v) => (v === null || v === undefined ? "—" : fmtPct(v));

// When the month's peak was first reached, in the room's local time: the value carries the
// local offset, so the wall-clock digits are read from the string (not the browser's zone).
function fmtPeakAt(agg) {
  if (agg.peak_at) {
    const day = Number(agg.peak_at.slice(8, 10));
    return `${day}일 ${agg.peak_at.slice(11, 16)}`;
  }
  if (agg.peak_hour !== null && agg.peak_hour !== undefined) return `${agg.peak_hour}시`;
  return "—";
}

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of [].concat(children)) node.append(c);
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

function badge(text, kind, title) {
  return el("span", { class: `badge ${kind}`, text, title: title || text });
}

function statusBadges(agg) {
  const out = [];
  if (agg.final) out.push(badge("마감", "final", "final: the month is closed"));
  if (agg.revised_after_close) {
    out.push(badge("수정됨", "revised", "revised after close (revision " + agg.revision + ")"));
  }
  return out;
}

// --- URL state ------------------------------------------------------------------------

function readUrl() {
  const params = new URLSearchParams(location.search);
  return { center: params.get("center"), month: params.get("month") };
}

function writeUrl() {
  const params = new URLSearchParams();
  if (state.center) params.set("center", state.center);
  if (state.month) params.set("month", state.month);
  history.replaceState(null, "", "?" + params.toString());
}

// --- loading --------------------------------------------------------------------------

async function loadCenters() {
  const data = await getJSON("/api/centers");
  state.centers = data.centers;
  const select = $("center-select");
  select.replaceChildren(
    ...data.centers.map((c) =>
      el("option", { value: c.center_id, text: `${c.name || c.center_id} (${c.rooms}개 공간)` })
    )
  );
  const wanted = readUrl();
  const ids = data.centers.map((c) => c.center_id);
  state.center = ids.includes(wanted.center) ? wanted.center : ids[0] || null;
  state.month = wanted.month || state.month || data.current_month;
  select.value = state.center || "";
  $("month-input").value = state.month;
}

async function refresh() {
  if (!state.center) {
    showError("아직 데이터가 없습니다 · nothing read from usage-monthly or occupancy yet");
    return;
  }
  const q = `center=${encodeURIComponent(state.center)}&month=${encodeURIComponent(state.month)}`;
  try {
    const [usage, occ] = await Promise.all([
      getJSON(`/api/usage?${q}`),
      getJSON(`/api/occupancy?center=${encodeURIComponent(state.center)}`),
    ]);
    state.usage = usage;
    state.occupancy = occ;
    showError("");
    render();
  } catch (error) {
    showError(String(error.message || error));
  }
}

let pending = null;
function scheduleRefresh() {
  clearTimeout(pending);
  pending = setTimeout(refresh, 150);
}

// --- rendering ------------------------------------------------------------------------

function render() {
  const u = state.usage;
  $("csv-link").href = `/api/usage.csv?center=${encodeURIComponent(u.center_id)}&month=${u.month}`;
  $("csv-link").setAttribute("download", `usage-${u.center_id}-${u.month}.csv`);
  $("report-link").href =
    `/report?center=${encodeURIComponent(u.center_id)}&month=${encodeURIComponent(u.month)}`;
  renderHead(u);
  renderKpis(u.center);
  renderChart(u.months, u.month);
  renderRooms(u);
  renderHeatmapCard(u);
  renderOccupancy(state.occupancy.rooms);
  const now = new Date();
  $("updated").textContent = "갱신 " + now.toLocaleTimeString("ko-KR", { hour12: false });
  $("main").dataset.center = u.center_id;
  $("main").dataset.month = u.month;
  $("main").dataset.renders = String(Number($("main").dataset.renders || 0) + 1);
}

function renderHead(u) {
  const [y, m] = u.month.split("-");
  // The center's name (from the occupancy topic); its id only when no room gave one.
  $("month-title").textContent = `${u.center_name || u.center_id} · ${y}년 ${Number(m)}월`;
  $("month-title").title = u.center_id;
  const status = $("month-status");
  const parts = statusBadges(u.center);
  if (!u.center.final) parts.push(badge("집계 중", "open", "open month: figures still change"));
  if (!u.center.has_data) parts.push(badge("데이터 없음", "empty", "no usage-monthly value yet"));
  status.replaceChildren(...parts);
}

function renderKpis(c) {
  const cards = [
    ["visits", "방문", "Visits", fmtInt(c.visits), "명"],
    ["booked_hours", "예약 시간", "Booked hours", fmtHours(c.booked_hours), "시간"],
    ["utilization", "예약 가동률", "Booked utilization", fmtPct(c.utilization),
      `운영 ${fmtHours(c.open_hours)}h 중`],
    ["occupancy_utilization", "재실률", "Occupancy utilization", fmtPct(c.occupancy_utilization),
      `재실 ${fmtHours(c.person_hours)}인·h / 정원 ${fmtHours(c.capacity_hours)}인·h`],
    ["bookings_confirmed", "확정 예약", "Bookings", fmtInt(c.bookings_confirmed),
      `취소 ${fmtInt(c.bookings_cancelled)} · 노쇼 ${fmtInt(c.no_shows)} (${fmtRate(c.no_show_rate)})`],
    ["unique_members", "이용 회원", "Unique members", fmtInt(c.unique_members), "명"],
    ["peak_occupancy", "최대 재실", "Peak occupancy", fmtInt(c.peak_occupancy),
      `명 동시 · ${fmtPeakAt(c)}`],
  ];
  $("kpis").replaceChildren(
    ...cards.map(([field, ko, en, value, note]) =>
      el("div", { class: "kpi", "data-field": field, "data-value": String(c[field]) }, [
        el("div", { class: "kpi-label" }, [ko, el("small", { text: en })]),
        el("div", { class: "kpi-value", text: value }),
        el("div", { class: "kpi-note", text: note }),
      ])
    )
  );
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const exp = Math.pow(10, Math.floor(Math.log10(value)));
  for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * exp) return step * exp;
  return 10 * exp;
}

function renderChart(months, selected) {
  const W = 760, H = 324;
  const left = 48, right = 48, top = 26;
  const panel = 112, gap = 40;
  const innerW = W - left - right;
  const slot = innerW / months.length;
  const visitsMax = niceMax(Math.max(...months.map((m) => m.visits)));
  const hoursMax = niceMax(Math.max(...months.map((m) => m.booked_hours)));
  const utilMax = niceMax(Math.max(...months.map((m) => Math.max(m.utilization, m.occupancy_utilization))));
  const yA = (v) => top + panel - (v / visitsMax) * panel;
  const topB = top + panel + gap;
  const yB = (v) => topB + panel - (v / hoursMax) * panel;
  const yU = (v) => topB + panel - (v / utilMax) * panel;

  const root = svg("svg", {
    id: "chart-svg", viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": "visits, booked hours, booked and occupancy utilization over the last 12 months",
  });

  // Selected month backdrop.
  months.forEach((m, i) => {
    if (m.month === selected) {
      root.append(svg("rect", {
        class: "selected-col", x: left + i * slot + 2, y: top - 8, width: slot - 4,
        height: topB + panel - top + 30, rx: 6,
      }));
    }
  });

  // Grid lines and axes.
  for (const f of [0, 0.5, 1]) {
    const ya = top + panel - f * panel, yb = topB + panel - f * panel;
    root.append(svg("line", { class: "grid", x1: left, x2: W - right, y1: ya, y2: ya }));
    root.append(svg("line", { class: "grid", x1: left, x2: W - right, y1: yb, y2: yb }));
    root.append(svg("text", { class: "axis", x: left - 6, y: ya + 4, "text-anchor": "end" },
      fmtInt(f * visitsMax)));
    root.append(svg("text", { class: "axis", x: left - 6, y: yb + 4, "text-anchor": "end" },
      fmtInt(f * hoursMax)));
    root.append(svg("text", { class: "axis util", x: W - right + 6, y: yb + 4 },
      Math.round(f * utilMax * 100) + "%"));
  }
  root.append(svg("text", { class: "panel-title", x: left, y: top - 14 }, "방문 Visits"));
  root.append(svg("text", { class: "panel-title", x: left, y: topB - 14 },
    "예약 시간 Booked hours · 예약 가동률 Booked · 재실률 Occupancy"));

  const barW = Math.min(30, slot * 0.56);
  const points = [];
  months.forEach((m, i) => {
    const cx = left + i * slot + slot / 2;
    const title = `${m.month}\n방문 ${fmtInt(m.visits)} · 예약 ${fmtHours(m.booked_hours)}h · ` +
      `예약 가동률 ${fmtPct(m.utilization)} · 재실률 ${fmtPct(m.occupancy_utilization)}`;
    const onClick = () => selectMonth(m.month);

    const va = svg("rect", {
      class: "bar visits" + (m.has_data ? "" : " empty"), x: cx - barW / 2, y: yA(m.visits),
      width: barW, height: Math.max(0, top + panel - yA(m.visits)), rx: 3,
      "data-month": m.month, "data-visits": String(m.visits),
    });
    va.append(svg("title", {}, title));
    va.addEventListener("click", onClick);
    root.append(va);
    if (m.visits > 0) {
      root.append(svg("text", { class: "bar-label", x: cx, y: yA(m.visits) - 4,
        "text-anchor": "middle" }, fmtInt(m.visits)));
    }

    const hb = svg("rect", {
      class: "bar hours" + (m.has_data ? "" : " empty"), x: cx - barW / 2, y: yB(m.booked_hours),
      width: barW, height: Math.max(0, topB + panel - yB(m.booked_hours)), rx: 3,
      "data-month": m.month, "data-booked-hours": String(m.booked_hours),
    });
    hb.append(svg("title", {}, title));
    hb.addEventListener("click", onClick);
    root.append(hb);
    points.push([cx, yU(m.utilization), m, yU(m.occupancy_utilization)]);

    const [y, mo] = m.month.split("-");
    const label = svg("text", { class: "month-label" + (m.month === selected ? " on" : ""),
      x: cx, y: topB + panel + 16, "text-anchor": "middle" }, `${Number(mo)}월`);
    root.append(label);
    if (i === 0 || mo === "01") {
      root.append(svg("text", { class: "year-label", x: cx, y: topB + panel + 28,
        "text-anchor": "middle" }, y));
    }
  });

  // Each line runs through months that have figures; a month without any breaks it.
  // Booked utilization (util) and occupancy utilization (occ) share the right axis.
  const line = (cls, yOf) => {
    let run = [];
    const flush = () => {
      if (run.length > 1) {
        root.append(svg("polyline", {
          class: cls, points: run.map((p) => `${p[0]},${yOf(p)}`).join(" "),
        }));
      }
      run = [];
    };
    for (const point of points) {
      if (point[2].has_data) run.push(point);
      else flush();
    }
    flush();
  };
  line("util-line", (p) => p[1]);
  line("occ-line", (p) => p[3]);
  for (const [x, y, m, yOcc] of points) {
    const dot = svg("circle", {
      class: "util-point" + (m.has_data ? "" : " empty"), cx: x, cy: y, r: 3.5,
      "data-month": m.month, "data-utilization": String(m.utilization),
    });
    dot.append(svg("title", {}, `${m.month} 예약 가동률 ${fmtPct(m.utilization)}`));
    root.append(dot);
    const occ = svg("circle", {
      class: "occ-point" + (m.has_data ? "" : " empty"), cx: x, cy: yOcc, r: 3.5,
      "data-month": m.month, "data-occupancy-utilization": String(m.occupancy_utilization),
    });
    occ.append(svg("title", {}, `${m.month} 재실률 ${fmtPct(m.occupancy_utilization)}`));
    root.append(occ);
  }
  $("chart").replaceChildren(root);
}

function cell(field, value, text, cls = "") {
  return el("td", { "data-field": field, "data-value": String(value), class: cls, text });
}

function meterCell(field, value, cls) {
  const td = el("td", { "data-field": field, "data-value": String(value), class: cls });
  const meter = el("span", { class: "meter" }, [
    el("span", { style: `width:${Math.min(100, value * 100).toFixed(1)}%` }),
  ]);
  td.append(meter, el("span", { class: "num", text: fmtPct(value) }));
  return td;
}

function usageCells(a) {
  return [
    cell("visits", a.visits, fmtInt(a.visits)),
    cell("bookings_confirmed", a.bookings_confirmed, fmtInt(a.bookings_confirmed)),
    cell("bookings_cancelled", a.bookings_cancelled, fmtInt(a.bookings_cancelled)),
    cell("no_shows", a.no_shows, fmtInt(a.no_shows)),
    cell("no_show_rate", a.no_show_rate ?? "", fmtRate(a.no_show_rate)),
    cell("bookings_rejected", a.bookings_rejected, fmtInt(a.bookings_rejected)),
    cell("booked_hours", a.booked_hours, fmtHours(a.booked_hours)),
    cell("open_hours", a.open_hours, fmtHours(a.open_hours)),
    meterCell("utilization", a.utilization, "util"),
    meterCell("occupancy_utilization", a.occupancy_utilization, "util occ"),
    cell("checkins_denied", a.checkins_denied, fmtInt(a.checkins_denied)),
    cell("unique_members", a.unique_members, fmtInt(a.unique_members)),
    cell("peak_occupancy", a.peak_occupancy, fmtInt(a.peak_occupancy)),
    cell("peak_at", a.peak_at ?? "", fmtPeakAt(a)),
  ];
}

function renderRooms(u) {
  const table = $("rooms-table");
  const rows = u.rooms.map((r) => {
    const name = el("td", { class: "left room", "data-field": "name" }, [
      el("div", { class: "room-name", text: r.name }),
      el("div", { class: "room-meta" }, [
        el("span", { text: `${r.room_id} · 정원 ${r.capacity}` }), ...statusBadges(r),
      ]),
    ]);
    return el("tr", { "data-room": r.room_id, class: r.has_data ? "" : "no-data" },
      [name, ...usageCells(r)]);
  });
  if (!rows.length) {
    rows.push(el("tr", {}, [el("td", { colspan: "15", class: "empty-row", text: "공간이 없습니다 · no rooms" })]));
  }
  table.tBodies[0].replaceChildren(...rows);
  const total = el("tr", { "data-room": "__total__", class: "total" }, [
    el("td", { class: "left", "data-field": "name" }, [
      el("div", { class: "room-name", text: "합계 Total" }),
      el("div", { class: "room-meta" }, statusBadges(u.center)),
    ]),
    ...usageCells(u.center),
  ]);
  table.tFoot.replaceChildren(total);
  table.dataset.month = u.month;
  table.dataset.center = u.center_id;
  $("rooms-caption").textContent = `${u.rooms.length}개 공간 · ${u.month}`;
}

function renderOccupancy(rooms) {
  let people = 0, seats = 0, latest = "";
  const items = rooms.map((r) => {
    people += r.occupancy;
    seats += r.capacity;
    const ratio = r.capacity > 0 ? r.occupancy / r.capacity : 0;
    const level = ratio >= 0.9 ? "high" : ratio >= 0.6 ? "mid" : "low";
    if (r.as_of && r.as_of > latest) latest = r.as_of;
    const time = r.as_of ? new Date(r.as_of).toLocaleString("ko-KR", { hour12: false }) : "";
    return el("div", {
      class: `occ ${level}`, "data-room": r.room_id,
      "data-occupancy": String(r.occupancy), "data-capacity": String(r.capacity),
    }, [
      el("div", { class: "occ-head" }, [
        el("span", { class: "occ-name", text: r.name }),
        el("span", { class: "occ-count" }, [
          el("b", { text: fmtInt(r.occupancy) }), ` / ${fmtInt(r.capacity)}`,
          el("span", { class: "occ-pct", text: `${Math.round(ratio * 100)}%` }),
        ]),
      ]),
      el("div", { class: "occ-bar", title: `as of ${time}` }, [
        el("span", { style: `width:${Math.min(100, ratio * 100).toFixed(1)}%` }),
      ]),
    ]);
  });
  if (!items.length) items.push(el("p", { class: "muted", text: "공간이 없습니다 · no rooms" }));
  $("occupancy").replaceChildren(...items);
  $("occupancy-total").textContent = `${fmtInt(people)} / ${fmtInt(seats)}명`;
  $("occupancy-asof").textContent = latest
    ? "기준 " + new Date(latest).toLocaleString("ko-KR", {
      month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit", hour12: false,
    })
    : "";
}

function renderHeatmapCard(u) {
  const select = $("heatmap-scope");
  const options = [["center", `${u.center_name || u.center_id} 전체 · all rooms`],
    ...u.rooms.map((r) => [r.room_id, r.name])];
  if (!options.some(([v]) => v === state.heatmapScope)) state.heatmapScope = "center";
  select.replaceChildren(...options.map(([value, text]) => el("option", { value, text })));
  select.value = state.heatmapScope;
  const agg = state.heatmapScope === "center"
    ? u.center : u.rooms.find((r) => r.room_id === state.heatmapScope);
  const box = $("heatmap");
  const max = renderHeatmap(box, agg.occupancy_by_weekday_hour, `heatmap ${state.heatmapScope}`);
  box.dataset.scope = state.heatmapScope;
  box.dataset.month = u.month;
  $("heatmap-max").textContent = `${fmtHours(max)}명`;
}

// --- interaction & live updates -------------------------------------------------------

function selectMonth(month) {
  if (!month || month === state.month) return;
  state.month = month;
  $("month-input").value = month;
  writeUrl();
  refresh();
}

function connectLive() {
  if (!window.EventSource) return;
  const source = new EventSource("/api/events");
  const live = $("live");
  source.onopen = () => {
    live.className = "live on";
    $("live-text").textContent = "실시간 Live";
  };
  source.onerror = () => {
    live.className = "live off";
    $("live-text").textContent = "재연결 중…";
  };
  // A room's new figure, pushed by the occupancy subscriber: drawn at once, no refetch.
  source.addEventListener("occupancy", (event) => {
    const room = JSON.parse(event.data);
    if (!state.occupancy || room.center_id !== state.center) return;
    const rooms = state.occupancy.rooms;
    const i = rooms.findIndex((r) => r.room_id === room.room_id);
    if (i < 0) {
      scheduleRefresh();  // a new room: its usage row too
      return;
    }
    rooms[i] = { ...rooms[i], ...room };
    renderOccupancy(rooms);
    $("live").dataset.version = String(room.version);
  });
  source.addEventListener("update", (event) => {
    // The first event after (re)connecting carries the current version: refetch then too,
    // so nothing written between the page load and the connection is missed.
    const { version } = JSON.parse(event.data);
    if (state.version !== version) scheduleRefresh();
    state.version = version;
    $("live").dataset.version = version;
  });
}

async function main() {
  $("center-select").addEventListener("change", (e) => {
    state.center = e.target.value;
    writeUrl();
    refresh();
  });
  $("month-input").addEventListener("change", (e) => selectMonth(e.target.value));
  $("heatmap-scope").addEventListener("change", (e) => {
    state.heatmapScope = e.target.value;
    if (state.usage) renderHeatmapCard(state.usage);
  });
  try {
    await loadCenters();
  } catch (error) {
    showError(String(error.message || error));
    return;
  }
  writeUrl();
  await refresh();
  connectLive();
}

main();
