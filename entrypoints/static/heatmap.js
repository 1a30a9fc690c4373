// The weekday x hour heatmap of `occupancy_by_weekday_hour` (usage-monthly): 7 rows, Monday
// first, x 24 local hours of average persons present. Shared by the page and the report.
"use strict";

const HEATMAP_DAYS = ["월 Mon", "화 Tue", "수 Wed", "목 Thu", "금 Fri", "토 Sat", "일 Sun"];
const heatNf = new Intl.NumberFormat("ko-KR", { minimumFractionDigits: 1, maximumFractionDigits: 1 });

// Light blue to the brand blue to navy: readable on screen and in grey print.
function heatColor(ratio) {
  const stops = [[238, 243, 255], [47, 91, 234], [20, 33, 61]];
  const t = Math.max(0, Math.min(1, ratio)) * 2;
  const [a, b] = t <= 1 ? [stops[0], stops[1]] : [stops[1], stops[2]];
  const f = t <= 1 ? t : t - 1;
  const c = a.map((v, i) => Math.round(v + (b[i] - v) * f));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

// Draws `grid` into `container`; returns the largest figure (0 when there is none).
function renderHeatmap(container, grid, label) {
  const doc = container.ownerDocument;
  const make = (tag, cls, text) => {
    const node = doc.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  if (!Array.isArray(grid) || grid.length !== 7) {
    container.replaceChildren(make("p", "heatmap-empty",
      "이 달의 요일·시간대 자료가 없습니다 · no weekday-hour figures for this month"));
    container.dataset.cells = "0";
    return 0;
  }
  const values = grid.flat().filter((v) => typeof v === "number");
  const max = values.length ? Math.max(...values) : 0;
  const table = make("table");
  table.setAttribute("aria-label", label || "average persons present by weekday and hour");
  const head = make("tr");
  head.append(make("th"));
  for (let h = 0; h < 24; h++) head.append(make("th", "hour", String(h)));
  table.append(make("thead"));
  table.tHead.append(head);
  const body = make("tbody");
  grid.forEach((row, d) => {
    const tr = make("tr");
    tr.append(make("th", "day", HEATMAP_DAYS[d]));
    row.forEach((value, h) => {
      const known = typeof value === "number";
      const ratio = known && max > 0 ? value / max : 0;
      const td = make("td", "cell" + (known ? "" : " none") + (ratio > 0.55 ? " dark" : ""),
        known && value > 0 ? heatNf.format(value) : "");
      td.dataset.day = String(d);
      td.dataset.hour = String(h);
      td.dataset.value = known ? String(value) : "";
      if (known) td.style.background = heatColor(ratio);
      td.title = `${HEATMAP_DAYS[d]} ${h}:00–${h + 1}:00 · ` +
        (known ? `평균 ${heatNf.format(value)}명` : "자료 없음 · unknown");
      tr.append(td);
    });
    body.append(tr);
  });
  table.append(body);
  container.replaceChildren(table);
  container.dataset.cells = String(7 * 24);
  return max;
}
