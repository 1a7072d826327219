// Asynchronous queries (TAP async, UWS 1.1): submit a job, follow its phase, fetch its
// result. Logged in, the jobs are the user's own and their list is the server's UWS job list
// for that user (`loadMine`). Anonymous, the page remembers the URLs of the jobs it made in
// localStorage, so that the list survives a reload: the server lists a caller's jobs only to
// their owner, and anonymous jobs are never listed (whoever has their URL may use them).

import { authFetch as fetch, token } from "./auth.js";

const KEY = "vostok.jobs";
const KEEP = 50;

// The logged-in user's jobs as the server last listed them (null when anonymous).
let mine = null;

// The jobs shown, newest first: [{url, query, created, phase, dest}].
export function remembered() {
  if (mine) return mine;
  try {
    const list = JSON.parse(localStorage.getItem(KEY) || "[]");
    return Array.isArray(list) ? list.filter((j) => j && typeof j.url === "string") : [];
  } catch {
    return [];
  }
}

function store(list) {
  if (mine) {
    mine = list;
    return;
  }
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

// Forgets a job: anonymous, from this browser's list; logged in, the job is deleted on the
// server (ACTION=DELETE).
export async function forget(url) {
  if (mine) {
    const r = await fetch(url, { method: "POST", body: new URLSearchParams({ ACTION: "DELETE" }) });
    if (!r.ok && r.status !== 404) throw new Error(`the job could not be deleted (${r.status})`);
  }
  store(remembered().filter((j) => j.url !== url));
}

// Logged in: the user's jobs from the server's job list (newest first, at most KEEP), each
// with its query and DEST from its job document. Anonymous (no token): back to this
// browser's list.
export async function loadMine() {
  if (!token()) {
    mine = null;
    return remembered();
  }
  const r = await fetch(`tap/async?LAST=${KEEP}`, { cache: "no-store" });
  if (!r.ok) throw new Error(`your jobs could not be listed (${r.status})`);
  const doc = new DOMParser().parseFromString(await r.text(), "application/xml");
  const list = [];
  for (const ref of doc.getElementsByTagNameNS(UWS, "jobref")) {
    const href = ref.getAttributeNS("http://www.w3.org/1999/xlink", "href");
    if (!href) continue;
    list.push({
      url: new URL(href, document.baseURI).href,
      phase: ref.getElementsByTagNameNS(UWS, "phase")[0]?.textContent.trim() || "",
      created: ref.getElementsByTagNameNS(UWS, "creationTime")[0]?.textContent.trim() || "",
      query: "",
    });
  }
  list.sort((a, b) => (b.created > a.created ? 1 : b.created < a.created ? -1 : 0));
  await Promise.all(list.map(async (j) => {
    try {
      const d = await fetch(j.url, { cache: "no-store" });
      if (!d.ok) return;
      const jd = new DOMParser().parseFromString(await d.text(), "application/xml");
      for (const p of jd.getElementsByTagNameNS(UWS, "parameter")) {
        const id = (p.getAttribute("id") || "").toLowerCase();
        if (id === "query") j.query = p.textContent;
        if (id === "dest") j.dest = p.textContent;
      }
    } catch {
      // The list still shows the job, without its query.
    }
  }));
  mine = list;
  return list;
}

const UWS = "http://www.ivoa.net/xml/UWS/v1.0";

// Submits `query` as a job that starts at once; returns the remembered entry. `extra`: more
// parameters (DEST, RESPONSEFORMAT).
export async function submit(query, maxrec, extra = {}) {
  const body = new URLSearchParams({ REQUEST: "doQuery", LANG: "ADQL", QUERY: query, PHASE: "RUN", ...extra });
  if (maxrec) body.set("MAXREC", maxrec);
  // The service answers 303 to the job; fetch follows it, so r.url is the job's URL.
  const r = await fetch("tap/async", { method: "POST", body });
  const text = await r.text();
  if (!r.ok || !/\/tap\/async\/[^/?#]+$/.test(new URL(r.url).pathname)) {
    throw new Error(`the job was not created (${r.status}): ${text.slice(0, 300)}`);
  }
  const job = { url: r.url, query, created: new Date().toISOString(), phase: phaseIn(text) || "QUEUED", dest: extra.DEST };
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
