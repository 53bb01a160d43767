// The clue board (filters, live updates) and the clue detail (evidence, readings chart,
// actions, audit trail).
import * as api from './api.js';
import { t, fmtTime, getLang } from './i18n.js';
import { h, clear, toast, select } from './dom.js';
import { session } from './state.js';
import { timeChart } from './chart.js';
import { pumpoutLine } from './pumpouts.js';
import { matterCard } from './matters.js';
import { ownerCard } from './owner.js';

/** Shop, owner and location of a clue's subject (from the device registry), when known. */
function subjectLine(s) {
  const parts = [
    s.shop ? `${t('reg.shop')}: ${s.shop}` : null,
    s.owner ? `${t('reg.owner')}: ${s.owner}` : null,
    s.location ? `${t('reg.location')}: ${s.location.lat.toFixed(5)}, ${s.location.lon.toFixed(5)}` : null,
  ].filter(Boolean);
  return parts.length ? h('p', { class: 'muted', id: 'clue-subject' }, parts.join(' · ')) : null;
}

/** The clue's title in the reader's language (rendered by the gateway from kind and figures;
 * the producer's own title for clues recorded before that, or kinds without a template). */
function clueTitle(c) {
  return c.detail?.text?.[getLang()]?.title ?? c.title;
}

const LEVELS = ['high', 'medium', 'low'];
const STATUSES = ['new', 'claimed', 'assigned', 'transferred', 'resolved', 'dismissed', 'closed', 'reopened'];
/** Statuses after which nothing is left to do (the "open" filter leaves them out). */
const FINAL = ['resolved', 'dismissed', 'closed'];
/** Columns left out on narrow (portrait tablet) screens. */
const OPTIONAL = ['col.dept', 'col.occ', 'col.deadline'];
const filters = { level: '', status: '', kind: '', site: '', unit: '', department: '', overdue: false };
/** Filters the gateway applies (the others are applied to the loaded list). */
const SERVER_FILTERS = ['level', 'status', 'kind', 'site', 'unit'];

/** The units of [org] the token sees (none configured: an empty list, and no unit filter). */
async function orgUnits() {
  return (await api.get('/api/v1/org/units').catch(() => ({ units: [] }))).units ?? [];
}

/** Who handles the clue: the unit of its site (with the units above it), the lead and the
 * assisting departments. */
function orgLine(d) {
  const chain = d.unit_chain ?? [];
  const parts = [
    chain.length ? `${t('clue.unit')}: ${chain[0].name}${chain.length > 1 ? ` (${chain.slice(1).map((u) => u.name).join(' · ')})` : ''}` : null,
    `${t('clue.lead')}: ${d.department ?? '–'}`,
    d.assisting?.length ? `${t('clue.assisting')}: ${d.assisting.join(', ')}` : null,
  ].filter(Boolean);
  return h('p', { class: 'muted', id: 'clue-org', dataset: { unit: d.unit?.id ?? '', lead: d.department ?? '' } }, parts.join(' · '));
}

function levelTag(l) { return h('span', { class: `tag level-${l}` }, t('level.' + l)); }
function statusTag(s) { return h('span', { class: 'tag status', dataset: { status: s } }, t('status.' + s)); }
function escTag(e) { return e && e !== 'none' ? h('span', { class: `tag esc-${e}` }, t('esc.' + e)) : null; }

function row(c) {
  return h('tr', {
    class: `clue-row row-${c.level} esc-row-${c.escalation}`, id: `clue-${c.id}`,
    dataset: { id: c.id, site: c.subject.site, status: c.status },
    onclick: () => { location.hash = `#/clues/${c.id}`; },
  },
  h('td', {}, `#${c.id}`),
  h('td', {}, levelTag(c.level), ' ', escTag(c.escalation)),
  h('td', {}, h('div', {}, clueTitle(c)), h('div', { class: 'muted' }, c.kind, c.subject.device ? ` · ${c.subject.device}` : '', c.subject.plate ? ` · ${c.subject.plate}` : '')),
  h('td', { class: 'site' }, c.subject.site),
  h('td', {}, statusTag(c.status)),
  h('td', { class: 'opt' }, c.department ?? '–'),
  h('td', {}, c.assignee ?? '–'),
  h('td', { class: 'opt' }, c.occurrences),
  h('td', {}, fmtTime(c.last_seen_ms)),
  h('td', { class: 'opt' }, fmtTime(c.deadline_ms)));
}

function matches(c) {
  return (!filters.level || c.level === filters.level)
    && (!filters.status || c.status === filters.status || (filters.status === 'open' && !FINAL.includes(c.status)))
    && (!filters.kind || c.kind === filters.kind)
    && (!filters.site || c.subject.site === filters.site)
    && (!filters.department || c.department === filters.department)
    && (!filters.overdue || (c.escalation && c.escalation !== 'none'));
}

// The board registers its live listeners once; a filter change or a resync after a reconnect
// reloads the data into the same board (`board.byId`, `board.redraw`) instead of opening a new
// board whose listeners nobody removes.
export async function cluesPage(main) {
  const board = { byId: new Map(), redraw: () => {} };
  await loadBoard(main, board);
  // Live: the stream only carries clues of the token's sites (the gateway filters them).
  const onLive = (e) => {
    const c = e.detail.clue;
    board.byId.set(c.id, c);
    board.redraw(c.id);
  };
  // After a reconnect, changes made while disconnected are not replayed: reload the list.
  const resync = () => { if (main.isConnected) loadBoard(main, board).catch(() => {}); };
  window.addEventListener('clue-change', onLive);
  window.addEventListener('stream-reconnected', resync);
  return () => {
    window.removeEventListener('clue-change', onLive);
    window.removeEventListener('stream-reconnected', resync);
  };
}

async function loadBoard(main, board) {
  const q = new URLSearchParams({ limit: '1000' });
  for (const k of SERVER_FILTERS) if (filters[k] && filters[k] !== 'open') q.set(k, filters[k]);
  const [clues, units] = await Promise.all([api.get(`/api/v1/clues?${q}`), orgUnits()]);
  const byId = new Map(clues.map((c) => [c.id, c]));
  board.byId = byId;
  const tbody = h('tbody', { id: 'clue-rows' });
  const count = h('span', { class: 'muted', id: 'clue-count' });
  const empty = h('p', { class: 'muted', id: 'clue-empty' }, t('clues.empty'));

  const sorted = () => [...byId.values()].filter(matches);
  const redraw = (flashId) => {
    const list = sorted();
    clear(tbody, list.map(row));
    count.textContent = t('clues.count', { n: list.length });
    empty.hidden = list.length > 0;
    if (flashId != null) document.getElementById(`clue-${flashId}`)?.classList.add('flash');
  };

  const distinct = (f) => [...new Set([...byId.values()].map(f).filter(Boolean))].sort();
  const me = session.me;
  const siteOptions = me.all_sites ? distinct((c) => c.subject.site) : me.sites;
  const any = ['', t('f.any')];
  const onChange = (key) => (e) => {
    filters[key] = e.target.type === 'checkbox' ? e.target.checked : e.target.value;
    if (SERVER_FILTERS.includes(key)) loadBoard(main, board).catch((err) => toast(t('err.load', { e: err.message }))); else redraw();
  };
  const bar = h('div', { class: 'filters', id: 'clue-filters' },
    h('label', {}, t('f.level'), select('level', [any, ...LEVELS.map((l) => [l, t('level.' + l)])], filters.level, onChange('level'))),
    h('label', {}, t('f.status'), select('status', [any, ['open', t('f.open')], ...STATUSES.map((s) => [s, t('status.' + s)])], filters.status, onChange('status'))),
    h('label', {}, t('f.kind'), select('kind', [any, ...distinct((c) => c.kind).map((k) => [k, k])], filters.kind, onChange('kind'))),
    h('label', {}, t('f.site'), select('site', [any, ...siteOptions.map((s) => [s, s])], filters.site, onChange('site'))),
    units.length ? h('label', {}, t('f.unit'), select('unit', [any, ...units.map((u) => [u.id, u.name])], filters.unit, onChange('unit'))) : null,
    h('label', {}, t('f.department'), select('department', [any, ...distinct((c) => c.department).map((d) => [d, d])], filters.department, onChange('department'))),
    h('label', {}, h('input', { type: 'checkbox', name: 'overdue', checked: filters.overdue, onchange: onChange('overdue') }), t('f.overdue')),
    count);

  clear(main,
    h('h1', {}, t('nav.clues')),
    bar,
    h('table', { id: 'clue-table' },
      h('thead', {}, h('tr', {}, ['col.id', 'col.level', 'col.title', 'col.site', 'col.status', 'col.dept', 'col.assignee', 'col.occ', 'col.last', 'col.deadline'].map((k) => h('th', { class: OPTIONAL.includes(k) ? 'opt' : null }, t(k))))),
      tbody),
    empty);
  board.redraw = redraw;
  redraw();
}

function actionForm(c, reload) {
  const role = session.me.role;
  const supervisor = ['supervisor', 'platform', 'admin'].includes(role);
  const note = h('input', { name: 'note', placeholder: t('act.note') });
  const dept = h('input', { name: 'department', placeholder: t('act.dept') });
  const to = h('input', { name: 'to', placeholder: t('act.to') });
  const lead = h('input', { name: 'lead', placeholder: t('act.lead'), value: c.department ?? '' });
  const assisting = h('input', { name: 'assisting', placeholder: t('act.assisting_list'), value: (c.assisting ?? []).join(', ') });
  const list = (s) => s.split(/[,，]/).map((x) => x.trim()).filter(Boolean);
  const act = async (action, body) => {
    try {
      await api.post(`/api/v1/clues/${c.id}/actions`, { action, ...body });
      toast(t('act.done', { a: t('act.' + action) }));
      await reload();
    } catch (e) {
      toast(t('act.failed', { e: e.message }));
    }
  };
  const needs = (v, fn) => () => (v.value.trim() ? fn() : toast(t('act.need_reason')));
  // Enabled only where the lifecycle allows the step (the gateway checks it again).
  const open = !FINAL.includes(c.status);
  const allowed = {
    claim: ['new', 'reopened', 'transferred'].includes(c.status),
    resolve: ['claimed', 'assigned'].includes(c.status),
    dismiss: open, transfer: open, assign: open, dispatch: open, comment: true,
    close: ['resolved', 'dismissed'].includes(c.status),
    reopen: !open,
  };
  const btn = (name, fn, show = true) => show
    ? h('button', { type: 'button', id: `act-${name}`, onclick: fn, disabled: !allowed[name] }, t('act.' + name)) : null;
  const n = () => note.value.trim() || null;
  return h('div', { class: 'card' },
    h('div', { class: 'actions' }, note),
    h('div', { class: 'actions', style: 'margin-top:.5rem' },
      btn('claim', () => act('claim', { note: n() })),
      btn('resolve', () => act('resolve', { note: n() })),
      btn('dismiss', needs(note, () => act('dismiss', { reason: n() }))),
      btn('comment', needs(note, () => act('comment', { text: n() }))),
      btn('close', () => act('close', { note: n() }), supervisor),
      btn('reopen', needs(note, () => act('reopen', { reason: n() })), supervisor)),
    h('div', { class: 'actions', style: 'margin-top:.5rem' },
      dept, btn('transfer', needs(dept, needs(note, () => act('transfer', { department: dept.value.trim(), reason: n() }))))),
    supervisor ? h('div', { class: 'actions', style: 'margin-top:.5rem' },
      to, btn('assign', needs(to, () => act('assign', { to: to.value.trim(), note: n() })))) : null,
    supervisor ? h('div', { class: 'actions', style: 'margin-top:.5rem' },
      lead, assisting, btn('dispatch', needs(note, () => act('dispatch', {
        lead: lead.value.trim() || null, assisting: list(assisting.value), reason: n(),
      })))) : null);
}

/** What a reviewer reads in an audit entry: the status change and the words given (hashes stay in the export). */
function auditLine(d) {
  if (!d) return null;
  const parts = [];
  if (d.from && d.to && d.from !== d.to) parts.push(`${t('status.' + d.from)} → ${t('status.' + d.to)}`);
  for (const k of ['note', 'reason', 'text', 'department', 'to_assignee', 'assignee']) {
    if (typeof d[k] === 'string' && d[k]) parts.push(d[k]);
  }
  if (typeof d.lead === 'string') parts.push(`${t('clue.lead')}: ${d.lead}`);
  if (Array.isArray(d.assisting)) parts.push(`${t('clue.assisting')}: ${d.assisting.join(', ') || '–'}`);
  if (typeof d.band === 'string') {
    const cur = d.check?.currency ?? '';
    parts.push(`${t('d.band')} ${d.band} · ${d.penalty} ${cur}`.trim());
    if (d.leniency_applied?.length) parts.push(`${t('d.leniency')}: ${d.leniency_applied.join(', ')}`);
    if (d.basis) parts.push(d.basis);
    if (d.check?.outside_band) parts.push(t('d.outside_short'));
  }
  if (d.level && !parts.length) parts.push(t('level.' + d.level));
  return parts.length ? h('div', { class: 'muted' }, parts.join(' · ')) : null;
}

/** The readings evidence as chart series per metric, plus the trigger time. */
function readingsSeries(d) {
  const out = new Map();
  for (const ev of d.evidence) {
    const rs = ev.body?.readings;
    if (!Array.isArray(rs)) continue;
    for (const r of rs) {
      const v = typeof r.value === 'boolean' ? Number(r.value) : Number(r.value);
      if (!Number.isFinite(v)) continue;
      const key = `${r.device}/${r.metric}${r.unit ? ` (${r.unit})` : ''}`;
      if (!out.has(key)) out.set(key, []);
      out.get(key).push([r.device_time_ms, v]);
    }
  }
  return [...out.entries()].map(([label, points]) => ({ label, points: points.sort((a, b) => a[0] - b[0]) }));
}

/** The subject device's readings within an hour either side of the trigger (in-memory ring). */
async function deviceSeries(c) {
  const from = c.first_seen_ms - 3600000;
  const to = c.last_seen_ms + 3600000;
  const r = await api.get(`/api/v1/devices/${encodeURIComponent(c.subject.site)}/${encodeURIComponent(c.subject.device)}/readings?since_ms=${from}`);
  return Object.entries(r.series)
    .map(([m, s]) => ({ label: `${c.subject.device}/${m}${s.unit ? ` (${s.unit})` : ''} ~`, points: s.points.filter((p) => p[0] <= to) }))
    .filter((s) => s.points.length > 1);
}

export async function cluePage(main, id) {
  const load = async () => {
    const [d, audit] = await Promise.all([
      api.get(`/api/v1/clues/${id}`),
      api.get(`/api/v1/clues/${id}/audit`),
    ]);
    // The detail is the clue's fields plus history, occurrences and evidence.
    const c = d;
    const hist = d.history;
    const chartBox = h('div', { id: 'readings-chart' });
    const images = h('div', { class: 'grid evidence', id: 'evidence' });
    clear(main,
      h('p', {}, h('a', { href: '#/clues' }, t('clue.back'))),
      h('h1', { id: 'clue-title' }, `#${c.id} `, levelTag(c.level), ' ', escTag(c.escalation), ' ', clueTitle(c)),
      h('div', { class: 'cols' },
        h('div', {},
          h('div', { class: 'card' },
            h('p', {}, statusTag(c.status), ' ', h('span', { id: 'clue-status', dataset: { status: c.status } }, t('status.' + c.status))),
            h('p', { class: 'muted' }, `${c.kind} · ${c.subject.site}${c.subject.device ? ' / ' + c.subject.device : ''} · ${t('col.assignee')}: ${c.assignee ?? '–'}`),
            orgLine(d),
            subjectLine(c.subject),
            h('p', { class: 'muted' }, `${t('col.occ')}: ${c.occurrences} · ${fmtTime(c.first_seen_ms)} → ${fmtTime(c.last_seen_ms)} · ${t('col.deadline')}: ${fmtTime(c.deadline_ms)}`),
            c.resolution ? h('p', {}, c.resolution) : null,
            h('div', { class: 'hint', id: 'history-hint' }, h('strong', {}, t('clue.history'), ': '),
              hist.first_violation ? t('clue.first') : t('clue.repeat', { n: hist.prior_clues }), ' — ', hist.hint),
            d.pumpouts?.length ? h('div', { class: 'hint', id: 'pumpouts' }, h('strong', {}, t('clue.pumpouts'), ': '),
              h('ul', {}, d.pumpouts.map((p) => h('li', {}, pumpoutLine(p))))) : null),
          session.me.may_work_clues ? actionForm(c, load) : null,
          matterCard(d, audit, session.me.may_work_clues, load),
          ownerCard(d, session.me.may_work_clues, load),
          h('h2', {}, t('clue.readings')), h('div', { class: 'card' }, chartBox),
          h('h2', {}, t('clue.evidence')), images),
        h('div', {},
          h('h2', {}, t('clue.audit')),
          h('ol', { class: 'card audit', id: 'audit' }, audit.map((a) => h('li', { dataset: { action: a.action } },
            h('strong', {}, t('audit.' + a.action) === 'audit.' + a.action ? t('act.' + a.action) : t('audit.' + a.action)),
            ` · ${a.actor} · ${fmtTime(a.at_ms)}`,
            auditLine(a.detail)))),
          h('h2', {}, t('clue.occurrences')),
          h('ul', { class: 'card' }, d.recent_occurrences.map((o) => h('li', {}, `${o.count > 1 ? `${fmtTime(o.first_ms)} → ` : ''}${fmtTime(o.at_ms)}${o.count > 1 ? ` ×${o.count}` : ''} · ${t('level.' + o.level)} · ${o.detail?.text?.[getLang()]?.title ?? o.title}`))),
          h('h2', {}, t('clue.detail')),
          h('pre', { class: 'card', style: 'white-space:pre-wrap' }, JSON.stringify(c.detail, null, 2)))));

    let series = readingsSeries(d);
    if (series.every((s) => s.points.length < 3) && c.subject.device) {
      // A short evidence window: add the device's recent readings around the trigger.
      series = series.concat(await deviceSeries(c).catch(() => []));
    }
    if (series.length) timeChart(chartBox, '', series, { marks: [c.first_seen_ms] });
    else chartBox.append(h('p', { class: 'muted' }, t('clue.noreadings')));
    for (const ev of d.evidence) {
      if (ev.content_type?.startsWith('image/')) {
        const img = h('img', { alt: ev.name ?? ev.sha256, title: ev.sha256 });
        images.append(h('figure', {}, img, h('figcaption', { class: 'muted' }, `${ev.name ?? ''} · ${fmtTime(ev.at_ms)} · sha256 ${ev.sha256.slice(0, 12)}…`)));
        api.blobUrl(`/api/v1/clues/${c.id}/evidence/${ev.sha256}`).then((u) => { img.src = u; }).catch(() => {});
      } else if (ev.body?.text) {
        images.append(h('p', { class: 'card' }, ev.body.text));
      }
    }
  };
  await load();
  const onChange = (e) => { if (e.detail.clue.id === id) load().catch(() => {}); };
  window.addEventListener('clue-change', onChange);
  return () => window.removeEventListener('clue-change', onChange);
}
