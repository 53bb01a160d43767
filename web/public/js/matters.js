// The enforcement matter of a clue (from the gateway's matter catalogue): its provisions, the
// facts on record, the discretion bands with why each holds or not, the leniency entries the
// facts meet, and the decision form. Advice only: the person deciding chooses; the gateway
// records the decision with its own check against the catalogue.
import * as api from './api.js';
import { t, getLang, fmtDuration } from './i18n.js';
import { h, toast } from './dom.js';

/** Statuses on which the gateway accepts a decision. */
const DECIDABLE = ['claimed', 'assigned', 'resolved'];

const zh = () => getLang() === 'zh';
/** The Chinese text when reading Chinese and the catalogue has one, else the English. */
const pick = (en, zhText) => (zh() && zhText ? zhText : en);

/** A provision, flagged when the catalogue still holds the placeholder. */
function provision(label, text) {
  const placeholder = /<fill in/i.test(text);
  return h('li', {}, h('strong', {}, `${label}: `), text,
    placeholder ? h('span', { class: 'tag level-medium placeholder' }, t('m.placeholder')) : null);
}

function range(b, cur) {
  return t('m.range', { min: b.penalty_min, max: b.penalty_max, cur });
}

function factsLine(f) {
  const parts = [
    `${t('m.f.level')}: ${t('level.' + f.level)}`,
    `${t('m.f.occ')}: ${f.occurrences}`,
    `${t('m.f.prior')}: ${f.prior}`,
    `${t('m.f.seen')}: ${fmtDuration(f.seen_for_s)}`,
    f.corrected ? t('m.f.corrected', { d: fmtDuration(f.corrected_after_s) }) : t('m.f.not_corrected'),
    f.owner_answered ? t('m.f.answered') : t('m.f.not_answered'),
    ...Object.entries(f.figures ?? {}).map(([k, v]) => `${k} = ${typeof v === 'string' ? v : JSON.stringify(v)}`),
  ];
  return h('p', { class: 'muted', id: 'matter-facts' }, `${t('m.facts')}: `, parts.join(' · '));
}

function reasons(x) {
  const list = zh() && x.reasons_zh?.length ? x.reasons_zh : x.reasons;
  return h('ul', { class: 'reasons muted' }, list.map((r) => h('li', {}, r)));
}

function bandsTable(m) {
  return h('table', { id: 'matter-bands' },
    h('thead', {}, h('tr', {}, [t('m.band'), t('m.range_h'), t('m.why')].map((c) => h('th', {}, c)))),
    h('tbody', {}, m.bands.map((b) => h('tr', {
      class: b.id === m.band ? 'applies' : null, dataset: { band: b.id, holds: String(b.holds) },
    },
    h('td', {}, h('div', {}, pick(b.label, b.label_zh)), h('div', { class: 'muted' }, b.id),
      b.id === m.band ? h('span', { class: 'tag status', id: 'matter-applicable' }, t('m.applies')) : null),
    h('td', {}, range(b, m.currency)),
    h('td', {}, reasons(b))))));
}

function leniencyList(m) {
  if (!m.leniency.length) return h('p', { class: 'muted' }, t('m.noleniency'));
  return h('ul', { id: 'matter-leniency' }, m.leniency.map((l) => h('li', { dataset: { entry: l.id, status: l.status } },
    h('span', { class: `tag lenient-${l.status}` }, t('m.st.' + l.status)), ' ',
    h('strong', {}, pick(l.description, l.description_zh)), ' ',
    h('span', { class: 'muted' }, `(${t('m.eff.' + l.effect)} · ${l.id})`),
    h('div', { class: 'muted' }, `${t('m.basis')}: ${l.provision}`),
    // (When the record allows the entry, the reasons end with what a person must establish.)
    l.needs_finding && l.status !== 'to_establish'
      ? h('div', {}, `${t('m.needs')}: ${pick(l.needs_finding, l.needs_finding_zh)}`) : null,
    reasons(l))));
}

/** Where a penalty lies against the chosen band, as the gateway's check will judge it. */
export function penaltyNote(m, bandId, penalty, applied) {
  const b = m.bands.find((x) => x.id === bandId);
  if (!b || !Number.isFinite(penalty)) return null;
  if (penalty >= b.penalty_min && penalty <= b.penalty_max) return null;
  const excused = m.leniency.some((l) => applied.includes(l.id)
    && (l.effect === 'no_penalty' ? penalty === 0 : penalty <= b.penalty_max));
  return excused ? null : t('d.outside', { min: b.penalty_min, max: b.penalty_max, cur: m.currency });
}

function decideForm(c, m, reload) {
  const band = h('select', { name: 'band', id: 'decide-band' },
    m.bands.map((b) => h('option', { value: b.id, selected: b.id === m.band }, `${pick(b.label, b.label_zh)} (${range(b, m.currency)})`)));
  const first = m.bands.find((b) => b.id === m.band) ?? m.bands[0];
  const penalty = h('input', { name: 'penalty', id: 'decide-penalty', type: 'number', min: '0', step: '1', value: String(first?.penalty_min ?? 0) });
  const boxes = m.leniency.map((l) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', name: 'leniency', value: l.id, checked: l.status === 'met' }),
    ` ${pick(l.description, l.description_zh)} (${t('m.st.' + l.status)})`));
  const basis = h('input', { name: 'basis', id: 'decide-basis', placeholder: t('d.basis') });
  const warn = h('p', { class: 'warn', id: 'decide-warning', hidden: true });
  const applied = () => boxes.map((b) => b.querySelector('input')).filter((i) => i.checked).map((i) => i.value);
  const refresh = () => {
    const note = penaltyNote(m, band.value, Number(penalty.value), applied());
    warn.hidden = !note;
    warn.textContent = note ?? '';
  };
  band.addEventListener('change', refresh);
  penalty.addEventListener('input', refresh);
  for (const b of boxes) b.addEventListener('change', refresh);
  refresh();
  const submit = async () => {
    const p = Number(penalty.value);
    if (!basis.value.trim()) return toast(t('d.need_basis'));
    if (!Number.isInteger(p) || p < 0) return toast(t('d.need_penalty'));
    try {
      await api.post(`/api/v1/clues/${c.id}/actions`, {
        action: 'decide', band: band.value, penalty: p, leniency_applied: applied(), basis: basis.value.trim(),
      });
      toast(t('act.done', { a: t('act.decide') }));
      await reload();
    } catch (e) {
      toast(t('act.failed', { e: e.message }));
    }
  };
  const open = DECIDABLE.includes(c.status);
  return h('div', { class: 'decide', id: 'decide-form' },
    h('h3', {}, t('d.title')),
    open ? null : h('p', { class: 'muted' }, t('d.when')),
    h('div', { class: 'actions' }, h('label', {}, `${t('d.band')} `, band),
      h('label', {}, `${t('d.penalty', { cur: m.currency })} `, penalty)),
    boxes.length ? h('div', { class: 'actions' }, h('span', {}, `${t('d.leniency')}: `), boxes) : null,
    h('div', { class: 'actions' }, basis,
      h('button', { type: 'button', id: 'act-decide', onclick: submit, disabled: !open }, t('act.decide'))),
    warn);
}

/** The latest decision recorded in the audit trail (entries oldest first). */
function latestDecision(audit, m) {
  const d = [...audit].reverse().find((a) => a.action === 'decide');
  if (!d) return null;
  const x = d.detail ?? {};
  const check = x.check ?? {};
  const findings = zh() && check.findings_zh?.length ? check.findings_zh : (check.findings ?? []);
  return h('div', { class: check.outside_band ? 'hint bad' : 'hint', id: 'matter-decision', dataset: { outside: String(!!check.outside_band) } },
    h('strong', {}, `${t('d.latest')}: `),
    `${x.band} · ${x.penalty} ${check.currency ?? m.currency}`,
    x.leniency_applied?.length ? ` · ${t('d.leniency')}: ${x.leniency_applied.join(', ')}` : '',
    ` · ${d.actor}`,
    h('div', {}, `${t('d.basis')}: ${x.basis ?? ''}`),
    findings.length ? h('ul', {}, findings.map((f) => h('li', {}, f))) : h('div', { class: 'muted' }, t('d.by_the_book')));
}

/** The matter card of clue detail `d` (`null` matter: the kind belongs to no matter). */
export function matterCard(d, audit, mayWork, reload) {
  const m = d.matter;
  if (!m) return h('p', { class: 'muted', id: 'matter-none' }, t('m.nomatter'));
  return h('div', { class: 'card', id: 'matter', dataset: { matter: m.matter, band: m.band ?? '' } },
    h('h2', {}, `${t('m.title')}: ${pick(m.name, m.name_zh)}`),
    h('p', { class: 'muted' }, `${m.matter} · ${t('m.version', { v: m.catalogue_version })}`),
    h('ul', { class: 'provisions' },
      provision(t('m.violated'), m.violated_provision),
      provision(t('m.penalty'), m.penalty_provision)),
    factsLine(m.facts),
    m.band ? null : h('p', { class: 'warn' }, t('m.noband')),
    bandsTable(m),
    h('h3', {}, t('m.leniency')),
    leniencyList(m),
    h('p', { class: 'muted' }, t('m.advice')),
    latestDecision(audit, m),
    mayWork ? decideForm(d, m, reload) : null);
}

/** The decisions statistics (`GET /api/v1/decisions/stats`) as one table row per band. */
export function decisionsTable(s) {
  const rows = [];
  for (const [matter, ms] of Object.entries(s.by_matter ?? {})) {
    for (const [band, b] of Object.entries(ms.by_band)) {
      rows.push(h('tr', { dataset: { matter, band } },
        h('td', {}, matter), h('td', {}, band), h('td', {}, b.decisions),
        h('td', { class: b.outside_band ? 'bad' : null }, b.outside_band), h('td', {}, b.band_differs_from_facts),
        h('td', {}, b.no_penalty),
        h('td', {}, [b.penalty_min, b.penalty_median, b.penalty_max].map((x) => x ?? '–').join(' / ')),
        h('td', {}, Object.entries(b.leniency).map(([k, n]) => `${k}: ${n}`).join(', ') || '–')));
    }
  }
  return h('div', { class: 'card', id: 'decision-stats' },
    h('h2', {}, t('st.decisions')),
    h('p', { class: 'muted' }, t('st.decisions_total', { n: s.decisions, o: s.outside_band, v: s.catalogue_version || '–' })),
    rows.length
      ? h('table', {}, h('thead', {}, h('tr', {}, ['st.matter', 'st.band', 'st.count', 'st.outside', 'st.differs', 'st.nopen', 'st.penalty', 'st.lenapplied'].map((k) => h('th', {}, t(k))))),
        h('tbody', {}, rows))
      : h('p', { class: 'muted' }, t('st.nodata')));
}
