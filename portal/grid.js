// A virtualised, sortable table: only the rows in view (and a few around them) are in the
// page, so that 100 000 rows scroll as smoothly as 100. Units under each column's name;
// a click (or Enter) on a header sorts by that column, again reverses; arrow keys, Page Up/Down,
// Home and End move the selected row. URLs are links; ObsCore publisher DIDs link to their
// DataLink document.

const ROW_H = 24;
const OVERSCAN = 10;

export class Grid {
  constructor(host, { onSelect } = {}) {
    this.host = host;
    this.onSelect = onSelect || (() => {});
    this.columns = [];
    this.rows = [];
    this.order = new Uint32Array(0);
    this.sort = null; // {col, dir}
    this.selected = -1; // position in the displayed order
    host.innerHTML = "";
    host.setAttribute("role", "grid");
    host.setAttribute("aria-label", "Result rows");
    this.head = el("div", "grid-head");
    this.head.setAttribute("role", "row");
    this.body = el("div", "grid-body");
    this.body.tabIndex = 0;
    this.body.setAttribute("role", "rowgroup");
    this.body.setAttribute("aria-label", "Result rows: arrow keys move the selection");
    this.spacer = el("div", "grid-spacer");
    this.spacer.setAttribute("role", "presentation");
    this.body.append(this.spacer);
    host.append(this.head, this.body);
    this.body.addEventListener("scroll", () => {
      this.head.scrollLeft = this.body.scrollLeft;
      this.render();
    });
    this.body.addEventListener("keydown", (e) => this.key(e));
    this.body.addEventListener("click", (e) => {
      const row = e.target.closest(".grid-row");
      if (row) this.select(Number(row.dataset.pos));
    });
    new ResizeObserver(() => this.render()).observe(this.body);
  }

  // columns: [{name, unit, ucd, datatype}]; rows: arrays of values (numbers, strings, null).
  setData(columns, rows) {
    this.columns = columns;
    this.rows = rows;
    this.order = Uint32Array.from(rows.keys());
    this.sort = null;
    this.selected = -1;
    this.widths = columns.map((c, i) => width(c, rows, i));
    this.numeric = columns.map((c) => NUMERIC.has(c.datatype));
    this.links = columns.map(linkOf);
    this.host.setAttribute("aria-rowcount", String(rows.length + 1));
    this.host.setAttribute("aria-colcount", String(columns.length));
    this.renderHead();
    this.spacer.style.height = `${rows.length * ROW_H}px`;
    this.spacer.style.width = `${this.widths.reduce((a, b) => a + b, 0)}px`;
    this.body.scrollTop = 0;
    this.drawn = null;
    this.render();
  }

  renderHead() {
    this.head.innerHTML = "";
    this.columns.forEach((c, i) => {
      const cell = el("div", "cell" + (this.numeric[i] ? " num" : ""));
      cell.setAttribute("role", "columnheader");
      cell.style.width = `${this.widths[i]}px`;
      const sorted = this.sort && this.sort.col === i;
      cell.setAttribute("aria-sort", sorted ? (this.sort.dir > 0 ? "ascending" : "descending") : "none");
      const b = document.createElement("button");
      b.type = "button";
      b.title = [c.description, c.ucd && `UCD ${c.ucd}`, "click to sort"].filter(Boolean).join(" — ");
      const arrow = sorted ? (this.sort.dir > 0 ? " ▲" : " ▼") : "";
      b.innerHTML = `<span class="name"></span><span class="unit"></span>`;
      b.querySelector(".name").textContent = c.name + arrow;
      b.querySelector(".unit").textContent = c.unit ? `[${c.unit}]` : "\u00a0";
      b.addEventListener("click", () => this.sortBy(i));
      cell.append(b);
      this.head.append(cell);
    });
  }

  sortBy(col) {
    const dir = this.sort && this.sort.col === col ? -this.sort.dir : 1;
    const rows = this.rows;
    const keyed = Array.from(this.order);
    const cmp = (a, b) => {
      const x = rows[a][col];
      const y = rows[b][col];
      if (x === y) return a - b;
      if (x === null) return 1; // nulls last whichever the direction
      if (y === null) return -1;
      return (x < y ? -1 : 1) * dir;
    };
    keyed.sort(cmp);
    this.order = Uint32Array.from(keyed);
    this.sort = { col, dir };
    this.selected = -1;
    this.renderHead();
    this.drawn = null;
    this.render();
  }

  // The row (index in the data) at displayed position `pos`.
  rowAt(pos) {
    return this.order[pos];
  }

  // Selects (and scrolls to) the row of index `index` in the data, whatever the sort.
  selectRow(index) {
    const pos = this.order.indexOf(index);
    if (pos >= 0) this.select(pos, true);
  }

  select(pos, scroll = false) {
    if (pos < 0 || pos >= this.rows.length) return;
    this.selected = pos;
    if (scroll) {
      const top = pos * ROW_H;
      const h = this.body.clientHeight - ROW_H;
      if (top < this.body.scrollTop) this.body.scrollTop = top;
      else if (top > this.body.scrollTop + h) this.body.scrollTop = top - h;
    }
    this.drawn = null;
    this.render();
    this.onSelect(this.order[pos]);
  }

  key(e) {
    const page = Math.max(1, Math.floor(this.body.clientHeight / ROW_H) - 1);
    const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: page, PageUp: -page };
    let pos = null;
    if (e.key in moves) pos = Math.max(0, Math.min(this.rows.length - 1, (this.selected < 0 ? 0 : this.selected + moves[e.key])));
    else if (e.key === "Home") pos = 0;
    else if (e.key === "End") pos = this.rows.length - 1;
    if (pos !== null && this.rows.length) {
      e.preventDefault();
      this.select(pos, true);
    }
  }

  render() {
    const n = this.rows.length;
    const top = this.body.scrollTop;
    const h = this.body.clientHeight || 360;
    const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const last = Math.min(n, Math.ceil((top + h) / ROW_H) + OVERSCAN);
    if (this.drawn && this.drawn[0] === first && this.drawn[1] === last) return;
    this.drawn = [first, last];
    const frag = document.createDocumentFragment();
    for (let pos = first; pos < last; pos++) {
      const r = this.rows[this.order[pos]];
      const row = el("div", "grid-row" + (pos === this.selected ? " sel" : ""));
      row.setAttribute("role", "row");
      row.setAttribute("aria-rowindex", String(pos + 2));
      if (pos === this.selected) row.setAttribute("aria-selected", "true");
      row.dataset.pos = String(pos);
      row.style.top = `${pos * ROW_H}px`;
      for (let i = 0; i < this.columns.length; i++) {
        const c = el("div", "cell" + (this.numeric[i] ? " num" : ""));
        c.setAttribute("role", "gridcell");
        c.style.width = `${this.widths[i]}px`;
        const href = this.links[i] && this.links[i](r[i]);
        if (href) {
          const a = document.createElement("a");
          a.href = href;
          a.target = "_blank";
          a.rel = "noopener";
          a.textContent = show(r[i]);
          c.append(a);
        } else c.textContent = show(r[i]);
        row.append(c);
      }
      frag.append(row);
    }
    this.spacer.replaceChildren(frag);
  }
}

// How a column's values link somewhere: a URL to itself (access_url, …); an ObsCore
// publisher DID to its DataLink document (previews, headers, the file).
function linkOf(c) {
  const name = c.name.toLowerCase();
  if (name === "obs_publisher_did") return (v) => (typeof v === "string" && v ? `datalink/links?ID=${encodeURIComponent(v)}` : null);
  if (c.datatype === "char" || c.datatype === "unicodeChar") return (v) => (typeof v === "string" && /^https?:\/\//.test(v) ? v : null);
  return null;
}

const NUMERIC = new Set(["short", "int", "long", "float", "double", "unsignedByte"]);

function el(tag, cls) {
  const e = document.createElement(tag);
  e.className = cls;
  return e;
}

function show(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number" && !Number.isInteger(v)) return String(Math.round(v * 1e8) / 1e8);
  return String(v);
}

// A column's width in pixels from its header and its first rows.
function width(c, rows, i) {
  // Header: the name, a sort arrow, bold; cells: 13px digits.
  let chars = Math.max(c.name.length + 3, (c.unit || "").length + 2);
  // A sample of rows from all over the result (sorting brings any of them to the top).
  const step = Math.max(1, Math.floor(rows.length / 400));
  for (let r = 0; r < rows.length; r += step) chars = Math.max(chars, show(rows[r][i]).length);
  return Math.min(360, Math.max(60, chars * 9 + 16));
}
