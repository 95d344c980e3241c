// The Cairn console: the caller's sandboxes, their snapshots' lineage, diffs and actions,
// through the same HTTP API every client uses, with the token kept in sessionStorage.
// Every string from the API (names, paths, messages: tenant input) is inserted as text,
// never as markup.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = "cairn.token";
  const POLL_MS = 2000;

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || "",
    sandboxes: [],
    snapshots: [],
    focus: null,
    selected: [],
    shownSandboxes: "",
    shownTree: "",
    diffKey: "",
    timer: null,
  };

  // ---- the API ----

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, "connection_failed", "cairnd cannot be reached: is it running?");
    }
    const type = res.headers.get("Content-Type") || "";
    const data = type.includes("json") && res.status !== 204 ? await res.json() : null;
    if (!res.ok) {
      const err = (data && data.error) || {};
      throw new ApiError(res.status, err.code || "unexpected_answer",
        err.message || `cairnd answered ${res.status}`);
    }
    return data;
  }

  const enc = encodeURIComponent;

  // ---- small helpers ----

  function status(message, isError) {
    const s = $("status");
    s.textContent = message;
    s.classList.toggle("error", !!isError);
    s.dataset.kind = "";
  }

  function bytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let v = Number(n);
    let u = 0;
    while (v >= 1024 && u < units.length - 1) { v /= 1024; u += 1; }
    return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
  }

  function cell(tr, content, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    if (content instanceof Node) td.appendChild(content);
    else td.textContent = content === null || content === undefined ? "–" : String(content);
    tr.appendChild(td);
    return td;
  }

  function button(label, action, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.dataset.action = action;
    b.addEventListener("click", (e) => { e.stopPropagation(); onClick(); });
    return b;
  }

  function sandboxLabel(id) {
    const b = state.sandboxes.find((s) => s.id === id);
    return b && b.name ? `${b.name} (${id})` : id;
  }

  function snapshotLabel(id) {
    const s = state.snapshots.find((x) => x.id === id);
    return s ? `${s.name} (${id})` : id;
  }

  // ---- confirmation ----

  // Asks before an action; resolves to null when cancelled, else {value, checked}.
  function ask(text, opts) {
    opts = opts || {};
    return new Promise((resolve) => {
      $("confirm-text").textContent = text;
      $("confirm-input-row").hidden = !opts.input;
      $("confirm-input-label").textContent = opts.input || "";
      $("confirm-input").value = "";
      $("confirm-input").placeholder = opts.placeholder || "";
      $("confirm-check-row").hidden = !opts.check;
      $("confirm-check-label").textContent = opts.check || "";
      $("confirm-check").checked = false;
      $("confirm-yes").textContent = opts.yes || "Confirm";
      $("confirm").hidden = false;
      (opts.input ? $("confirm-input") : $("confirm-yes")).focus();
      const done = (answer) => {
        $("confirm").hidden = true;
        $("confirm-form").onsubmit = null;
        $("confirm-no").onclick = null;
        resolve(answer);
      };
      $("confirm-form").onsubmit = (e) => {
        e.preventDefault();
        done({ value: $("confirm-input").value.trim(), checked: $("confirm-check").checked });
      };
      $("confirm-no").onclick = () => done(null);
    });
  }

  // Runs one action: says what it does, then what came of it, and refreshes.
  async function act(doing, fn, done) {
    status(`${doing}…`);
    try {
      const result = await fn();
      status(done(result));
    } catch (e) {
      status(`${doing} failed: ${e.message}`, true);
    }
    await refresh();
  }

  // ---- actions ----

  async function snapshot(b) {
    const a = await ask(`Snapshot sandbox ${sandboxLabel(b.id)}?`, {
      input: "Name (optional)", placeholder: "default: the time", check: "with process memory (stateful)",
      yes: "Snapshot",
    });
    if (!a) return;
    const body = { stateful: a.checked };
    if (a.value) body.name = a.value;
    await act(`Snapshotting ${sandboxLabel(b.id)}`,
      () => api("POST", `/v1/sandboxes/${enc(b.id)}/snapshots`, body),
      (s) => `Snapshot ${s.name} (${s.id}) made of ${sandboxLabel(b.id)}.`);
  }

  async function pause(b) {
    if (!await ask(`Pause sandbox ${sandboxLabel(b.id)}? Its processes freeze until resumed.`, { yes: "Pause" })) return;
    await act(`Pausing ${sandboxLabel(b.id)}`,
      () => api("POST", `/v1/sandboxes/${enc(b.id)}/pause`), () => `${sandboxLabel(b.id)} paused.`);
  }

  async function resume(b) {
    if (!await ask(`Resume sandbox ${sandboxLabel(b.id)}?`, { yes: "Resume" })) return;
    await act(`Resuming ${sandboxLabel(b.id)}`,
      () => api("POST", `/v1/sandboxes/${enc(b.id)}/resume`), () => `${sandboxLabel(b.id)} resumed.`);
  }

  async function destroy(b) {
    const a = await ask(`Destroy sandbox ${sandboxLabel(b.id)}? Its files and processes are gone for good.`,
      { check: "also delete its snapshots", yes: "Destroy" });
    if (!a) return;
    const q = `force=true${a.checked ? "&with_snapshots=true" : ""}`;
    await act(`Destroying ${sandboxLabel(b.id)}`,
      () => api("DELETE", `/v1/sandboxes/${enc(b.id)}?${q}`), () => `${sandboxLabel(b.id)} destroyed.`);
    if (state.focus === b.id) state.focus = null;
  }

  async function restore() {
    const id = state.selected[0];
    const s = state.snapshots.find((x) => x.id === id);
    if (!s) return;
    const a = await ask(`Restore sandbox ${sandboxLabel(s.sandbox)} to snapshot ${snapshotLabel(id)}? Everything since is discarded.`,
      { yes: "Restore" });
    if (!a) return;
    await act(`Restoring ${sandboxLabel(s.sandbox)}`,
      () => api("POST", `/v1/snapshots/${enc(id)}/restore`, {}),
      () => `${sandboxLabel(s.sandbox)} restored to ${snapshotLabel(id)}.`);
  }

  async function fork() {
    const id = state.selected[0];
    const a = await ask(`Fork snapshot ${snapshotLabel(id)} into a new sandbox?`,
      { input: "Name prefix (optional)", placeholder: "forks are named PREFIX-1", yes: "Fork" });
    if (!a) return;
    const body = { count: 1 };
    if (a.value) body.name = a.value;
    await act(`Forking ${snapshotLabel(id)}`,
      () => api("POST", `/v1/snapshots/${enc(id)}/fork`, body),
      (r) => {
        const made = (r.sandboxes || []).map((b) => (b.name ? `${b.name} (${b.id})` : b.id));
        const failed = (r.failed || []).map((f) => f.message);
        return failed.length ? `Fork failed: ${failed.join("; ")}` : `Forked into ${made.join(", ")}.`;
      });
  }

  // ---- drawing ----

  function renderSandboxes() {
    const key = JSON.stringify([state.sandboxes, state.focus]);
    if (key === state.shownSandboxes) return;
    state.shownSandboxes = key;
    const body = $("sandboxes").tBodies[0];
    const rows = [];
    for (const b of state.sandboxes) {
      const tr = document.createElement("tr");
      tr.dataset.id = b.id;
      if (b.id === state.focus) tr.className = "selected";
      const who = document.createElement("div");
      const name = document.createElement("div");
      name.textContent = b.name || b.id;
      const id = document.createElement("div");
      id.className = "id";
      id.textContent = b.name ? b.id : "";
      who.append(name, id);
      cell(tr, who, "name");
      const st = cell(tr, b.state + (b.pause_reason ? ` (${b.pause_reason})` : ""), `state state-${b.state}`);
      if (b.state_reason) st.title = b.state_reason;
      cell(tr, b.runtime);
      cell(tr, b.cpus, "num");
      cell(tr, bytes(b.memory_bytes), "num");
      cell(tr, b.disk_used_bytes === null ? "–" : bytes(b.disk_used_bytes) + (b.disk_bytes ? ` of ${bytes(b.disk_bytes)}` : ""), "num");
      cell(tr, b.workdir, "workdir");
      const actions = cell(tr, "");
      actions.textContent = "";
      if (b.state === "running" || b.state === "paused") actions.appendChild(button("Snapshot", "snapshot", () => snapshot(b)));
      if (b.state === "running") actions.appendChild(button("Pause", "pause", () => pause(b)));
      if (b.state === "paused") actions.appendChild(button("Resume", "resume", () => resume(b)));
      actions.appendChild(button("Destroy", "destroy", () => destroy(b)));
      tr.addEventListener("click", () => {
        state.focus = state.focus === b.id ? null : b.id;
        render();
      });
      rows.push(tr);
    }
    body.replaceChildren(...rows);
    $("no-sandboxes").hidden = state.sandboxes.length > 0;
    $("sandbox-count").textContent = `(${state.sandboxes.length})`;
  }

  function renderTree() {
    const key = JSON.stringify([state.sandboxes, state.snapshots, state.focus, state.selected]);
    if (key === state.shownTree) return;
    state.shownTree = key;
    const roots = window.CairnTree.build(state.snapshots, state.sandboxes, state.focus);
    $("lineage-of").textContent = state.focus ? `of ${sandboxLabel(state.focus)}` : "of every sandbox";
    $("show-all").disabled = !state.focus;
    window.CairnTree.draw($("tree"), roots, {
      selected: new Set(state.selected),
      focus: state.focus,
      onSnapshot: (id) => {
        const i = state.selected.indexOf(id);
        if (i >= 0) state.selected.splice(i, 1);
        else state.selected = [...state.selected, id].slice(-2);
        render();
      },
    });
    const sel = $("selected-snapshots");
    sel.textContent = state.selected.length
      ? `selected: ${state.selected.map(snapshotLabel).join(" and ")}` : "no snapshot selected";
    $("restore").disabled = state.selected.length !== 1;
    $("fork").disabled = state.selected.length !== 1;
    $("clear-selection").disabled = state.selected.length === 0;
  }

  async function renderDiff() {
    const sel = state.selected
      .map((id) => state.snapshots.find((s) => s.id === id))
      .filter(Boolean);
    if (sel.length !== 2) {
      state.diffKey = "";
      $("diff-section").hidden = true;
      return;
    }
    sel.sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)));
    const [older, newer] = sel;
    const key = `${older.id} ${newer.id}`;
    if (key === state.diffKey) return;
    state.diffKey = key;
    $("diff-title").textContent = `from ${older.name} (${older.id}) to ${newer.name} (${newer.id})`;
    const body = $("diff").tBodies[0];
    body.replaceChildren();
    $("diff-section").hidden = false;
    $("diff-empty").hidden = true;
    try {
      const entries = await api("GET", `/v1/snapshots/${enc(older.id)}/diff?against=${enc(newer.id)}`);
      if (state.diffKey !== key) return;
      const rows = entries.map((e) => {
        const tr = document.createElement("tr");
        cell(tr, e.kind, `kind-${e.kind}`);
        cell(tr, e.path, "path");
        cell(tr, bytes(e.size), "num");
        return tr;
      });
      body.replaceChildren(...rows);
      $("diff-empty").hidden = entries.length > 0;
    } catch (e) {
      state.diffKey = "";
      status(`Cannot compare the snapshots: ${e.message}`, true);
    }
  }

  function render() {
    renderSandboxes();
    renderTree();
    renderDiff();
  }

  // ---- polling ----

  async function refresh() {
    if (!state.token) return;
    try {
      const [sandboxes, snapshots] = await Promise.all([
        api("GET", "/v1/sandboxes"),
        api("GET", "/v1/snapshots?all=true"),
      ]);
      state.sandboxes = sandboxes;
      state.snapshots = snapshots;
      if (state.focus && !sandboxes.some((b) => b.id === state.focus)) state.focus = null;
      const ready = new Set(snapshots.filter((s) => s.state === "ready").map((s) => s.id));
      state.selected = state.selected.filter((id) => ready.has(id));
      if ($("status").dataset.kind === "poll") status("");
      render();
    } catch (e) {
      status(e.status === 401 ? `Not signed in: ${e.message}` : `Cannot list sandboxes: ${e.message}`, true);
      $("status").dataset.kind = "poll";
      if (e.status === 401) stop();
    }
  }

  function start() {
    stop();
    refresh();
    state.timer = setInterval(refresh, POLL_MS);
  }

  function stop() {
    if (state.timer) clearInterval(state.timer);
    state.timer = null;
  }

  function useToken(token) {
    state.token = token;
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
    state.shownSandboxes = "";
    state.shownTree = "";
    if (token) {
      status("Signed in: your sandboxes update every 2 seconds.");
      start();
    } else {
      stop();
      state.sandboxes = [];
      state.snapshots = [];
      state.selected = [];
      render();
      status("Token forgotten.");
    }
  }

  // A login code from 'cairn ui' in the fragment (#code=…): exchanged once for a token.
  async function loginFromFragment() {
    const m = /^#code=([A-Za-z0-9_]+)$/.exec(location.hash);
    if (!m) return false;
    history.replaceState(null, "", location.pathname);
    try {
      const s = await api("POST", "/ui/session", { code: m[1] });
      $("who").textContent = `account ${s.account}`;
      useToken(s.token);
    } catch (e) {
      status(`Login failed: ${e.message}`, true);
    }
    return true;
  }

  document.addEventListener("DOMContentLoaded", async () => {
    $("login").addEventListener("submit", (e) => {
      e.preventDefault();
      const t = $("token").value.trim();
      $("token").value = "";
      $("who").textContent = "";
      useToken(t);
    });
    $("forget-token").addEventListener("click", () => { $("who").textContent = ""; useToken(""); });
    $("restore").addEventListener("click", restore);
    $("fork").addEventListener("click", fork);
    $("clear-selection").addEventListener("click", () => { state.selected = []; render(); });
    $("show-all").addEventListener("click", () => { state.focus = null; render(); });
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !$("confirm").hidden) $("confirm-no").click();
    });
    if (await loginFromFragment()) return;
    if (state.token) useToken(state.token);
    else render();
  });
})();
