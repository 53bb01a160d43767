// An offline map: task-area GeoJSON, findings and registered devices drawn as SVG with an
// equirectangular projection fitted to their bounds. No tile server is contacted.

const NS = 'http://www.w3.org/2000/svg';
const COLORS = ['#1565c0', '#6a1b9a', '#00838f', '#ef6c00', '#2e7d32', '#ad1457'];

function svg(tag, attrs = {}) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

/** Every ring (list of [lon, lat]) of a GeoJSON geometry, Feature or FeatureCollection. */
export function rings(g) {
  if (!g) return [];
  switch (g.type) {
    case 'FeatureCollection': return g.features.flatMap((f) => rings(f));
    case 'Feature': return rings(g.geometry);
    case 'Polygon': return g.coordinates;
    case 'MultiPolygon': return g.coordinates.flat();
    case 'LineString': return [g.coordinates];
    default: return [];
  }
}

/** Colour of a device point by its registry kind. */
const KIND_COLORS = {
  grease_trap: '#ef6c00', manhole_cover: '#1565c0', kitchen_camera: '#2e7d32', parking_camera: '#6a1b9a',
};

/**
 * Map points of the registered devices that have a location (`rows` as served by
 * `/api/v1/devices`, or registry entries): `{lat, lon, label, cls, color, href}`.
 */
export function devicePoints(rows) {
  return rows
    .map((d) => ({ e: d.registry ?? (d.kind && d.location ? d : null), d }))
    .filter(({ e }) => e && Number.isFinite(e.location?.lat) && Number.isFinite(e.location?.lon))
    .map(({ e, d }) => ({
      lat: e.location.lat,
      lon: e.location.lon,
      label: `${d.site}/${d.device}${e.shop ? ` · ${e.shop}` : ''}${e.name ? ` · ${e.name}` : ''}`,
      cls: 'device',
      color: KIND_COLORS[e.kind] ?? '#455a64',
      href: `#/devices/${encodeURIComponent(d.site)}/${encodeURIComponent(d.device)}`,
      site: d.site,
    }));
}

/**
 * Draws `areas` ([{id, name, geojson}]) and `points` ([{lat, lon, label, cls}]) into a new SVG.
 * Longitude is scaled by cos(mid-latitude) so shapes keep their proportions.
 */
export function drawMap(areas, points, { width = 800, height = 500 } = {}) {
  const all = [
    ...areas.flatMap((a) => rings(a.geojson).flat()),
    ...points.map((p) => [p.lon, p.lat]),
  ].filter((c) => Array.isArray(c) && Number.isFinite(c[0]) && Number.isFinite(c[1]));
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img' });
  if (!all.length) return root;
  let [minX, minY, maxX, maxY] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const [x, y] of all) {
    minX = Math.min(minX, x); maxX = Math.max(maxX, x);
    minY = Math.min(minY, y); maxY = Math.max(maxY, y);
  }
  const k = Math.cos(((minY + maxY) / 2) * Math.PI / 180);
  const spanX = Math.max((maxX - minX) * k, 1e-6);
  const spanY = Math.max(maxY - minY, 1e-6);
  const pad = 20;
  const s = Math.min((width - 2 * pad) / spanX, (height - 2 * pad) / spanY);
  const ox = (width - spanX * s) / 2;
  const oy = (height - spanY * s) / 2;
  const proj = ([lon, lat]) => [ox + (lon - minX) * k * s, height - (oy + (lat - minY) * s)];

  areas.forEach((a, i) => {
    const color = COLORS[i % COLORS.length];
    for (const ring of rings(a.geojson)) {
      const d = ring.map((c, j) => `${j ? 'L' : 'M'}${proj(c).map((v) => v.toFixed(1)).join(',')}`).join('') + 'Z';
      root.append(svg('path', { d, fill: color + '22', stroke: color, 'stroke-width': 2, 'data-task': a.id }));
    }
    const first = rings(a.geojson)[0]?.[0];
    if (first) {
      const [x, y] = proj(first);
      const label = svg('text', { x: x + 4, y: y - 4, fill: color, 'font-size': 14 });
      label.textContent = a.name ?? a.id;
      root.append(label);
    }
  });
  for (const p of points) {
    if (!Number.isFinite(p.lat) || !Number.isFinite(p.lon)) continue;
    const [x, y] = proj([p.lon, p.lat]);
    const c = svg('circle', {
      cx: x, cy: y, r: 6, fill: p.color ?? '#c62828', stroke: '#fff', 'stroke-width': 2, class: p.cls ?? 'finding',
    });
    if (p.site) c.setAttribute('data-site', p.site);
    const tip = svg('title');
    tip.textContent = p.label;
    c.append(tip);
    if (p.href) {
      c.style.cursor = 'pointer';
      c.addEventListener('click', () => { location.hash = p.href; });
    }
    root.append(c);
  }
  return root;
}
