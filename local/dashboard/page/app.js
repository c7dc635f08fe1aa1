// The local dashboard page: polls /api/state (local/dashboard/dashboard-server.ts) and draws the shared layout's
// sections with uPlot (served from node_modules by the same server). Plain ES module: no build step.
/* global uPlot */

const POLL_MS = 2000;
const COLORS = ['#0b57d0', '#b3261e', '#1a6b34', '#8a4b00', '#6a1b9a'];
const PART_TITLES = {
  producer: 'Producer',
  firehose: 'Firehose stand-in (lake, raw changelog)',
  'stream-apply': 'Stream apply (merge)',
};
/** Which part's outage leaves a section without fresh data. */
const PART_OF_SOURCE = {
  producer: 'producer',
  producerTask: 'producer',
  stream: 'producer',
  delivery: 'firehose',
  streamApply: 'stream-apply',
  merge: null,
  lake: null,
};

const $ = (id) => document.getElementById(id);
const time = (ms) => (ms ? new Date(ms).toLocaleTimeString() : '—');
const num = (v, digits = 1) => (v === null || v === undefined ? '—' : Number(v).toFixed(digits).replace(/\.0+$/, ''));
const esc = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

let minutes = Number($('range').value);
let paused = false;
let lastOk = null;
const charts = new Map();

$('range').addEventListener('change', () => {
  minutes = Number($('range').value);
  void poll();
});
$('pause').addEventListener('click', () => {
  paused = !paused;
  $('pause').setAttribute('aria-pressed', String(paused));
  $('pause').textContent = paused ? 'Resume updates' : 'Pause updates';
});

/** Builds a section's figure once: caption, chart, a table of the latest values (the chart's text alternative). */
function buildSection(s) {
  const fig = document.createElement('figure');
  fig.id = `section-${s.id}`;
  fig.dataset.section = s.id;
  fig.dataset.title = s.title;
  const capId = `cap-${s.id}`;
  fig.setAttribute('aria-labelledby', capId);
  fig.innerHTML = `<figcaption id="${capId}"><span class="title">${esc(s.title)}</span><span class="down-badge"></span></figcaption>
    <div class="chart" role="img" aria-label="${esc(`Chart: ${s.title}; latest values in the table below`)}"></div>
    <p class="note"></p>
    <table class="values"><caption class="note">Latest values</caption>
      <thead><tr><th scope="col">metric</th><th scope="col">latest</th><th scope="col">max shown</th></tr></thead><tbody></tbody></table>`;
  // Each section keeps its slot (the layout's order) when its figure is rebuilt.
  let slot = $(`slot-${s.id}`);
  if (!slot) {
    slot = document.createElement('div');
    slot.id = `slot-${s.id}`;
    $('sections').append(slot);
  }
  slot.replaceChildren(fig);
  const measured = s.series.filter((x) => x.measured);
  const hasRight = measured.some((x) => x.axis === 'right');
  const opts = {
    width: Math.max(360, fig.clientWidth - 20),
    height: 200,
    scales: { x: { time: true }, y: {}, y2: {} },
    axes: [{}, { scale: 'y' }, ...(hasRight ? [{ scale: 'y2', side: 1, grid: { show: false } }] : [])],
    series: [
      {},
      ...measured.map((x, i) => ({
        label: x.label,
        scale: x.axis === 'right' ? 'y2' : 'y',
        stroke: COLORS[i % COLORS.length],
        width: 2,
        // Gauges are read every few seconds (not every bucket): join their points; counts have no gaps.
        spanGaps: x.statistic !== 'Sum',
      })),
    ],
    legend: { show: true },
  };
  const chart = new uPlot(opts, [[], ...measured.map(() => [])], fig.querySelector('.chart'));
  const notes = s.series.filter((x) => !x.measured);
  fig.querySelector('.note').textContent = notes.length
    ? `Not measured locally: ${notes.map((x) => `${x.name}${x.notLocal ? ` (${x.notLocal})` : ' (nothing reported yet)'}`).join('; ')}.`
    : '';
  charts.set(s.id, { chart, names: measured.map((x) => x.label), fig });
}

function updateSection(s, downParts) {
  if (!charts.has(s.id)) buildSection(s);
  const entry = charts.get(s.id);
  const measured = s.series.filter((x) => x.measured);
  // A metric reported for the first time (a poison batch, a throttle): rebuild with its series.
  if (measured.map((x) => x.label).join('|') !== entry.names.join('|')) {
    entry.chart.destroy();
    buildSection(s);
    updateSection(s, downParts);
    return;
  }
  entry.chart.setData([s.t.map((t) => t / 1000), ...measured.map((x) => x.values)]);
  const rows = s.series
    .map((x) => {
      const vals = x.values.filter((v) => v !== null);
      const latest = x.measured ? num(vals.at(-1), 2) : 'not measured locally';
      const max = x.measured && vals.length ? num(Math.max(...vals), 2) : '—';
      return `<tr><td>${esc(x.label)}</td><td data-metric="${esc(x.name)}">${latest}</td><td data-max-metric="${esc(x.name)}">${max}</td></tr>`;
    })
    .join('');
  entry.fig.querySelector('table.values tbody').innerHTML = rows;
  const down = [...new Set(s.series.map((x) => PART_OF_SOURCE[x.source]).filter((p) => p && downParts.has(p)))];
  entry.fig.querySelector('.down-badge').innerHTML = down
    .map((p) => `<span class="badge">${esc(PART_TITLES[p] ?? p)} down</span>`)
    .join('');
  entry.fig.dataset.down = String(down.length > 0);
}

function renderParts(st) {
  const items = st.parts.map((p) => {
    const what = PART_TITLES[p.name] ?? p.name;
    const text = p.up
      ? `${what}: up since ${time(p.since)}${p.starts > 1 ? `, restarted ${p.starts - 1}×` : ''}${p.lastOutage ? `; last down ${time(p.lastOutage.from)}–${time(p.lastOutage.to)}` : ''}`
      : `${what}: DOWN since ${time(p.since)}, last seen ${time(p.lastSeenUp)}${p.lastError ? `; last error: ${p.lastError.message}` : ''}`;
    return `<li data-part="${esc(p.name)}" data-up="${p.up}">${esc(text)}</li>`;
  });
  const stores = st.stores.up
    ? `Stores (MariaDB, PostgreSQL, emulators): read at ${time(st.stores.readAt)} in ${st.stores.readMs} ms`
    : st.stores.error
      ? `Stores: DOWN since ${time(st.stores.error.since)}: ${st.stores.error.message}`
      : 'Stores: first reading…';
  items.push(`<li data-part="stores" data-up="${st.stores.up || !st.stores.error}">${esc(stores)}</li>`);
  if (st.producer?.quarantined?.length)
    for (const q of st.producer.quarantined)
      items.push(
        `<li data-up="false">${esc(`Table ${q.table} quarantined since ${time(Date.parse(q.since))}: ${q.reason}`)}</li>`,
      );
  $('parts-list').innerHTML = items.join('');
}

function renderSnapshots(st) {
  if (!st.snapshots.length) {
    $('snapshots-body').innerHTML = '<p>No snapshot or backfill jobs.</p>';
    return;
  }
  const rows = st.snapshots.map(
    (j) => `<tr><td>${esc(`${j.db}.${j.table}`)}</td><td>${esc(j.kind)}</td><td>${esc(j.status)}</td>
      <td><progress max="1" value="${j.fraction}" aria-label="${esc(`${j.db}.${j.table} ${Math.round(j.fraction * 100)} percent`)}"></progress> ${Math.round(j.fraction * 100)}%</td>
      <td>${num(j.rowsRead, 0)}</td><td>${num(j.rowsPerS, 0)}</td><td>${j.etaS === null ? '—' : `${num(j.etaS, 0)} s`}</td></tr>`,
  );
  $('snapshots-body').innerHTML = `<table><caption class="note">Jobs of the producer's snapshotter</caption><thead><tr>
    <th scope="col">table</th><th scope="col">kind</th><th scope="col">status</th><th scope="col">progress</th>
    <th scope="col">rows read</th><th scope="col">rows/s</th><th scope="col">ETA</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function renderTables(st) {
  if (!st.tables.length) return;
  const total = (k) => st.tables.reduce((n, t) => n + (t[k] ?? 0), 0);
  const rows = st.tables.map((t) => {
    const differs = t.sourceRows !== t.replicaRows;
    return `<tr data-table="${esc(t.table)}"><td>${esc(t.table)}</td><td>${num(t.sourceRows, 0)}</td>
      <td class="${differs ? 'mismatch' : ''}">${num(t.replicaRows, 0)}</td><td>${num(t.capturedPerS)}</td><td>${num(t.appliedPerS)}</td>
      <td>${t.newestCommitApplied ? time(Date.parse(t.newestCommitApplied)) : '—'}</td></tr>`;
  });
  rows.push(`<tr><th scope="row">total</th><td>${num(total('sourceRows'), 0)}</td><td>${num(total('replicaRows'), 0)}</td>
    <td>${num(total('capturedPerS'))}</td><td>${num(total('appliedPerS'))}</td><td></td></tr>`);
  $('tables-body').innerHTML =
    `<table><caption class="note">Row counts now; rows/s captured into the raw changelog and applied by the merge since the last reading</caption>
    <thead><tr><th scope="col">table</th><th scope="col">source rows</th><th scope="col">replica rows</th>
    <th scope="col">captured rows/s</th><th scope="col">applied rows/s</th><th scope="col">newest commit applied</th></tr></thead>
    <tbody>${rows.join('')}</tbody></table>`;
}

function renderSetAside(st) {
  const rows = st.setAside.map(
    (e) => `<tr class="set-aside-entry"><td>${time(e.at)}</td><td>${esc(e.kind)}</td><td>${esc(e.table ?? '—')}</td>
      <td class="reason">${esc(e.reason)}</td><td>${esc(e.key ?? '')}</td></tr>`,
  );
  for (const t of st.failingTables)
    rows.push(`<tr class="set-aside-entry"><td>—</td><td>dead letters: ${t.failing.setAside} set aside, ${t.failing.retrying} retrying</td>
      <td>${esc(t.table)}</td><td class="reason">${esc(t.failing.lastError ?? '')}</td><td>npx cdc redrive</td></tr>`);
  $('set-aside-body').innerHTML = rows.length
    ? `<table><caption class="note">Newest first; kept in the lake bucket with their reason</caption><thead><tr><th scope="col">when</th><th scope="col">what</th>
      <th scope="col">table</th><th scope="col">reason</th><th scope="col">where / what to do</th></tr></thead><tbody>${rows.join('')}</tbody></table>`
    : '<p>Nothing set aside.</p>';
}

async function poll() {
  if (paused) return;
  try {
    const res = await fetch(`/api/state?minutes=${minutes}`, { signal: AbortSignal.timeout(4000), cache: 'no-store' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const st = await res.json();
    lastOk = Date.now();
    const downParts = new Set(st.parts.filter((p) => !p.up).map((p) => p.name));
    renderParts(st);
    for (const s of st.sections) updateSection(s, downParts);
    renderSnapshots(st);
    renderTables(st);
    renderSetAside(st);
    const conn = $('connection');
    conn.dataset.state = downParts.size ? 'down' : 'ok';
    conn.textContent = downParts.size
      ? `Updated ${time(st.at)}: ${[...downParts].map((p) => PART_TITLES[p] ?? p).join(', ')} down`
      : `Updated ${time(st.at)}: all parts up`;
  } catch (err) {
    // The supervisor stopped or restarts: keep what is drawn, say since when it is stale.
    const conn = $('connection');
    conn.dataset.state = 'down';
    conn.textContent = `Dashboard server unreachable (${err.message}); showing data as of ${time(lastOk)}, retrying…`;
  }
}

void poll();
setInterval(() => void poll(), POLL_MS);
