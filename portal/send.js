// Sending to SAMP clients (TOPCAT, Aladin, …) through the hub's Web Profile on this machine,
// with sampjs (CC0, by Mark Taylor; portal/vendor/, unmodified). The hub asks its user to
// accept the page at the first message. Once registered (at the first message it sends), the
// page also receives the messages it subscribes to (`onMessage`): `table.highlight.row`.

const SAMPJS = "portal/vendor/sampjs-1.0.3/samp.js";

let loading = null;
let connector = null;
// What to do with a received message, by MType: fn(params).
const handlers = {};

// Subscribes the page to `mtype` (before its first message is sent).
export function onMessage(mtype, fn) {
  handlers[mtype] = fn;
}

// sampjs is a classic script defining the global `samp`; the npm package's copy ends with
// `module.exports = { samp }` (for Node), so it is given a `module` to write to.
function load() {
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      if (typeof globalThis.module === "undefined") globalThis.module = { exports: {} };
      const s = document.createElement("script");
      s.src = SAMPJS;
      s.onload = () => resolve(globalThis.module.exports.samp || window.samp);
      s.onerror = () => reject(new Error("cannot load sampjs"));
      document.head.append(s);
    });
  }
  return loading;
}

async function connection() {
  const samp = await load();
  if (!connector) {
    const client = new samp.CallableClient();
    // sampjs' CallableClient replies to calls through its `connection`, which it leaves unset.
    client.init = function init(conn) {
      this.connection = conn;
    };
    for (const [mtype, fn] of Object.entries(handlers)) {
      client.callHandler[mtype] = (senderId, message) => {
        fn(message["samp.params"] || {}, senderId);
        return {};
      };
    }
    connector = new samp.Connector("vostok portal", {
      "samp.name": "vostok portal",
      "samp.description": "The vostok data server's web page",
    }, client, client.calculateSubscriptions());
  }
  return new Promise((resolve, reject) => {
    connector.runWithConnection(
      (conn) => resolve({ samp, conn }),
      (err) => reject(new Error(`no SAMP hub answered (start TOPCAT or Aladin first): ${err}`)),
    );
  });
}

// Broadcasts `table.load.votable` with `url` (absolute: the hub's clients fetch it).
export async function sendTable(url, name) {
  const { samp, conn } = await connection();
  conn.notifyAll([new samp.Message("table.load.votable", { url, name, "table-id": url })]);
}

// Broadcasts `image.load.fits` with `url` (absolute).
export async function sendImage(url, name) {
  const { samp, conn } = await connection();
  conn.notifyAll([new samp.Message("image.load.fits", { url, name, "image-id": url })]);
}

// Broadcasts `coord.pointAt.sky` (degrees, ICRS).
export async function pointAt(ra, dec) {
  const { samp, conn } = await connection();
  conn.notifyAll([new samp.Message("coord.pointAt.sky", { ra: String(ra), dec: String(dec) })]);
}

// Whether a Web Profile hub is running now (resolves within a second or two).
export async function hubRunning() {
  const samp = await load();
  return new Promise((resolve) => samp.ping((ok) => resolve(!!ok)));
}
