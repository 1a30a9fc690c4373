// The monthly report of one center: /report?center=seosan&month=2026-11. Built from the same
// JSON API as the dashboard, laid out for A4 paper (print or "save as PDF").
"use strict";

const $ = (id) => document.getElementById(id);
const nf = new Intl.NumberFormat("ko-KR");
const nf1 = new Intl.NumberFormat("ko-KR", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const fmtInt = (v) => nf.format(v);
const fmtHours = (v) => nf1.format(v);
const fmtPct = (v) => nf1.format(v * 100) + "%";
const fmtRate = (v) => (v === null || v === undefined ? "—" : fmtPct(v));

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

const td = (field, value, text, cls = "") =>
  el("td", { "data-field": field, "data-value": String(value ?? ""), class: cls, text });

function roomCells(a) {
  return [
    td("visits", a.visits, fmtInt(a.visits)),
    td("bookings_confirmed", a.bookings_confirmed, fmtInt(a.bookings_confirmed)),
    td("bookings_cancelled", a.bookings_cancelled, fmtInt(a.bookings_cancelled)),
    td("no_shows", a.no_shows, fmtInt(a.no_shows)),
    td("no_show_rate", a.no_show_rate, fmtRate(a.no_show_rate)),
    td("booked_hours", a.booked_hours, fmtHours(a.booked_hours)),
    td("utilization", a.utilization, fmtPct(a.utilization)),
    td("occupancy_utilization", a.occupancy_utilization, fmtPct(a.occupancy_utilization)),
    td("peak_occupancy", a.peak_occupancy, fmtInt(a.peak_occupancy)),
  ];
}

function render(u) {
  const [y, m] = u.month.split("-");
  const name = u.center_name || u.center_id;
  document.title = `${name} ${y}년 ${Number(m)}월 이용 보고서`;
  $("report-title").textContent = `${name} · ${y}년 ${Number(m)}월`;
  const c = u.center;
  const status = c.final
    ? (c.revised_after_close ? `마감 후 수정 (revision ${c.revision})` : "마감 · final")
    : "집계 중 (잠정) · open month, figures may still change";
  $("report-meta").textContent = `센터 ${u.center_id} · ${u.rooms.length}개 공간 · ${status}`;

  const pairs = [
    ["방문 Visits", "visits", fmtInt(c.visits) + "명"],
    ["이용 회원 Members", "unique_members", fmtInt(c.unique_members) + "명"],
    ["확정 예약 Bookings", "bookings_confirmed", fmtInt(c.bookings_confirmed) + "건"],
    ["취소 · 노쇼 Cancelled · no-shows", "no_shows",
      `${fmtInt(c.bookings_cancelled)} · ${fmtInt(c.no_shows)} (${fmtRate(c.no_show_rate)})`],
    ["예약 시간 Booked hours", "booked_hours", fmtHours(c.booked_hours) + "시간"],
    ["운영 시간 Open hours", "open_hours", fmtHours(c.open_hours) + "시간"],
    ["예약 가동률 Booked utilization", "utilization", fmtPct(c.utilization)],
    ["재실률 Occupancy utilization", "occupancy_utilization", fmtPct(c.occupancy_utilization)],
    ["입장 거부 Check-ins denied", "checkins_denied", fmtInt(c.checkins_denied) + "건"],
    ["최대 재실 Peak", "peak_occupancy", fmtInt(c.peak_occupancy) + "명"],
  ];
  const rows = [];
  for (let i = 0; i < pairs.length; i += 2) {
    rows.push(el("tr", {}, pairs.slice(i, i + 2).flatMap(([label, field, text]) => [
      el("th", { text: label }), td(field, c[field], text),
    ])));
  }
  $("summary").replaceChildren(...rows);

  $("report-rooms").tBodies[0].replaceChildren(...u.rooms.map((r) =>
    el("tr", { "data-room": r.room_id }, [
      el("td", { class: "left", "data-field": "name", text: r.name }),
      td("capacity", r.capacity, fmtInt(r.capacity)),
      ...roomCells(r),
    ])));
  $("report-rooms").tFoot.replaceChildren(el("tr", { "data-room": "__total__" }, [
    el("td", { class: "left", text: "합계 Total" }), el("td"), ...roomCells(c),
  ]));

  renderHeatmap($("report-heatmap"), c.occupancy_by_weekday_hour, "center heatmap");

  $("report-months").tBodies[0].replaceChildren(...u.months.map((mo) =>
    el("tr", { "data-month": mo.month }, [
      el("td", { class: "left", text: mo.month }),
      td("visits", mo.visits, fmtInt(mo.visits)),
      td("bookings_confirmed", mo.bookings_confirmed, fmtInt(mo.bookings_confirmed)),
      td("booked_hours", mo.booked_hours, fmtHours(mo.booked_hours)),
      td("utilization", mo.utilization, fmtPct(mo.utilization)),
      td("occupancy_utilization", mo.occupancy_utilization, fmtPct(mo.occupancy_utilization)),
      el("td", { text: mo.has_data ? (mo.final ? "마감" : "집계 중") : "—" }),
    ])));

  const printed = new Date().toLocaleString("ko-KR", { hour12: false });
  $("report-foot").textContent =
    `출력 ${printed} · 자료: Kafka usage-monthly · occupancy (community-spaces) · ` +
    `시간대: ${u.timezone}`;
  $("back-link").href =
    `/?center=${encodeURIComponent(u.center_id)}&month=${encodeURIComponent(u.month)}`;
  const report = $("report");
  report.dataset.center = u.center_id;
  report.dataset.month = u.month;
  report.removeAttribute("aria-busy");
  report.dataset.ready = "true";
}

async function main() {
  $("print-button").addEventListener("click", () => window.print());
  const params = new URLSearchParams(location.search);
  const center = params.get("center");
  const month = params.get("month");
  try {
    let id = center;
    if (!id) {
      const centers = await (await fetch("/api/centers", { cache: "no-store" })).json();
      id = centers.centers.length ? centers.centers[0].center_id : null;
    }
    if (!id) throw new Error("아직 데이터가 없습니다 · no centers yet");
    const q = `center=${encodeURIComponent(id)}` + (month ? `&month=${encodeURIComponent(month)}` : "");
    const response = await fetch(`/api/usage?${q}`, { cache: "no-store" });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    render(body);
  } catch (error) {
    const box = $("error");
    box.textContent = String(error.message || error);
    box.hidden = false;
  }
}

main();
