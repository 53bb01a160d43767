// Drone flights: upload with progress, processing progress, findings on an offline map of the
// task areas, results per task. Written against the flights API contract
// (GET/POST /api/v1/flights, GET /api/v1/flights/{id}, GET /api/v1/tasks); when this gateway
// has no flights API (404) the page says so.
import * as api from './api.js';
import { session } from './state.js';
import { t, fmtTime } from './i18n.js';
import { h, clear } from './dom.js';
import { drawMap } from './map.js';

const asList = (v) => (Array.isArray(v) ? v : v?.items ?? v?.flights ?? v?.tasks ?? []);

export async function flightsPage(main) {
  let flights;
  let tasks;
  try {
    [flights, tasks] = await Promise.all([
      api.get('/api/v1/flights').then(asList),
      api.get('/api/v1/tasks').then(asList).catch((e) => (e.status === 404 ? [] : Promise.reject(e))),
    ]);
  } catch (e) {
    if (e.status === 404 || e.status === 405) {
      clear(main, h('h1', {}, t('fl.title')), h('p', { class: 'card muted', id: 'flights-na' }, t('fl.na')));
      return null;
    }
    throw e;
  }
  // Findings come with each flight's detail.
  const details = await Promise.all(flights.slice(0, 20).map((f) => api.get(`/api/v1/flights/${encodeURIComponent(f.id)}`).catch(() => f)));
  const findings = details.flatMap((f) => (f.findings ?? []).map((x) => ({ ...x, flight: f.id })));

  const bar = h('div', { class: 'bar' }, h('span', { style: 'width:0%' }));
  const status = h('span', { class: 'muted', id: 'upload-status' });
  const file = h('input', { type: 'file', id: 'flight-file', multiple: true, accept: '.jpg,.jpeg,.mp4,.mov,.srt,image/jpeg,video/mp4,video/quicktime' });
  const sites = session.me?.sites ?? [];
  // The flight's site: one of the token's sites (an all-sites token types it).
  const site = h('input', { name: 'site', id: 'flight-site', list: 'flight-sites', value: sites[0] ?? '', placeholder: t('col.site'), size: 10 });
  const siteList = h('datalist', { id: 'flight-sites' }, sites.map((s) => h('option', { value: s })));
  const go = h('button', { type: 'button', id: 'flight-upload', onclick: async () => {
    const files = [...file.files];
    if (!files.length) return;
    go.disabled = true;
    const total = files.reduce((n, f) => n + f.size, 0) || 1;
    let done = 0;
    try {
      // One flight for the selected stills, videos and their SRT sidecars, then processing.
      const body = site.value ? { site: site.value } : {};
      const flight = await api.post('/api/v1/flights', body);
      for (const f of files) {
        await api.uploadFlightFile(flight.id, f, (n) => {
          const p = (done + n) / total;
          bar.firstChild.style.width = `${Math.round(p * 100)}%`;
          status.textContent = `${t('fl.progress')} ${Math.round(p * 100)}% · ${f.name}`;
        });
        done += f.size;
      }
      await api.post(`/api/v1/flights/${encodeURIComponent(flight.id)}/process`, {});
      status.textContent = `${t('fl.progress')} 100%`;
      flightsPage(main);
    } catch (e) {
      status.textContent = t('act.failed', { e: e.message });
      go.disabled = false;
    }
  } }, t('fl.upload'));

  const areas = tasks.filter((tk) => tk.area).map((tk) => ({ id: tk.id, name: tk.name ?? tk.id, geojson: tk.area }));
  const points = findings.map((f) => ({ lat: f.lat, lon: f.lon, label: `${f.class} ${(f.confidence * 100).toFixed(0)}% · ${f.task_id ?? ''}` }));
  const perTask = new Map();
  for (const f of findings) {
    const k = f.task_id ?? '–';
    if (!perTask.has(k)) perTask.set(k, new Map());
    const m = perTask.get(k);
    m.set(f.class, (m.get(f.class) ?? 0) + 1);
  }
  const running = details.some((f) => !['done', 'failed', 'completed', 'error'].includes(f.status));

  clear(main,
    h('h1', {}, t('fl.title')),
    h('div', { class: 'card' }, h('div', { class: 'actions' }, file, site, siteList, go), bar, status),
    h('div', { class: 'cols' },
      h('div', {},
        h('h2', {}, t('fl.map')),
        h('div', { class: 'map', id: 'flight-map' }, drawMap(areas, points)),
        h('h2', {}, t('fl.pertask')),
        h('table', { id: 'task-results' },
          h('thead', {}, h('tr', {}, h('th', {}, t('fl.task')), h('th', {}, t('fl.findings')))),
          h('tbody', {}, [...perTask.entries()].map(([k, m]) => h('tr', {},
            h('td', {}, k), h('td', {}, [...m.entries()].map(([c, n]) => `${c}: ${n}`).join(', '))))))),
      h('div', {},
        h('h2', {}, t('nav.flights')),
        details.length ? h('table', { id: 'flight-list' },
          h('thead', {}, h('tr', {}, [t('col.id'), t('fl.status'), t('fl.processing'), t('fl.findings')].map((x) => h('th', {}, x)))),
          h('tbody', {}, details.map((f) => h('tr', {},
            h('td', {}, f.id),
            h('td', {}, f.status ?? '–', (f.errors ?? []).length ? h('div', { class: 'muted' }, f.errors.join('; ')) : null),
            h('td', {}, h('div', { class: 'bar' }, h('span', { style: `width:${Math.round((f.progress ?? 0) * 100)}%` }))),
            h('td', {}, (f.findings ?? []).length)))))
          : h('p', { class: 'muted' }, t('fl.none')),
        h('h2', {}, t('fl.findings')),
        h('table', {},
          h('thead', {}, h('tr', {}, [t('fl.class'), t('fl.conf'), t('fl.task'), t('fl.time')].map((x) => h('th', {}, x)))),
          h('tbody', {}, findings.slice(0, 200).map((f) => h('tr', {},
            h('td', {}, f.class), h('td', {}, `${(f.confidence * 100).toFixed(0)}%`), h('td', {}, f.task_id ?? '–'), h('td', {}, fmtTime(f.time_ms)))))))));
  // Processing progress: poll while a flight is still being processed.
  const timer = running ? setTimeout(() => { if (main.isConnected) flightsPage(main).catch(() => {}); }, 2000) : null;
  return () => clearTimeout(timer);
}
