// Asynchronous queries (TAP async, UWS 1.1): submit a job, follow its phase, fetch its
// result. The page remembers the URLs of the jobs it made in localStorage, so that the list
// survives a reload: the server lists a caller's jobs only to their owner, and the page
// queries anonymously (anonymous jobs are never listed; whoever has their URL may use them).

const KEY = "vostok.jobs";
const KEEP = 50;

// The jobs this browser made, newest first: [{url, query, created, phase}].
export function remembered() {
  try {
    const list = JSON.parse(localStorage.getItem(KEY) || "[]");
    return Array.isArray(list) ? list.filter((j) => j && typeof j.url === "string") : [];
  } catch {
    return [];
  }
}

function store(list) {
  try {
    localStorage.setItem(KEY, JSON.stringify(list.slice(0, KEEP)));
  } catch {
    // Storage full or refused (private mode): the list lives until the page goes.
  }
}

// Records what is known of a job (its phase) in the list.
export function note(url, fields) {
  store(remembered().map((j) => (j.url === url ? { ...j, ...fields } : j)));
}

export function forget(url) {
  store(remembered().filter((j) => j.url !== url));
}

// Submits `query` as a job that starts at once; returns the remembered entry.
export async function submit(query, maxrec) {
  const body = new URLSearchParams({ REQUEST: "doQuery", LANG: "ADQL", QUERY: query, PHASE: "RUN" });
  if (maxrec) body.set("MAXREC", maxrec);
  // The service answers 303 to the job; fetch follows it, so r.url is the job's URL.
  const r = await fetch("tap/async", { method: "POST", body });
  const text = await r.text();
  if (!r.ok || !/\/tap\/async\/[^/?#]+$/.test(new URL(r.url).pathname)) {
    throw new Error(`the job was not created (${r.status}): ${text.slice(0, 300)}`);
  }
  const job = { url: r.url, query, created: new Date().toISOString(), phase: phaseIn(text) || "QUEUED" };
  store([job, ...remembered().filter((j) => j.url !== job.url)]);
  return job;
}

function phaseIn(xml) {
  const m = /<(?:uws:)?phase>\s*([A-Z]+)\s*</.exec(xml);
  return m ? m[1] : null;
}

// The job's phase now; "GONE" when the service no longer has it (destroyed, or another
// server's).
export async function phase(url) {
  const r = await fetch(`${url}/phase`, { cache: "no-store" });
  if (r.status === 404 || r.status === 410) return "GONE";
  if (!r.ok) throw new Error(`the job's phase could not be read (${r.status})`);
  return (await r.text()).trim();
}

export const FINAL = new Set(["COMPLETED", "ERROR", "ABORTED", "GONE", "ARCHIVED"]);

// Follows the job until it ends, calling onPhase(phase) at each change; returns the last
// phase, or null when `cancelled()` became true first (the page turned to something else).
export async function follow(url, onPhase, { every = 500, cancelled = () => false } = {}) {
  let last = null;
  for (;;) {
    if (cancelled()) return null;
    const p = await phase(url);
    if (p !== last) {
      last = p;
      note(url, { phase: p });
      onPhase(p);
    }
    if (FINAL.has(p)) return p;
    await new Promise((res) => setTimeout(res, every));
  }
}

export async function result(url) {
  const r = await fetch(`${url}/results/result`);
  if (!r.ok) throw new Error(`the job's result could not be read (${r.status})`);
  return r.text();
}

export async function error(url) {
  const r = await fetch(`${url}/error`);
  return r.ok ? (await r.text()).replace(/<[^>]+>/g, " ").replace(/\s+/g, " ").trim() : `HTTP ${r.status}`;
}

export async function abort(url) {
  const r = await fetch(`${url}/phase`, { method: "POST", body: new URLSearchParams({ PHASE: "ABORT" }) });
  if (!r.ok) throw new Error(`the job could not be aborted (${r.status})`);
}
