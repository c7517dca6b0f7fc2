// labelloop review: keyboard-first labeling. Record data is only ever written with textContent.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const classesEl = document.getElementById("classes-data");
  const classes = classesEl ? JSON.parse(classesEl.textContent) : [];
  const multi = document.body.dataset.multiLabel === "1"; // classification.multi_label: labels are sets
  const reviewerInput = document.getElementById("reviewer");
  const toastEl = document.getElementById("toast");
  const undoStack = []; // how many reviews each of my actions on this page wrote
  let records = Array.from(document.querySelectorAll("article.record"));
  let active = 0;
  let busy = false;
  let toastTimer = null;

  reviewerInput.value = localStorage.getItem("labelloop.reviewer") || "";
  reviewerInput.addEventListener("change", () => localStorage.setItem("labelloop.reviewer", reviewerInput.value.trim()));

  function reviewer() { return reviewerInput.value.trim() || "anonymous"; }

  function toast(message, isError) {
    toastEl.textContent = message;
    toastEl.className = "show" + (isError ? " error" : "");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { toastEl.className = ""; }, isError ? 6000 : 2500);
  }

  function setBar() {
    const bar = document.getElementById("sum-bar");
    if (bar) bar.style.width = (100 * Number(bar.dataset.frac || 0)).toFixed(1) + "%";
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(Object.assign({ reviewer: reviewer() }, body)),
    });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      throw new Error((data && data.error) || ("request failed: HTTP " + response.status));
    }
    return data;
  }

  function setActive(i, scroll) {
    if (!records.length) return;
    active = Math.max(0, Math.min(records.length - 1, i));
    records.forEach((el, j) => el.classList.toggle("active", j === active));
    if (scroll !== false) records[active].scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  function chip(text, cls) {
    const span = document.createElement("span");
    span.className = cls;
    span.textContent = text;
    return span;
  }

  function showOutcome(outcome) {
    const el = document.getElementById("record-" + outcome.chunk_id);
    if (!el) return;
    el.dataset.state = outcome.state;
    el.classList.remove("state-pending", "state-submitted", "state-discarded");
    el.classList.add("state-" + outcome.state);
    el.querySelector('[data-role="state"]').textContent = outcome.state;
    const human = el.querySelector('[data-role="human"]');
    human.replaceChildren(outcome.state === "submitted" ? chip(outcome.label, "chip human")
      : chip(outcome.state === "discarded" ? "discarded" : "–", "muted"));
    el.querySelectorAll("button.classbtn").forEach((b) => {
      b.classList.toggle("current", outcome.state === "submitted" && b.dataset.label === outcome.label);
    });
    if (multi) showSetOutcome(el, outcome, human);
  }

  // ---------------------------------------------------------------- multi-label: a selection per record

  function decodeSet(value) { // the stored form of a label set (labelloop.labels.encode_set), or null
    if (!value) return null;
    return value.charAt(0) === "[" ? JSON.parse(value) : [value];
  }

  function setText(labels) { return labels.length ? labels.join(", ") : "none of them"; }

  function sameSet(a, b) { return a.length === b.length && a.every((x) => b.includes(x)); }

  function toggles(el) { return Array.from(el.querySelectorAll("button.toggle")); }

  function selection(el) { return toggles(el).filter((b) => b.classList.contains("on")).map((b) => b.dataset.label); }

  function markToggle(button, on) {
    button.classList.toggle("on", on);
    button.setAttribute("aria-pressed", on ? "true" : "false");
  }

  function updateSave(el) {
    const button = el.querySelector('[data-role="save"]');
    const chosen = selection(el);
    const suggestion = decodeSet(el.dataset.suggestion);
    const canSave = suggestion !== null || el.dataset.dirty === "1" || el.dataset.state === "submitted";
    const verb = suggestion !== null && sameSet(chosen, suggestion) ? (el.dataset.acceptVerb || "Accept") : "Save";
    const key = document.createElement("kbd");
    key.textContent = "↵";
    button.disabled = !canSave;
    button.replaceChildren(document.createTextNode(canSave ? verb + " “" + setText(chosen) + "” " : "Save "), key);
  }

  function setSelection(el, labels, dirty) {
    const chosen = new Set(labels);
    toggles(el).forEach((b) => markToggle(b, chosen.has(b.dataset.label)));
    el.dataset.dirty = dirty ? "1" : "0";
    updateSave(el);
  }

  function toggleLabel(el, index) {
    const button = toggles(el)[index];
    markToggle(button, !button.classList.contains("on"));
    el.dataset.dirty = "1";
    updateSave(el);
  }

  function showSetOutcome(el, outcome, human) {
    if (outcome.state === "submitted") {
      const labels = outcome.labels || [];
      human.replaceChildren(...(labels.length ? labels : ["none of them"]).map((c) => chip(c, "chip human")));
      setSelection(el, labels, false);
    } else if (outcome.state === "pending") {
      setSelection(el, decodeSet(el.dataset.suggestion) || [], false);
    } else {
      updateSave(el);
    }
  }

  function saveSelection() {
    if (!records.length) return;
    const el = records[active];
    const chosen = selection(el);
    const suggestion = decodeSet(el.dataset.suggestion);
    if (suggestion !== null && sameSet(chosen, suggestion)) { act("accept"); return; }
    if (suggestion === null && el.dataset.dirty !== "1" && el.dataset.state !== "submitted") {
      toast("No suggestion to accept here; toggle labels with 1–9 (or 0 for none of them), then Enter.", true);
      return;
    }
    act("correct", undefined, chosen);
  }

  function multiKey(key) { // true when the key is a multi-label one and was handled
    if (key === "Enter") { saveSelection(); return true; }
    if (!/^[0-9]$/.test(key)) return false;
    const el = records[active];
    if (key === "0") { setSelection(el, [], true); return true; }
    const index = Number(key) - 1;
    if (index >= classes.length) { toast("There is no label " + key + "; this project has " + classes.length + ".", true); return true; }
    toggleLabel(el, index);
    return true;
  }

  function clickMulti(el, button) { // true when the button is a multi-label one and was handled
    const action = button.dataset.action;
    if (action === "toggle") { toggleLabel(el, toggles(el).indexOf(button)); return true; }
    if (action === "none") { setSelection(el, [], true); return true; }
    if (action === "save") { saveSelection(); return true; }
    return false;
  }

  function drawBars() { // the student's probability and its threshold (no inline styles: the CSP forbids them)
    document.querySelectorAll(".pbar").forEach((bar) => {
      bar.querySelector(".pfill").style.width = (100 * Number(bar.dataset.p || 0)).toFixed(1) + "%";
      const mark = bar.querySelector(".tmark");
      if (bar.dataset.t === undefined) mark.hidden = true;
      else mark.style.left = (100 * Number(bar.dataset.t)).toFixed(1) + "%";
    });
  }

  async function refreshCounts() {
    try {
      const response = await fetch("/api/counts", { credentials: "same-origin" });
      if (!response.ok) return;
      const data = await response.json();
      document.querySelectorAll("[data-queue]").forEach((el) => {
        if (el.dataset.queue in data.queues) el.textContent = String(data.queues[el.dataset.queue]);
      });
      document.querySelectorAll("[data-class]").forEach((el) => {
        el.textContent = String(data.classes[el.dataset.class] || 0);
      });
      document.querySelectorAll("[data-class-disagree]").forEach((el) => {
        el.textContent = String((data.disagreements_by_label || {})[el.dataset.classDisagree] || 0);
      });
      const p = data.progress;
      document.getElementById("sum-reviewed").textContent = String(p.reviewed);
      document.getElementById("sum-total").textContent = String(p.total);
      document.getElementById("sum-agreement").textContent = p.agreement === null ? "–" : Math.round(100 * p.agreement) + "%";
      document.getElementById("sum-bar").dataset.frac = p.total ? String(p.reviewed / p.total) : "0";
      setBar();
    } catch (e) { /* counts are a convenience; the next page load shows them */ }
  }

  async function act(action, label, labels) {
    if (busy || !records.length) return;
    const el = records[active];
    if (action === "accept" && !el.dataset.suggestion) {
      toast("No suggestion to accept here; pick a class with 1–9.", true);
      return;
    }
    busy = true;
    try {
      const outcome = await post("/api/label", { chunk_id: Number(el.dataset.id), action: action, label: label, labels: labels });
      showOutcome(outcome);
      undoStack.push(1);
      const shown = multi ? setText(outcome.labels || []) : outcome.label;
      const what = outcome.state === "discarded" ? "Discarded" : "Labeled “" + shown + "”";
      toast(what + " · #" + outcome.chunk_id + " (u to undo)");
      setActive(active + 1);
      refreshCounts();
    } catch (e) {
      toast(e.message, true);
    } finally {
      busy = false;
    }
  }

  async function bulkAccept() {
    if (busy) return;
    const ids = records.filter((el) => el.dataset.state === "pending" && el.dataset.suggestion).map((el) => Number(el.dataset.id));
    if (!ids.length) { toast("No pending suggestions on this page."); return; }
    busy = true;
    try {
      const data = await post("/api/bulk-accept", { chunk_ids: ids });
      data.outcomes.forEach((o) => { if (o.action === "accept") showOutcome(o); });
      if (data.accepted) undoStack.push(data.accepted);
      const skipped = data.outcomes.length - data.accepted;
      toast("Accepted " + data.accepted + " suggestion(s)" + (skipped ? ", skipped " + skipped : "") + " (u undoes them all)");
      refreshCounts();
    } catch (e) {
      toast(e.message, true);
    } finally {
      busy = false;
    }
  }

  async function undo() {
    if (busy) return;
    busy = true;
    try {
      const data = await post("/api/undo", { count: undoStack.length ? undoStack[undoStack.length - 1] : 1 });
      undoStack.pop();
      if (!data.outcomes.length) { toast("Nothing to undo."); return; }
      data.outcomes.forEach(showOutcome);
      const last = data.outcomes[data.outcomes.length - 1];
      const i = records.findIndex((el) => Number(el.dataset.id) === last.chunk_id);
      if (i >= 0) setActive(i);
      const kept = data.outcomes.filter((o) => o.message);
      toast(kept.length ? "Undone, except #" + kept.map((o) => o.chunk_id).join(", #") + ": " + kept[0].message
        : "Undone (" + data.outcomes.length + ")", kept.length > 0);
      refreshCounts();
    } catch (e) {
      toast(e.message, true);
    } finally {
      busy = false;
    }
  }

  function openDialog(id) {
    const dialog = document.getElementById(id);
    if (dialog && !dialog.open) dialog.showModal();
  }

  function anyDialogOpen() { return Array.from(document.querySelectorAll("dialog")).some((d) => d.open); }

  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.isContentEditable)) return;
    if (anyDialogOpen()) return; // Esc and the dialog's own buttons handle it
    if (event.altKey || event.metaKey) return;
    if (event.ctrlKey) {
      if (event.key === "z" || event.key === "Z") { event.preventDefault(); undo(); }
      return;
    }
    const key = event.key;
    if ((target.tagName === "BUTTON" || target.tagName === "A") && (key === "Enter" || key === " ")) return;
    if (key === "?") { event.preventDefault(); openDialog("keys"); return; }
    if (key === "r") { event.preventDefault(); openDialog("rules-dialog"); return; }
    if (key === "u") { event.preventDefault(); undo(); return; }
    if (key === "A" && event.shiftKey) { event.preventDefault(); bulkAccept(); return; }
    if (!records.length) return;
    if (multi && multiKey(key)) { event.preventDefault(); return; }
    if (key === "ArrowDown" || key === "ArrowRight" || key === "j") { event.preventDefault(); setActive(active + 1); return; }
    if (key === "ArrowUp" || key === "ArrowLeft" || key === "k") { event.preventDefault(); setActive(active - 1); return; }
    if (key === "Enter") { event.preventDefault(); act("accept"); return; }
    if (key === "Backspace" || key === "Delete") { event.preventDefault(); act("discard"); return; }
    if (/^[1-9]$/.test(key)) {
      const label = classes[Number(key) - 1];
      if (label === undefined) { toast("There is no class " + key + ".", true); return; }
      event.preventDefault();
      act("correct", label);
    }
  });

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const el = button.closest("article.record");
    const i = records.indexOf(el);
    if (i < 0) return;
    setActive(i, false);
    button.blur();
    if (multi && clickMulti(el, button)) return;
    act(button.dataset.action, button.dataset.label);
  });

  records.forEach((el, i) => el.addEventListener("mousedown", (event) => {
    if (!event.target.closest("button")) setActive(i, false);
  }));

  const bind = (id, fn) => {
    const el = document.getElementById(id);
    if (el) el.addEventListener("click", () => { el.blur(); fn(); });
  };
  bind("bulk-button", bulkAccept);
  bind("undo-button", undo);
  bind("rules-button", () => openDialog("rules-dialog"));
  bind("keys-button", () => openDialog("keys"));

  setBar();
  if (multi) { drawBars(); records.forEach(updateSave); }
  setActive(0, false);
})();
