// The lineage tree of the console, with the rules of `cairn snapshot tree`
// (crates/cairn/src/bin/cairn/tree.rs): one root per image; a snapshot hangs under its
// `parent` (when that one is shown), a sandbox under its `parent_snapshot`; snapshots that
// are not ready are left out; at every level snapshots first, oldest first, then sandboxes.
// Drawn as SVG. Every string from the API goes in as text (textContent), never as markup.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";

  function byOrder(a, b) {
    const ka = a.kind === "sandbox" ? 1 : 0;
    const kb = b.kind === "sandbox" ? 1 : 0;
    if (ka !== kb) return ka - kb;
    return String(a.created_at || "").localeCompare(String(b.created_at || ""));
  }

  function concerns(node, id) {
    if (node.kind === "sandbox") return node.id === id;
    if (node.kind === "snapshot" && node.sandbox === id) return true;
    return node.children.some((c) => concerns(c, id));
  }

  // The lineage of `snapshots` and `sandboxes` (the API's SnapshotInfo and SandboxInfo);
  // with `focus` (a sandbox id), only the trees that hold it or a snapshot of it.
  function build(snapshots, sandboxes, focus) {
    const shown = snapshots.filter((s) => s.state === "ready");
    const ids = new Set(shown.map((s) => s.id));
    const snapChildren = new Map();
    const sbxChildren = new Map();
    const rootSnaps = new Map();
    const rootSbxs = new Map();
    const push = (map, key, v) => {
      if (!map.has(key)) map.set(key, []);
      map.get(key).push(v);
    };
    for (const s of shown) {
      if (s.parent && ids.has(s.parent)) push(snapChildren, s.parent, s);
      else push(rootSnaps, s.image, s);
    }
    for (const b of sandboxes) {
      if (b.parent_snapshot && ids.has(b.parent_snapshot)) push(sbxChildren, b.parent_snapshot, b);
      else push(rootSbxs, b.image, b);
    }
    const sandboxNode = (b) => ({
      kind: "sandbox", id: b.id, name: b.name, state: b.state, created_at: b.created_at, children: [],
    });
    const snapshotNode = (s, depth) => {
      const children = [];
      // A parent chain is acyclic by construction; the bound keeps a corrupt one finite.
      if (depth < 10000) {
        for (const c of snapChildren.get(s.id) || []) children.push(snapshotNode(c, depth + 1));
      }
      for (const b of sbxChildren.get(s.id) || []) children.push(sandboxNode(b));
      children.sort(byOrder);
      return {
        kind: "snapshot", id: s.id, name: s.name, sandbox: s.sandbox, stateful: !!s.stateful,
        auto: !!s.auto, imported_from: s.imported_from || null, created_at: s.created_at, children,
      };
    };
    const images = Array.from(new Set([...rootSnaps.keys(), ...rootSbxs.keys()])).sort();
    const out = [];
    for (const image of images) {
      let children = [];
      for (const s of rootSnaps.get(image) || []) children.push(snapshotNode(s, 0));
      for (const b of rootSbxs.get(image) || []) children.push(sandboxNode(b));
      children.sort(byOrder);
      if (focus) {
        children = children.filter((c) => concerns(c, focus));
        if (children.length === 0) continue;
      }
      out.push({ kind: "image", name: image, children });
    }
    return out;
  }

  function el(name, attrs, parent) {
    const e = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (parent) parent.appendChild(e);
    return e;
  }

  function text(parent, x, y, content, cls) {
    const t = el("text", { x, y }, parent);
    if (cls) t.setAttribute("class", cls);
    t.textContent = content;
    return t;
  }

  const ROW = 34;
  const INDENT = 30;
  const CHAR = 7.2;

  // Draws `roots` into `container` (replacing what was there). `opts`: `selected` (a Set of
  // snapshot ids), `focus` (a sandbox id), `onSnapshot(id)` (a click on a snapshot).
  function draw(container, roots, opts) {
    const rows = [];
    const walk = (node, depth, parentRow) => {
      const row = rows.length;
      rows.push({ node, depth, parentRow });
      for (const c of node.children) walk(c, depth + 1, row);
    };
    for (const r of roots) walk(r, 0, -1);
    let width = 300;
    const svg = el("svg", { role: "img", "aria-label": "snapshot lineage" });
    const edges = el("g", {}, svg);
    const nodes = el("g", {}, svg);
    const pos = (i) => ({ x: 14 + rows[i].depth * INDENT, y: 18 + i * ROW });
    rows.forEach((r, i) => {
      const { x, y } = pos(i);
      if (r.parentRow >= 0) {
        const p = pos(r.parentRow);
        el("path", { class: "edge", d: `M${p.x},${p.y + 7} V${y} H${x - 8}` }, edges);
      }
      const n = r.node;
      const g = el("g", { transform: `translate(${x},${y})` }, nodes);
      // The whole row takes clicks, not only the painted circle and text.
      const hit = el("rect", { class: "hit", x: -12, y: -ROW / 2 + 2, height: ROW - 4, width: 0 }, g);
      let label = "";
      let sub = "";
      const badges = [];
      if (n.kind === "image") {
        g.setAttribute("class", "image");
        el("circle", { r: 6 }, g);
        label = `image ${n.name}`;
      } else if (n.kind === "snapshot") {
        const cls = ["snapshot"];
        if (n.auto) { cls.push("auto"); badges.push("auto"); }
        if (n.imported_from) { cls.push("imported"); badges.push(`imported from ${n.imported_from}`); }
        if (n.stateful) { cls.push("stateful"); badges.push("stateful"); }
        if (opts.selected && opts.selected.has(n.id)) cls.push("selected");
        g.setAttribute("class", cls.join(" "));
        g.setAttribute("data-id", n.id);
        g.setAttribute("tabindex", "0");
        el("circle", { r: 7 }, g);
        label = n.name;
        sub = `${n.id} of ${n.sandbox}`;
        if (opts.onSnapshot) {
          g.addEventListener("click", () => opts.onSnapshot(n.id));
          g.addEventListener("keydown", (e) => {
            if (e.key === "Enter" || e.key === " ") { e.preventDefault(); opts.onSnapshot(n.id); }
          });
        }
      } else {
        g.setAttribute("class", n.id === opts.focus ? "sandbox focus" : "sandbox");
        g.setAttribute("data-id", n.id);
        el("rect", { x: -7, y: -7, width: 14, height: 14, rx: 3 }, g);
        label = n.name ? `${n.name}` : n.id;
        sub = n.name ? `${n.id} ${n.state}` : `${n.state}`;
      }
      const title = el("title", {}, g);
      title.textContent = n.kind === "image" ? label : `${label} (${sub})`;
      text(g, 14, 4, label);
      let bx = 14 + label.length * CHAR + 8;
      for (const b of badges) {
        const w = b.length * 6 + 10;
        el("rect", { class: "badge", x: bx, y: -8, width: w, height: 15, rx: 7 }, g);
        text(g, bx + 5, 3, b, "badge-text");
        bx += w + 4;
      }
      if (sub) {
        text(g, bx + 4, 4, sub, "sub");
        bx += 4 + sub.length * 6.2;
      }
      hit.setAttribute("width", String(Math.ceil(bx + 16)));
      width = Math.max(width, x + bx + 20);
    });
    svg.setAttribute("width", String(Math.ceil(width)));
    svg.setAttribute("height", String(rows.length * ROW + 10));
    container.replaceChildren(svg);
    return rows.length;
  }

  window.CairnTree = { build, draw };
})();
