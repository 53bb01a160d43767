// Charts with uPlot (npm `uplot`, served from web/node_modules at /vendor/uplot).
import uPlot from '/vendor/uplot/uPlot.esm.js';

const COLORS = ['#1565c0', '#c62828', '#2e7d32', '#ef6c00', '#6a1b9a', '#00838f'];

function width(el) {
  // The card's padding is inside clientWidth.
  return Math.max(260, Math.min(el.clientWidth || 600, 1200) - 28);
}

/**
 * A time-series line chart. `series` = [{label, points: [[ms, value], ...]}]; points of all
 * series are aligned on the union of their times. `marks` = [ms] drawn as vertical lines.
 */
export function timeChart(el, title, series, { height = 220, marks = [] } = {}) {
  const times = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const idx = new Map(times.map((t, i) => [t, i]));
  const data = [times.map((t) => t / 1000)];
  for (const s of series) {
    const col = new Array(times.length).fill(null);
    for (const [t, v] of s.points) col[idx.get(t)] = v;
    data.push(col);
  }
  const opts = {
    title, width: width(el), height,
    scales: { x: xRange(times) },
    series: [{}, ...series.map((s, i) => ({
      label: s.label, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: true,
    }))],
    axes: [{}, { size: 60 }],
    hooks: marks.length ? { draw: [(u) => drawMarks(u, marks)] } : {},
  };
  return new uPlot(opts, data, el);
}

/** One point alone would get a range of years: show an hour around short spans. */
function xRange(times) {
  if (!times.length) return {};
  const lo = times[0] / 1000;
  const hi = times[times.length - 1] / 1000;
  return hi - lo < 600 ? { range: () => [lo - 1800, hi + 1800] } : {};
}

function drawMarks(u, marks) {
  const { ctx } = u;
  ctx.save();
  ctx.strokeStyle = '#c62828';
  ctx.setLineDash([6, 4]);
  ctx.lineWidth = 2;
  for (const m of marks) {
    const x = u.valToPos(m / 1000, 'x', true);
    ctx.beginPath();
    ctx.moveTo(x, u.bbox.top);
    ctx.lineTo(x, u.bbox.top + u.bbox.height);
    ctx.stroke();
  }
  ctx.restore();
}

/**
 * A bar chart of categories. `groups` = [{label, values: [...]}] aligned with `categories`;
 * one group is centred on each category, two stand side by side.
 */
export function barChart(el, title, categories, groups, { height = 220 } = {}) {
  const n = Math.min(groups.length, 2);
  const data = [categories.map((_, i) => i), ...groups.slice(0, n).map((g) => g.values)];
  const opts = {
    title, width: width(el), height,
    scales: {
      x: { time: false, range: [-0.6, categories.length - 0.4] },
      y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
    },
    series: [{}, ...groups.slice(0, n).map((g, i) => ({
      label: g.label, fill: COLORS[i] + 'cc', stroke: COLORS[i],
      paths: uPlot.paths.bars({ size: [n === 1 ? 0.6 : 0.35, 80], align: n === 1 ? 0 : (i === 0 ? -1 : 1) }),
      points: { show: false },
    }))],
    axes: [
      { values: (u, ticks) => ticks.map((v) => categories[v] ?? ''), splits: () => categories.map((_, i) => i) },
      { size: 50 },
    ],
  };
  return new uPlot(opts, data, el);
}
