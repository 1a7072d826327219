// The logged-in user's VOSpace, through the server's VOSpace 2.1 REST endpoints only:
// nodes/{path} (GET a listing, PUT a container, POST properties, DELETE), synctrans (the
// negotiated upload and download endpoints) and transfers (asynchronous moves, UWS).

import { authFetch } from "./auth.js";

const VOS = "http://www.ivoa.net/xml/VOSpace/v2.0";
const XSI = "http://www.w3.org/2001/XMLSchema-instance";
const CORE = "ivo://ivoa.net/vospace/core#";
export const PROP = {
  length: CORE + "length",
  date: CORE + "date",
  md5: CORE + "MD5",
  groupread: CORE + "groupread",
  groupwrite: CORE + "groupwrite",
  ispublic: CORE + "ispublic",
};

let authority = null;

// The IVOA authority of the server's node URIs (from portal/api/me).
export function setAuthority(a) {
  authority = a;
}

// A node path ("alice/results/t.vot", no leading slash) as a node URI and as the URL of its
// nodes/ resource (each name percent-encoded).
export function uriOf(path) {
  return `vos://${authority}!vospace/${encodePath(path)}`;
}

function encodePath(path) {
  return path.split("/").filter(Boolean).map(encodeURIComponent).join("/");
}

function nodesUrl(path) {
  return `vospace/nodes/${encodePath(path)}`;
}

// The group URI core#groupread/core#groupwrite hold for a group's short name.
export function groupUri(name) {
  return `ivo://${authority}/gms?${name}`;
}

export function groupName(uri) {
  const i = uri.indexOf("/gms?");
  return i >= 0 ? uri.slice(i + 5) : uri;
}

async function fault(r, what) {
  const text = (await r.text()).trim();
  return new Error(`${what}: ${text.split("\n")[0] || `HTTP ${r.status}`}`);
}

function props(el) {
  const out = {};
  const ps = el.getElementsByTagNameNS(VOS, "properties")[0];
  if (!ps) return out;
  for (const p of ps.children) {
    if (p.localName === "property") out[p.getAttribute("uri")] = p.getAttribute(`xsi:nil`) === "true" ? null : p.textContent;
  }
  return out;
}

// The container at `path`: {path, properties, children: [{name, path, type, length, date,
// groupread, groupwrite, ispublic}]}, names sorted with containers first.
export async function list(path) {
  const r = await authFetch(`${nodesUrl(path)}?detail=max`, { cache: "no-store" });
  if (!r.ok) throw await fault(r, `cannot list ${path}`);
  const doc = new DOMParser().parseFromString(await r.text(), "application/xml");
  const root = doc.documentElement;
  const nodes = [...root.children].find((c) => c.localName === "nodes");
  const children = [];
  for (const n of nodes ? nodes.children : []) {
    if (n.localName !== "node") continue;
    const uri = n.getAttribute("uri");
    const name = decodeURIComponent(uri.slice(uri.lastIndexOf("/") + 1));
    const p = props(n);
    const type = (n.getAttributeNS(XSI, "type") || "").replace(/^.*:/, "");
    children.push({
      name,
      path: `${path}/${name}`,
      type,
      length: p[PROP.length] != null ? Number(p[PROP.length]) : null,
      date: p[PROP.date] || "",
      groupread: (p[PROP.groupread] || "").split(/\s+/).filter(Boolean),
      groupwrite: (p[PROP.groupwrite] || "").split(/\s+/).filter(Boolean),
      ispublic: p[PROP.ispublic] === "true",
    });
  }
  children.sort((a, b) => (a.type === "ContainerNode" ? 0 : 1) - (b.type === "ContainerNode" ? 0 : 1) || a.name.localeCompare(b.name));
  return { path, properties: props(root), children };
}

function nodeDoc(path, type, properties = {}) {
  const esc = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/"/g, "&quot;");
  const ps = Object.entries(properties).map(([uri, v]) => v === null
    ? `<vos:property uri="${esc(uri)}" xsi:nil="true"/>`
    : `<vos:property uri="${esc(uri)}">${esc(v)}</vos:property>`).join("");
  return `<?xml version="1.0" encoding="UTF-8"?>\n<vos:node xmlns:vos="${VOS}" xmlns:xsi="${XSI}" ` +
    `xsi:type="vos:${type}" uri="${esc(uriOf(path))}"><vos:properties>${ps}</vos:properties></vos:node>`;
}

export async function mkdir(path) {
  const r = await authFetch(nodesUrl(path), {
    method: "PUT", body: nodeDoc(path, "ContainerNode"), headers: { "Content-Type": "text/xml" },
  });
  if (!r.ok) throw await fault(r, `cannot create ${path}`);
}

export async function remove(path) {
  const r = await authFetch(nodesUrl(path), { method: "DELETE" });
  if (!r.ok) throw await fault(r, `cannot delete ${path}`);
}

// Sets (a string) or removes (null) properties of the node at `path`.
export async function setProperties(path, type, properties) {
  const r = await authFetch(nodesUrl(path), {
    method: "POST", body: nodeDoc(path, type, properties), headers: { "Content-Type": "text/xml" },
  });
  if (!r.ok) throw await fault(r, `cannot change ${path}`);
}

// The endpoint the server negotiates for a transfer of `path` (a URL of this server that
// holds its own authorisation for a while).
async function endpoint(path, direction) {
  const protocol = CORE + (direction === "pushToVoSpace" ? "httpput" : "httpget");
  const body = new URLSearchParams({ TARGET: uriOf(path), DIRECTION: direction, PROTOCOL: protocol });
  // 303 to the transfer document, which fetch follows.
  const r = await authFetch("vospace/synctrans", { method: "POST", body });
  if (!r.ok) throw await fault(r, `cannot transfer ${path}`);
  const doc = new DOMParser().parseFromString(await r.text(), "application/xml");
  const ep = doc.getElementsByTagNameNS(VOS, "endpoint")[0]?.textContent.trim();
  if (!ep) throw new Error(`the server offered no endpoint for ${path}`);
  // The endpoint as this page reaches the server (the server names itself after the Host).
  const u = new URL(ep, document.baseURI);
  return u.origin === location.origin ? u.href : new URL(`vospace/data/${u.pathname.split("/").pop()}`, document.baseURI).href;
}

// A URL that downloads the file at `path` without a token (negotiated now).
export function downloadUrl(path) {
  return endpoint(path, "pullFromVoSpace");
}

// Uploads `file` (a File or Blob) to `path`, calling onProgress(sent, total); XMLHttpRequest
// because fetch() reports no upload progress.
export async function upload(path, file, onProgress = () => {}) {
  const url = await endpoint(path, "pushToVoSpace");
  await new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open("PUT", url);
    if (file.type) x.setRequestHeader("Content-Type", file.type);
    x.upload.addEventListener("progress", (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size));
    x.addEventListener("load", () => {
      if (x.status >= 200 && x.status < 300) {
        onProgress(file.size, file.size);
        resolve();
      } else reject(new Error(`the upload of ${path} failed: ${(x.responseText || `HTTP ${x.status}`).split("\n")[0]}`));
    });
    x.addEventListener("error", () => reject(new Error(`the upload of ${path} failed (network)`)));
    x.send(file);
  });
}

// Moves (or renames) `from` to `to` as an asynchronous transfer, followed to its end.
export async function move(from, to) {
  const body = new URLSearchParams({ TARGET: uriOf(from), DIRECTION: uriOf(to), KEEPBYTES: "false", PHASE: "RUN" });
  const r = await authFetch("vospace/transfers", { method: "POST", body });
  if (!r.ok) throw await fault(r, `cannot move ${from}`);
  const job = r.url;
  for (;;) {
    const p = await authFetch(`${job}/phase`, { cache: "no-store" });
    if (!p.ok) throw await fault(p, `the move of ${from}`);
    const phase = (await p.text()).trim();
    if (phase === "COMPLETED") return;
    if (["ERROR", "ABORTED"].includes(phase)) {
      const e = await authFetch(`${job}/error`);
      throw new Error(`cannot move ${from} to ${to}: ${(await e.text()).trim() || phase}`);
    }
    await new Promise((res) => setTimeout(res, 300));
  }
}
