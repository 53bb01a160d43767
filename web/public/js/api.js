// Every call carries the bearer token from sessionStorage. Nothing puts the token in a URL.

const KEY = 'gateway.token';

export function token() { return sessionStorage.getItem(KEY); }
export function setToken(t) { t ? sessionStorage.setItem(KEY, t) : sessionStorage.removeItem(KEY); }

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function headers(extra = {}) {
  return { Authorization: `Bearer ${token()}`, ...extra };
}

async function check(res) {
  if (res.ok) return res;
  let msg = res.statusText;
  try { msg = (await res.json()).error ?? msg; } catch { /* not JSON */ }
  if (res.status === 401) window.dispatchEvent(new CustomEvent('unauthorized'));
  throw new ApiError(res.status, `${res.status} ${msg}`);
}

export async function get(path) {
  const res = await fetch(path, { headers: headers() });
  return (await check(res)).json();
}

export async function post(path, body) {
  const res = await fetch(path, {
    method: 'POST',
    headers: headers({ 'Content-Type': 'application/json' }),
    body: JSON.stringify(body),
  });
  return (await check(res)).json();
}

/** Fetches an image (or any file) with the token and returns a `blob:` URL for <img src>. */
export async function blobUrl(path) {
  const res = await fetch(path, { headers: headers() });
  return URL.createObjectURL(await (await check(res)).blob());
}

/**
 * Uploads `file` as multipart form data (field `file`, plus `fields`) with progress (fetch has
 * no upload progress): resolves with the JSON answer.
 */
/** Content types the flights API accepts, by file extension. */
const UPLOAD_TYPES = { jpg: 'image/jpeg', jpeg: 'image/jpeg', mp4: 'video/mp4', mov: 'video/quicktime', srt: 'application/x-subrip' };
const CHUNK = 8 * 1024 * 1024;

function putChunk(path, blob, start, total, type, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', path);
    xhr.setRequestHeader('Authorization', `Bearer ${token()}`);
    xhr.setRequestHeader('Content-Type', type);
    xhr.setRequestHeader('Content-Range', `bytes ${start}-${start + blob.size - 1}/${total}`);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded);
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(Object.assign(new ApiError(xhr.status, `${xhr.status} ${body?.error ?? xhr.statusText}`), { body }));
    };
    xhr.onerror = () => reject(new ApiError(0, 'network error'));
    xhr.send(blob);
  });
}

/**
 * Uploads `file` into flight `id` in resumable chunks (`PUT .../files/{name}` with
 * `Content-Range`). Resumes from what the gateway already holds, and after a 409 from the
 * offset it reports. `onProgress(bytesDone)` follows the upload.
 */
export async function uploadFlightFile(id, file, onProgress) {
  const ext = file.name.split('.').pop().toLowerCase();
  const type = UPLOAD_TYPES[ext];
  if (!type) throw new ApiError(415, `${file.name}: not a JPEG, MP4, MOV or SRT file`);
  const path = `/api/v1/flights/${encodeURIComponent(id)}/files/${encodeURIComponent(file.name)}`;
  let start = 0;
  try {
    const state = await get(path);
    if (state?.complete) { onProgress(file.size); return state; }
    start = state?.received ?? 0;
  } catch (e) {
    if (e.status !== 404) throw e;
  }
  let last = null;
  for (let tries = 0; start < file.size && tries < 1000; tries += 1) {
    const blob = file.slice(start, Math.min(start + CHUNK, file.size));
    try {
      last = await putChunk(path, blob, start, file.size, type, (n) => onProgress(start + n));
      start += blob.size;
    } catch (e) {
      if (e.status === 409 && Number.isInteger(e.body?.received)) start = e.body.received;
      else throw e;
    }
  }
  onProgress(file.size);
  return last;
}

/**
 * Splits an SSE text buffer into complete events (`{name, data}`; blocks without data, such as
 * keep-alive comments, are skipped) and the unfinished rest, which waits for the next chunk.
 */
export function parseEvents(buf) {
  const events = [];
  let cut;
  while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
    const block = buf.slice(0, cut);
    buf = buf.slice(cut).replace(/^\r?\n\r?\n/, '');
    let name = 'message';
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith('event:')) name = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (data.length) events.push({ name, data: data.join('\n') });
  }
  return { events, rest: buf };
}

/**
 * Server-sent events read through fetch, so the Authorization header goes with them
 * (EventSource cannot send headers). Reconnects with a bounded back-off until `signal` aborts.
 * `onEvent(name, data)` gets each event; `onState(connected)` the connection state.
 */
export async function streamEvents(path, onEvent, onState, signal) {
  let delay = 1000;
  while (!signal.aborted) {
    try {
      const res = await check(await fetch(path, {
        headers: headers({ Accept: 'text/event-stream' }), signal,
      }));
      onState(true);
      delay = 1000;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const parsed = parseEvents(buf + value);
        buf = parsed.rest;
        for (const ev of parsed.events) onEvent(ev.name, ev.data);
      }
    } catch (e) {
      if (signal.aborted) break;
      if (e instanceof ApiError && e.status === 401) break;
    }
    onState(false);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 30000);
  }
}
