// Browser test of the dashboard in Debian's chromium (Playwright core, no bundled browser).
// Driven by gateway/tests/e2e/dashboard_browser.rs, which starts the gateway (demo: broker +
// simulator), creates tokens and a clue at another site, and raises the live clue when this
// script prints `READY live-clue`. Env:
//   DASHBOARD_URL      http://127.0.0.1:PORT
//   INSPECTOR_TOKEN    inspector token limited to SITE
//   DEVICE_TOKEN       device-role token of SITE (sees devices, not clues)
//   SITE, LIVE_DEVICE  where the live clue will be raised (manhole cover open)
//   OTHER_SITE, OTHER_CLUE_ID  a clue the inspector must not see
//   CAMERA_SITE, ADMIN_TOKEN    for the camera wall (any site)
//   SUPERVISOR_TOKEN, WARNING_ID  a supervisor of SITE and the red warning it makes a notice of
//   SCREENSHOT_DIR     where the page screenshots go
//   CHROMIUM           (default /usr/bin/chromium)
// Prints `OK <check>` per passed check and `PASS <n> checks`; exits 1 on the first failure.
import { chromium } from 'playwright-core';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v == null) { console.log(`FAIL missing env ${k}`); process.exit(2); }
  return v;
};
const URL_ = env('DASHBOARD_URL');
const INSPECTOR = env('INSPECTOR_TOKEN');
const DEVICE = env('DEVICE_TOKEN');
const ADMIN = env('ADMIN_TOKEN');
const SITE = env('SITE');
const LIVE_DEVICE = env('LIVE_DEVICE');
const OTHER_SITE = env('OTHER_SITE');
const OTHER_CLUE_ID = env('OTHER_CLUE_ID');
const SHOTS = env('SCREENSHOT_DIR');
const SUPERVISOR = env('SUPERVISOR_TOKEN');
const WARNING_ID = env('WARNING_ID');
mkdirSync(SHOTS, { recursive: true });

let checks = 0;
const ok = (what) => { checks += 1; console.log(`OK ${what}`); };
function expect(cond, what) {
  if (!cond) throw new Error(what);
  ok(what);
}

const profile = mkdtempSync(join(tmpdir(), 'dashboard-chromium-'));
// A fresh profile (Playwright passes it as --user-data-dir) and a tablet in landscape.
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: env('CHROMIUM', '/usr/bin/chromium'),
  headless: true,
  viewport: { width: 1280, height: 800 },
  locale: 'zh-CN',
  // Without these, chromium on a closed network stalls on first-run, sync and update checks.
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const consoleErrors = [];
let page;

async function shot(name) {
  const path = join(SHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`SCREENSHOT ${path}`);
}

async function signIn(token) {
  await page.goto(URL_ + '/');
  await page.waitForSelector('#signin');
  await page.fill('#token', token);
  await page.click('#signin button[type=submit]');
}

try {
  page = browser.pages()[0] ?? await browser.newPage();
  // Generous: CI runs this beside other tests on 2 cores; a failure still ends in bounded time.
  page.setDefaultTimeout(45000);
  // Refused requests (the wrong token, the other site's clue, a gateway without flights) are
  // logged by chromium as "Failed to load resource"; they are part of the test. Script errors are not.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));

  // 1. A wrong token is refused; the sign-in form stays.
  await signIn('gwt_not_a_token');
  await page.waitForSelector('#signin-error');
  expect((await page.textContent('#signin-error')).includes('令牌无效'), 'a wrong token is refused (in Chinese by default)');
  await shot('01-signin');

  // 2. The inspector signs in: Chinese by default, the live stream connects.
  const t1 = Date.now();
  await signIn(INSPECTOR);
  await page.waitForSelector('#clue-table');
  console.log(`MEASURE sign-in-to-board-ms ${Date.now() - t1}`);
  expect((await page.textContent('#nav a[data-page=clues]')) === '线索', 'Chinese is the default language');
  await page.waitForSelector('#live[data-state=on]');
  ok('live stream connected');
  const who = await page.textContent('#who');
  expect(who.includes(SITE) && who.includes('巡查员'), `header shows role and site (${who})`);

  // 3. The scoped token sees only its site's clues.
  const sites = await page.$$eval('#clue-rows tr', (rows) => rows.map((r) => r.dataset.site));
  expect(sites.every((s) => s === SITE), `board shows only ${SITE} clues (${sites.length} rows)`);
  expect(!(await page.$(`#clue-${OTHER_CLUE_ID}`)), `clue #${OTHER_CLUE_ID} of ${OTHER_SITE} is not on the board`);

  // 4. The live clue appears without a reload.
  const before = await page.$$eval('#clue-rows tr', (rows) => rows.length);
  await page.evaluate(() => { window.__noReload = true; });
  const t0 = Date.now();
  console.log('READY live-clue');
  // The cover-open rule confirms an open cover for 30 s (reed flicker) before it raises.
  const row = await page.waitForSelector(`#clue-rows tr[data-site="${SITE}"]:has-text("${LIVE_DEVICE}")`, { timeout: 120000 });
  // Publish (by the test), rules engine, pool, SSE, render: informational, not asserted.
  console.log(`MEASURE live-clue-ms ${Date.now() - t0}`);
  expect(await page.evaluate(() => window.__noReload === true), 'the page was not reloaded');
  const liveId = await row.getAttribute('data-id');
  expect(Number(liveId) > 0 && (await page.$$eval('#clue-rows tr', (r) => r.length)) === before + 1,
    `live clue #${liveId} from ${SITE}/${LIVE_DEVICE} appeared through SSE`);
  await shot('02-clues-live');

  // 5. Claim and resolve it from the detail page; both steps are in its audit trail.
  await row.click();
  await page.waitForSelector('#audit');
  await page.click('#act-claim');
  await page.waitForSelector('#clue-status[data-status=claimed]');
  ok('claimed');
  await page.fill('input[name=note]', '已现场核查，井盖已复位');
  await page.click('#act-resolve');
  await page.waitForSelector('#clue-status[data-status=resolved]');
  ok('resolved');
  await page.waitForSelector('#audit li[data-action=resolve]');
  const actions = await page.$$eval('#audit li', (li) => li.map((l) => l.dataset.action));
  expect(actions.includes('claim') && actions.includes('resolve') && actions.indexOf('claim') < actions.indexOf('resolve'),
    `audit trail has claim then resolve (${actions.join(',')})`);
  const auditText = await page.textContent('#audit');
  expect(auditText.includes('已现场核查'), 'the resolve note is in the audit trail');
  await page.waitForSelector('#history-hint');
  ok('subject history hint shown');
  await shot('03-clue-detail');

  // 5b. The enforcement matter (the demo runs the example catalogue), in Chinese: provisions
  // flagged as placeholders, the band the facts point to with reasons, the leniency list.
  await page.waitForSelector('#matter');
  const liveUrl = page.url();
  const matterText = await page.textContent('#matter');
  expect(matterText.includes('执法事项') && matterText.includes('擅自开启、移动窨井盖')
    && matterText.includes('待执法部门填写'), 'the clue shows its enforcement matter in Chinese, legal bases marked as placeholders');
  const applicable = await page.getAttribute('#matter', 'data-band');
  expect(applicable && (await page.$(`#matter-bands tr.applies[data-band="${applicable}"]`))
    && /(符合|不符合)：/.test(await page.textContent('#matter-bands')),
  `the applicable band ${applicable} is marked, with reasons in Chinese`);
  expect((await page.$$('#matter-leniency li[data-status]')).length >= 2
    && (await page.textContent('#matter-leniency')).includes('须由执法人员认定'), 'the leniency entries with their status and what a person must establish');
  // A penalty far outside the band is flagged before it is sent; a decision inside is recorded.
  await page.selectOption('#decide-band', applicable);
  await page.fill('#decide-penalty', '999999');
  await page.waitForSelector('#decide-warning:not([hidden])');
  ok('a penalty outside the band is flagged in the form');
  for (const box of await page.$$('#decide-form input[name=leniency]:checked')) await box.uncheck();
  const min = await page.$eval(`#matter-bands tr[data-band="${applicable}"]`, (r) => r.children[1].textContent.split('–')[0].trim());
  await page.fill('#decide-penalty', min);
  await page.waitForSelector('#decide-warning[hidden]', { state: 'attached' });
  await page.fill('#decide-basis', '现场核查：井盖已复位，按裁量基准最低额');
  await page.click('#act-decide');
  await page.waitForSelector('#audit li[data-action=decide]');
  await page.waitForSelector('#matter-decision[data-outside=false]');
  expect((await page.textContent('#audit li[data-action=decide]')).includes('处罚决定')
    && (await page.textContent('#matter-decision')).includes('现场核查'), `decision in band ${applicable} (${min}) recorded in the audit trail`);
  await shot('03b-clue-matter-zh');

  // 5c. The owner's side, in Chinese: nobody told yet; a person records telling the owner by
  // phone, and the answer window is shown from then.
  await page.waitForSelector('#owner');
  expect((await page.textContent('#owner')).includes('当事人告知与陈述')
    && (await page.textContent('#owner-due')).includes('尚未告知当事人'), 'the owner card in Chinese: not told yet');
  await page.fill('#owner-channel', 'phone');
  await page.click('#owner-record');
  await page.waitForSelector('#owner-due:not([data-due=""])');
  expect((await page.textContent('#owner-due')).includes('陈述申辩期限至')
    && (await page.textContent('#owner-told')).includes('phone')
    && (await page.textContent('#owner-no-statement')).includes('尚无当事人陈述'), 'the owner was told by phone: the answer window in Chinese');
  // A notice through a configured channel: picked from the channels the API lists (no free
  // text), with the channel's templates offered; queued and shown with the phone masked.
  await page.waitForSelector('#owner-notice-channel[data-loaded=true]');
  const offered = await page.$$eval('#owner-notice-channel option', (os) => os.map((o) => [o.value, o.textContent]));
  expect(JSON.stringify(offered.map(([v]) => v)) === '["sms","letter"]'
    && offered[0][1].includes('短信') && offered[1][1].includes('邮寄地址'), `the configured channels are offered: ${JSON.stringify(offered)}`);
  await page.selectOption('#owner-notice-channel', 'sms');
  const tpl = await page.$$eval('#owner-templates option', (os) => os.map((o) => o.value));
  expect(tpl.join(',') === 'first_notice,reminder', `the sms channel's templates are offered: ${tpl}`);
  await page.fill('#owner-template', 'first_notice');
  await page.click('#owner-send');
  await page.waitForSelector('#owner-notices li.owner-notice');
  const sent = await page.textContent('#owner-notices li.owner-notice');
  expect(sent.includes('渠道: sms (first_notice)') && sent.includes('139****9000') && !sent.includes('13900139000'),
    `the notice is listed with its channel and the phone masked: ${sent}`);
  await shot('03c-clue-owner-zh');

  // 6. Another site's clue by its address: refused by the API, shown as not found.
  await page.goto(`${URL_}/#/clues/${OTHER_CLUE_ID}`);
  await page.waitForSelector('#page-error');
  // 404 like a missing clue: another site's clue does not reveal that it exists (2414856).
  expect((await page.textContent('#page-error')).includes('404'), `clue #${OTHER_CLUE_ID} of ${OTHER_SITE} is refused (404)`);

  // 7. Devices: list, and a device's charts (uPlot canvas).
  await page.goto(`${URL_}/#/devices`);
  await page.waitForSelector('#device-table');
  const devSites = await page.$$eval('#device-table tbody tr', (r) => r.map((x) => x.dataset.site));
  expect(devSites.length > 0 && devSites.every((s) => s === SITE), `devices of ${SITE} only (${devSites.length})`);
  await shot('04-devices');
  await page.goto(`${URL_}/#/devices/${encodeURIComponent(SITE)}/${encodeURIComponent(LIVE_DEVICE)}`);
  await page.waitForSelector('#device-charts canvas');
  ok('device readings chart drawn');
  await shot('05-device-detail');

  // 8. Statistics, flights (may be unavailable), cameras.
  await page.goto(`${URL_}/#/stats`);
  await page.waitForSelector('#kpi-disposal');
  await page.waitForSelector('#stat-charts canvas');
  expect((await page.textContent('#kpi-total .kpi')).trim() !== '0', 'statistics count the clues');
  expect(await page.$(`#decision-stats tr[data-matter="manhole_cover"][data-band="${applicable}"]`),
    'statistics count the decision by matter and band');
  await shot('06-stats');
  await page.goto(`${URL_}/#/flights`);
  await page.waitForSelector('#flights-na, #flight-map');
  ok(`flights page renders (${(await page.$('#flights-na')) ? 'flights API not available here' : 'flights API present'})`);
  await shot('07-flights');
  // The same page on responses shaped like the flights contract (the flights API is another
  // module's; this checks the drawing): task polygons and findings on the offline map.
  const area = { type: 'Polygon', coordinates: [[[121.47, 31.23], [121.48, 31.23], [121.48, 31.24], [121.47, 31.24], [121.47, 31.23]]] };
  const flight = { id: 'f-1', status: 'processing', progress: 0.4,
    findings: [{ task_id: 't-1', class: 'car', confidence: 0.91, lat: 31.235, lon: 121.475, time_ms: Date.now() }] };
  const fixtures = {
    '/api/v1/flights': [flight], '/api/v1/flights/f-1': flight,
    '/api/v1/tasks': [{ id: 't-1', name: 'Market street', area }],
  };
  await page.route(/\/api\/v1\/(flights|tasks)/, (route) => {
    const body = fixtures[new URL(route.request().url()).pathname];
    return body ? route.fulfill({ json: body }) : route.fulfill({ status: 404, json: { error: 'no' } });
  });
  await page.reload();
  await page.waitForSelector('#flight-map svg path[data-task="t-1"]');
  await page.waitForSelector('#flight-map svg circle.finding');
  expect((await page.textContent('#task-results')).includes('car: 1'), 'contract-shaped flight: task area, finding and per-task result drawn');
  await shot('07b-flights-contract-fixture');
  await page.unroute(/\/api\/v1\/(flights|tasks)/);
  await page.goto(`${URL_}/#/clues`);

  // 9. Language toggle, kept across a reload.
  await page.click('#lang');
  await page.waitForFunction(() => document.querySelector('#nav a[data-page=clues]').textContent === 'Clues');
  await page.reload();
  await page.waitForSelector('#nav a[data-page=stats]');
  expect((await page.textContent('#nav a[data-page=stats]')) === 'Statistics'
    && (await page.getAttribute('html', 'lang')) === 'en', 'English toggle kept after reload');
  await page.goto(`${URL_}/#/clues`);
  await page.waitForSelector('#clue-table');
  await shot('08-clues-en');
  await page.goto(liveUrl);
  await page.waitForSelector('#matter-decision');
  const matterEn = await page.textContent('#matter');
  expect(matterEn.includes('Enforcement matter') && matterEn.includes('Manhole cover opened')
    && /(holds|fails): /.test(await page.textContent('#matter-bands'))
    && (await page.textContent('#matter-decision')).includes('Latest decision'), 'the matter, band reasons and decision in English');
  await shot('08b-clue-matter-en');
  expect((await page.textContent('#owner')).includes('Owner notified and heard')
    && (await page.textContent('#owner-due')).includes('Owner may answer until'), 'the owner card and answer window in English');
  await page.waitForSelector('#owner-notice-channel[data-loaded=true]');
  expect((await page.textContent('#owner-notice-channel')).includes('sms (phone)')
    && (await page.textContent('#owner-notices')).includes('Channel: sms'), 'the channel list and the notice in English');

  // 10. What is shown follows the role: a device token gets no clue pages.
  await page.click('#signout');
  await signIn(DEVICE);
  await page.waitForSelector('#device-table');
  expect(await page.$eval('#nav a[data-page=clues]', (a) => a.hidden)
    && await page.$eval('#nav a[data-page=stats]', (a) => a.hidden)
    && !(await page.$('#live:not([hidden])')), 'a device token sees devices, no clue pages or stream');

  // 11. Camera wall with an all-sites token (admin): frames and health.
  await page.click('#signout');
  await signIn(ADMIN);
  await page.goto(`${URL_}/#/cameras`);
  await page.waitForSelector('#camera-wall .cam');
  await page.waitForSelector('#camera-wall img[src^="blob:"]');
  ok('camera wall shows a frame');
  await shot('09-cameras');
  await page.goto(`${URL_}/#/clues`);
  await page.waitForSelector('#clue-table');
  const adminSites = await page.$$eval('#clue-rows tr', (rows) => new Set(rows.map((r) => r.dataset.site)).size);
  expect(adminSites > 1, `admin sees clues of ${adminSites} sites`);
  await shot('10-clues-admin');
  // The other site's clue, for the admin: its evidence image is fetched with the token.
  await page.goto(`${URL_}/#/clues/${OTHER_CLUE_ID}`);
  await page.waitForSelector('#evidence img[src^="blob:"]');
  expect(await page.$eval('#evidence img', (i) => i.complete && i.naturalWidth > 0), 'evidence image shown');
  await shot('12-clue-evidence');
  // Organisation: the unit of the clue's site (and those above it), the lead and assisting
  // departments its matter's dispatch rule gave it; in English, then in Chinese.
  const orgEn = await page.textContent('#clue-org');
  expect(orgEn.includes('Unit: 美食街道 (城东区 · 演示市)') && orgEn.includes('Lead department: urban-management')
    && orgEn.includes('Assisting: environment'), `the clue shows its unit, lead and assisting departments in English (${orgEn})`);
  await page.click('#lang');
  await page.waitForFunction(() => document.documentElement.lang === 'zh-CN');
  await page.waitForSelector('#clue-org');
  const orgZh = await page.textContent('#clue-org');
  expect(orgZh.includes('所属单位: 美食街道') && orgZh.includes('牵头部门: urban-management')
    && orgZh.includes('协办部门: environment'), `and in Chinese (${orgZh})`);
  await shot('12b-clue-org-zh');
  await page.click('#lang');
  await page.waitForFunction(() => document.documentElement.lang === 'en');

  // A drone flight through the page: a still uploaded in resumable chunks, then processed.
  // This JPEG has no GPS EXIF, so processing ends `done` with that reason reported.
  await page.goto(`${URL_}/#/flights`);
  await page.waitForSelector('#flight-map');
  await page.fill('#flight-site', SITE);
  await page.setInputFiles('#flight-file', env('UPLOAD_JPEG'));
  await page.click('#flight-upload');
  await page.waitForSelector('#flight-list tbody tr');
  const uploaded = await page.evaluate(async () => {
    const headers = { Authorization: `Bearer ${sessionStorage.getItem('gateway.token')}` };
    for (let i = 0; i < 120; i += 1) {
      const list = await (await fetch('/api/v1/flights', { headers })).json();
      const f = await (await fetch(`/api/v1/flights/${list[0].id}`, { headers })).json();
      if (['done', 'failed'].includes(f.status)) return f;
      await new Promise((r) => setTimeout(r, 500));
    }
    return null;
  });
  expect(uploaded && uploaded.status === 'done' && uploaded.frames_done === 1
    && (uploaded.files ?? []).some((x) => x.complete && x.sha256 === env('UPLOAD_SHA256'))
    && JSON.stringify(uploaded.errors ?? []).includes('GPS'),
  `flight uploaded through the page and processed (${uploaded?.status}, ${JSON.stringify(uploaded?.errors ?? [])})`);
  await page.reload();
  await page.waitForSelector('#flight-list tbody tr td:text-is("done")');
  await shot('07c-flight-uploaded');

  // A tablet in portrait: the board stays usable.
  await page.setViewportSize({ width: 768, height: 1024 });
  await page.goto(`${URL_}/#/clues`);
  await page.waitForSelector('#clue-table');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow <= 0, `no sideways scrolling on a portrait tablet (${overflow}px)`);
  await shot('13-clues-tablet-portrait');
  await page.setViewportSize({ width: 1280, height: 800 });

  // A restaurant's grease trap (simulated): fill chart and pump-out history.
  const trap = await page.evaluate(async () => {
    const r = await fetch('/api/v1/devices', { headers: { Authorization: `Bearer ${sessionStorage.getItem('gateway.token')}` } });
    return (await r.json()).find((d) => d.device.startsWith('trap'));
  });
  if (trap) {
    // The demo registers its fleet: registered devices are points on the offline map, and
    // a device page shows its registry entry.
    await page.goto(`${URL_}/#/devices`);
    await page.waitForSelector('#device-map svg circle.device');
    const points = await page.$$eval('#device-map svg circle.device', (c) => c.length);
    expect(points > 1, `registered devices on the map (${points})`);
    await shot('14-device-map');
    await page.goto(`${URL_}/#/devices/${encodeURIComponent(trap.site)}/${encodeURIComponent(trap.device)}`);
    await page.waitForSelector('#device-registry');
    const reg = await page.textContent('#device-registry');
    expect(trap.registry && reg.includes(trap.registry.shop) && reg.includes(trap.registry.owner),
      `the device page shows the registry entry (${reg.slice(0, 80)})`);
    await page.waitForSelector('#device-charts canvas');
    await page.waitForSelector('#pumpouts');
    await page.fill('input[name=pumpout-note]', '清运公司 A-0042');
    await page.click('#pumpout-register');
    await page.waitForSelector('#pumpout-records:has-text("A-0042")');
    ok(`grease trap ${trap.site}/${trap.device}: charts, pump-out history, a pump-out registered`);
    await shot('11-grease-trap');
  }

  // Filters: "open" leaves out the resolved live clue; level asks the API again.
  await page.goto(`${URL_}/#/clues`);
  await page.waitForSelector('#clue-table');
  await page.selectOption('select[name=status]', 'open');
  await page.waitForFunction(() => ![...document.querySelectorAll('#clue-rows tr')].some((r) => r.dataset.status === 'resolved'));
  ok('the open filter hides resolved clues');
  await page.selectOption('select[name=level]', 'high');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('#clue-rows tr')];
    return rows.length > 0 && rows.every((r) => r.classList.contains('row-high'));
  });
  ok('the level filter shows only high clues');
  await shot('14-clues-filtered');
  // The unit filter asks the API for the clues of one township's scope.
  await page.selectOption('select[name=unit]', 'meishi');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('#clue-rows tr')];
    return rows.length > 0 && rows.every((r) => r.dataset.site.startsWith('r-'));
  });
  ok('the unit filter shows only the township\'s clues');
  await page.selectOption('select[name=unit]', '');

  // 12. Supervision (督办): red warnings first; the supervisor turns one into a notice to a
  // unit; the page in both languages; the unit's officer (the inspector) acknowledges it.
  // The clue board opened by signing in answers late here (as on a loaded machine): it must
  // not draw over the supervision page opened meanwhile.
  const lateBoard = (url) => new URL(url).pathname === '/api/v1/clues';
  await page.route(lateBoard, async (route) => {
    await new Promise((r) => setTimeout(r, 1500));
    await route.continue().catch(() => {});
  });
  await page.click('#signout');
  await signIn(SUPERVISOR);
  await page.waitForSelector('#signout', { state: 'visible' });
  await page.goto(`${URL_}/#/oversight`);
  await page.waitForSelector(`#warning-${WARNING_ID}`);
  // A stream reconnect reloads the board only while the board is shown.
  await page.evaluate(() => window.dispatchEvent(new CustomEvent('stream-reconnected')));
  await page.waitForTimeout(2000);
  await page.unroute(lateBoard);
  expect(await page.$(`#warning-${WARNING_ID}`) !== null,
    'a page that answers late does not draw over the page shown since');
  const levels = await page.$$eval('#warnings tbody tr', (rows) => rows.map((r) => r.dataset.level));
  expect(levels[0] === 'red' && levels.includes('yellow') && levels.indexOf('yellow') > levels.lastIndexOf('red'),
    `supervision page lists the red warning first, then the yellow one (${levels.join(', ')})`);
  // The demo configures units: the older `level:unit/department` form names a configured
  // unit (checked) and is stored by unit id.
  await page.fill(`#notice-unit-${WARNING_ID}`, 'county:chengdong/urban-management');
  await page.fill(`#notice-days-${WARNING_ID}`, '3');
  await page.click(`#issue-${WARNING_ID}`);
  await page.waitForSelector('#notices tbody tr[data-state=issued]');
  expect((await page.textContent('#notices tbody tr[data-state=issued]')).includes('chengdong/urban-management'),
    'a supervisor turns the red warning into a notice to a configured unit');
  const svLang = async (want, warnings, notices, state) => {
    if ((await page.getAttribute('html', 'lang')) !== want) {
      await page.click('#lang');
      await page.waitForFunction((w) => document.documentElement.lang === w, want);
    }
    await page.waitForSelector(`#warnings h2:text-is("${warnings}")`);
    return (await page.textContent('#notices h2')) === notices
      && (await page.textContent('#notices tbody tr[data-state=issued]')).includes(state);
  };
  expect(await svLang('en', 'Oversight warnings', 'Supervision notices', 'issued'), 'the supervision page in English');
  await shot('15-oversight-en');
  expect(await svLang('zh-CN', '监督预警', '督办通知', '已下发'), 'the supervision page in Chinese');
  await shot('15b-oversight-zh');
  await page.click('#signout');
  await signIn(INSPECTOR);
  await page.goto(`${URL_}/#/oversight`);
  await page.waitForSelector('#notices tbody tr[data-state=issued]');
  const nid = await page.$eval('#notices tbody tr[data-state=issued]', (r) => r.id.replace('notice-', ''));
  await page.fill(`#notice-text-${nid}`, '已收到，三日内整改');
  await page.click(`#notice-acknowledge-${nid}`);
  await page.waitForSelector(`#notice-${nid}[data-state=acknowledged]`);
  expect(!(await page.$('#warnings')), "the unit's officer acknowledges the notice (and sees no warnings)");
  await shot('15c-oversight-officer');

  expect(consoleErrors.length === 0, `no console errors (${consoleErrors.join(' | ')})`);
  console.log(`PASS ${checks} checks`);
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
  process.exit(0);
} catch (e) {
  console.log(`FAIL ${e.message}`);
  try { await shot('failure'); } catch { /* no page */ }
  await browser.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  process.exit(1);
}
