// Devices: presence, last seen, battery, a map of the registered ones; per device its registry
// entry (shop, owner, location, installation), the recent readings as charts and the grease
// trap's pump-outs (level drops reported by the device).
import * as api from './api.js';
import { t, fmtTime } from './i18n.js';
import { h, clear, toast } from './dom.js';
import { timeChart } from './chart.js';
import { drawMap, devicePoints } from './map.js';
import { session } from './state.js';

function battery(d) {
  const lv = d.last_values ?? {};
  const v = d.battery ?? lv.battery_pct?.value ?? lv.battery?.value;
  return typeof v === 'number' ? `${Math.round(v)}%` : '–';
}

export async function devicesPage(main) {
  const devices = await api.get('/api/v1/devices');
  const points = devicePoints(devices);
  clear(main,
    h('h1', {}, t('dev.title')),
    points.length ? h('div', { class: 'map', id: 'device-map' }, drawMap([], points, { height: 360 })) : null,
    h('table', { id: 'device-table' },
      h('thead', {}, h('tr', {}, [t('col.site'), t('dev.title'), t('reg.shop'), t('dev.presence'), t('dev.lastseen'), t('dev.battery'), t('dev.messages'), t('dev.lost')].map((x) => h('th', {}, x)))),
      h('tbody', {}, devices.map((d) => h('tr', {
        class: 'clue-row', dataset: { site: d.site, device: d.device },
        onclick: () => { location.hash = `#/devices/${encodeURIComponent(d.site)}/${encodeURIComponent(d.device)}`; },
      },
      h('td', {}, d.site),
      h('td', {}, d.device, h('span', { class: 'muted' }, ` (${d.source})`)),
      h('td', {}, d.registry ? (d.registry.shop ?? d.registry.owner ?? d.registry.name ?? '') : h('span', { class: 'muted' }, t('reg.none'))),
      h('td', { class: d.presence }, t('dev.' + d.presence)),
      h('td', {}, fmtTime(d.last_seen_ms)),
      h('td', {}, battery(d)),
      h('td', {}, d.messages),
      h('td', {}, d.lost))))),
    devices.length ? null : h('p', { class: 'muted' }, t('dev.nodata')));
  // Presence changes with time: refresh while the page is open.
  const timer = setTimeout(() => { if (main.isConnected) devicesPage(main).catch(() => {}); }, 15000);
  return () => clearTimeout(timer);
}

/** A registered pump-out explains a level drop this long before or after it (as the rules engine). */
const SLACK_MS = 30 * 60 * 1000;

/** Registers a pump-out visit (inspectors and above), so its level drop raises no clue. */
function recordForm(site, device, reload) {
  const local = (ms) => new Date(ms - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  const from = h('input', { type: 'datetime-local', name: 'from', value: local(Date.now() - 3600000) });
  const to = h('input', { type: 'datetime-local', name: 'to', value: local(Date.now()) });
  const note = h('input', { name: 'pumpout-note', placeholder: t('dev.note_hint') });
  return h('div', { class: 'card actions', id: 'pumpout-form' }, from, to, note,
    h('button', { type: 'button', id: 'pumpout-register', onclick: async () => {
      try {
        await api.post('/api/v1/pumpouts', {
          site, device, from_ms: new Date(from.value).getTime(), to_ms: new Date(to.value).getTime(),
          note: note.value.trim() || null,
        });
        toast(t('act.done', { a: t('dev.register') }));
        reload();
      } catch (e) {
        toast(t('act.failed', { e: e.message }));
      }
    } }, t('dev.register')));
}

/** A trap's build in one line: `rectangular 1200 x 600 mm · depth 800 mm · sensor 1000 mm · distance`. */
function trapLine(tr) {
  const dims = tr.shape === 'cylindrical' ? `⌀${tr.diameter_mm} mm`
    : tr.shape ? `${tr.length_mm} x ${tr.width_mm} mm` : null;
  return [tr.shape ? `${t('reg.shape.' + tr.shape)} ${dims}` : null,
    tr.working_depth_mm ? `${t('reg.depth')} ${tr.working_depth_mm} mm` : null,
    tr.sensor_height_mm ? `${t('reg.sensor')} ${tr.sensor_height_mm} mm` : null,
    `${t('reg.reports')}: ${tr.reports}${tr.metric ? ` (${tr.metric})` : ''}`].filter(Boolean).join(' · ');
}

/** The device's registry entry (what it is, where, whose), or a note that it is not registered. */
function registryCard(e) {
  if (!e) return h('p', { class: 'muted', id: 'device-registry' }, t('reg.none'));
  const inst = e.installation ?? {};
  const rows = [
    [t('reg.kind'), t('reg.kind.' + e.kind)],
    [t('reg.name'), e.name],
    [t('reg.shop'), e.shop],
    [t('reg.owner'), e.owner],
    ['DevEUI', e.dev_eui],
    [t('reg.location'), e.location ? `${e.location.lat.toFixed(5)}, ${e.location.lon.toFixed(5)}` : null],
    [t('reg.trap'), inst.trap ? trapLine(inst.trap) : null],
    [t('reg.zones'), inst.camera_zones?.length ? inst.camera_zones.map((z) => z.id).join(', ') : null],
    [t('reg.notes'), inst.notes],
  ].filter(([, v]) => v != null && v !== '');
  return h('table', { class: 'card', id: 'device-registry' },
    h('tbody', {}, rows.map(([k, v]) => h('tr', { dataset: { field: k } }, h('th', {}, k), h('td', {}, v)))));
}

export async function devicePage(main, site, device) {
  const enc = `${encodeURIComponent(site)}/${encodeURIComponent(device)}`;
  const [data, events, entry] = await Promise.all([
    api.get(`/api/v1/devices/${enc}/readings`),
    api.get(`/api/v1/devices/${enc}/events`).catch(() => []),
    // 404: not registered.
    api.get(`/api/v1/registry/devices/${enc}`).catch(() => null),
  ]);
  const charts = h('div', { class: 'grid wide', id: 'device-charts' });
  // Clues about this device (pump-out due or overdue, night discharge...), for roles that read clues.
  const related = session.me.may_read_clues
    ? (await api.get(`/api/v1/clues?site=${encodeURIComponent(site)}&limit=1000`).catch(() => []))
      .filter((c) => c.subject.device === device)
    : [];
  const drops = events.filter((e) => e.name === 'level_drop' && e.phase !== 'recovery');
  // Service records (registered by crews or the platform); 404/503 when this gateway has none.
  const records = (await api.get(`/api/v1/pumpouts?site=${encodeURIComponent(site)}`).catch(() => []))
    .filter((r) => r.device === device)
    .sort((a, b) => b.from_ms - a.from_ms);
  const explained = (at) => records.some((r) => at >= r.from_ms - SLACK_MS && at <= r.to_ms + SLACK_MS);
  clear(main,
    h('p', {}, h('a', { href: '#/devices' }, t('dev.back'))),
    h('h1', {}, `${site} / ${device}`),
    h('h2', {}, t('reg.title')),
    registryCard(entry),
    h('h2', {}, t('dev.charts')),
    charts,
    h('h2', {}, t('dev.pumpouts')),
    drops.length
      ? h('table', { id: 'pumpouts' },
        h('thead', {}, h('tr', {}, [t('fl.time'), t('dev.removed'), t('dev.event'), t('dev.record')].map((x) => h('th', {}, x)))),
        h('tbody', {}, drops.slice().reverse().map((e) => h('tr', {},
          h('td', {}, fmtTime(e.at_ms)), h('td', {}, e.value != null ? e.value.toFixed(0) : '–'), h('td', {}, e.message ?? e.name),
          h('td', {}, explained(e.at_ms) ? h('span', { class: 'tag level-low' }, t('dev.explained')) : h('span', { class: 'tag level-medium' }, t('dev.unexplained')))))))
      : h('p', { class: 'muted', id: 'pumpouts' }, t('dev.nopump')),
    h('h2', {}, t('dev.records')),
    records.length
      ? h('table', { id: 'pumpout-records' },
        h('thead', {}, h('tr', {}, [t('dev.from'), t('dev.to'), t('dev.by'), t('act.note')].map((x) => h('th', {}, x)))),
        h('tbody', {}, records.map((r) => h('tr', {},
          h('td', {}, fmtTime(r.from_ms)), h('td', {}, fmtTime(r.to_ms)), h('td', {}, r.by), h('td', {}, r.note ?? '')))))
      : h('p', { class: 'muted', id: 'pumpout-records' }, t('dev.nopump')),
    session.me.may_work_clues ? recordForm(site, device, () => devicePage(main, site, device)) : null,
    related.length ? h('h2', {}, t('nav.clues')) : null,
    related.length ? h('ul', { class: 'card', id: 'device-clues' }, related.map((c) => h('li', {},
      h('a', { href: `#/clues/${c.id}` }, `#${c.id}`), ` ${t('level.' + c.level)} · ${t('status.' + c.status)} · ${c.title} · ${fmtTime(c.last_seen_ms)}`))) : null);
  const series = Object.entries(data.series).filter(([, s]) => s.points.length);
  if (!series.length) charts.append(h('p', { class: 'muted' }, t('dev.nodata')));
  // The trap's fill first: the chart people look for.
  series.sort(([a], [b]) => (b.includes('level') || b.includes('fill')) - (a.includes('level') || a.includes('fill')));
  for (const [metric, s] of series) {
    const box = h('div', { class: 'card chart', dataset: { metric } });
    charts.append(box);
    const title = `${metric}${s.unit ? ` (${s.unit})` : ''}`;
    timeChart(box, title, [{ label: metric, points: s.points }], { marks: metric.includes('level') ? drops.map((e) => e.at_ms) : [] });
  }
}
