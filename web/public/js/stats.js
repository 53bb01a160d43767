// Quantified evaluation: disposal rate, time to claim / resolve by level, department and week
// (from the clue export, so the figures follow the token's sites), parking persuasion success
// (the warned stays' records in /api/v1/stats `parking`, within the token's sites).
import * as api from './api.js';
import { t, fmtDuration } from './i18n.js';
import { h, clear } from './dom.js';
import { barChart } from './chart.js';
import { decisionsTable } from './matters.js';

const DISPOSED = ['resolved', 'dismissed', 'closed'];

function median(xs) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Monday 00:00 UTC of the week of `ms`, as YYYY-MM-DD. */
function week(ms) {
  const d = new Date(ms);
  const day = (d.getUTCDay() + 6) % 7;
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() - day)).toISOString().slice(0, 10);
}

function groupBy(clues, key) {
  const m = new Map();
  for (const c of clues) {
    const k = key(c) ?? '–';
    if (!m.has(k)) m.set(k, []);
    m.get(k).push(c);
  }
  return m;
}

function figures(cs) {
  const claim = cs.filter((c) => c.claimed_ms != null).map((c) => (c.claimed_ms - c.created_ms) / 60000);
  const resolve = cs.filter((c) => c.resolved_ms != null).map((c) => (c.resolved_ms - c.created_ms) / 60000);
  return {
    n: cs.length,
    disposed: cs.filter((c) => DISPOSED.includes(c.status)).length,
    claim: median(claim),
    resolve: median(resolve),
  };
}

export async function statsPage(main) {
  const [stats, clues, decisions] = await Promise.all([
    api.get('/api/v1/stats'),
    api.get('/api/v1/clues/export?format=json&from_ms=0'),
    api.get('/api/v1/decisions/stats'),
  ]);
  // Warned stays as recorded per stay (left after the notice, or stayed and got a clue).
  const park = stats.parking;
  const kpi = (id, label, value) => h('div', { class: 'card', id }, h('div', { class: 'muted' }, label), h('div', { class: 'kpi' }, value));
  const pct = (x) => `${(x * 100).toFixed(0)}%`;
  const charts = h('div', { class: 'grid wide', id: 'stat-charts' });
  clear(main,
    h('h1', {}, t('st.title')),
    h('div', { class: 'grid' },
      kpi('kpi-total', t('st.total'), stats.total),
      kpi('kpi-disposal', t('st.disposal'), pct(stats.disposal_rate)),
      kpi('kpi-claim', t('st.claim'), fmtDuration(stats.median_time_to_claim_s)),
      kpi('kpi-resolve', t('st.resolve'), fmtDuration(stats.median_time_to_resolve_s)),
      kpi('kpi-overdue', t('st.overdue'), `${stats.overdue_yellow} / ${stats.overdue_red}`),
      kpi('kpi-parking', t('st.parking'), park && park.persuasion_rate != null
        ? `${pct(park.persuasion_rate)} (${park.left_after_notice}/${park.left_after_notice + park.clue})` : t('st.nodata'))),
    decisionsTable(decisions),
    charts);
  if (!clues.length) {
    charts.append(h('p', { class: 'muted' }, t('st.nodata')));
    return;
  }
  const chart = (title, groups, build) => {
    const box = h('div', { class: 'card chart' });
    charts.append(box);
    const keys = [...groups.keys()];
    const figs = keys.map((k) => figures(groups.get(k)));
    barChart(box, title, keys.map((k) => (t('level.' + k).startsWith('level.') ? k : t('level.' + k))), build(figs));
  };
  const levels = groupBy(clues, (c) => c.level);
  const ordered = new Map(['high', 'medium', 'low'].filter((l) => levels.has(l)).map((l) => [l, levels.get(l)]));
  const depts = groupBy(clues, (c) => c.department);
  const weeks = new Map([...groupBy(clues, (c) => week(c.created_ms)).entries()].sort(([a], [b]) => a.localeCompare(b)).slice(-12));
  const counts = (f) => [{ label: t('st.created'), values: f.map((x) => x.n) }, { label: t('st.disposed'), values: f.map((x) => x.disposed) }];
  const times = (f) => [{ label: t('st.claim_min'), values: f.map((x) => x.claim) }, { label: t('st.resolve_min'), values: f.map((x) => x.resolve) }];
  const rate = (f) => [{ label: `${t('st.rate')} %`, values: f.map((x) => (x.n ? (100 * x.disposed) / x.n : 0)) }];
  chart(`${t('st.bylevel')}: ${t('st.created')} / ${t('st.disposed')}`, ordered, counts);
  chart(`${t('st.bylevel')}: ${t('st.claim_min')} / ${t('st.resolve_min')}`, ordered, times);
  chart(`${t('st.bydept')}: ${t('st.rate')} %`, depts, rate);
  chart(`${t('st.bydept')}: ${t('st.claim_min')} / ${t('st.resolve_min')}`, depts, times);
  chart(`${t('st.byweek')}: ${t('st.created')} / ${t('st.disposed')}`, weeks, counts);
  chart(`${t('st.byweek')}: ${t('st.rate')} %`, weeks, rate);
}
