// wagate dashboard: live campaign progress, CSV upload with progress and report, parameter
// mapping from the CSV's own columns, confirmations. Everything shown is set as text.
"use strict";

function text(tag, value, cls) {
  const el = document.createElement(tag);
  el.textContent = value;
  if (cls) el.className = cls;
  return el;
}

// Live progress: every element with data-progress polls its JSON while the campaign moves.
function poll(el) {
  const url = el.getAttribute("data-progress");
  const tick = async () => {
    let data;
    try {
      const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!r.ok) return setTimeout(tick, 3000);
      data = await r.json();
    } catch (e) {
      return setTimeout(tick, 3000);
    }
    el.querySelectorAll("[data-field]").forEach((f) => {
      const v = data[f.getAttribute("data-field")];
      if (v !== undefined && v !== null) f.textContent = String(v);
    });
    el.querySelectorAll("[data-count]").forEach((f) => {
      const v = (data.counts || {})[f.getAttribute("data-count")];
      if (v !== undefined) f.textContent = String(v);
    });
    if (["scheduled", "running", "paused", "draft"].includes(data.state)) setTimeout(tick, 1500);
  };
  setTimeout(tick, 1000);
}

function showReport(box, report) {
  box.replaceChildren();
  if (report.error) {
    box.append(text("p", report.error, "problem"));
    return;
  }
  const list = document.createElement("ul");
  list.append(text("li", `${report.accepted} recipients accepted`));
  list.append(text("li", `${report.rejected_total || 0} rows rejected`));
  list.append(text("li", `${report.duplicates} duplicate phone numbers skipped`));
  list.append(text("li", `${report.opted_out} opted out, not to be sent`));
  box.append(text("h3", "Import report"), list);
  const rejected = report.rejected || [];
  if (rejected.length) {
    const table = document.createElement("table");
    const head = table.createTHead().insertRow();
    head.append(text("th", "Row"), text("th", "Why it was rejected"));
    const body = table.createTBody();
    rejected.forEach((r) => {
      const tr = body.insertRow();
      tr.append(text("td", String(r.row)), text("td", r.error));
    });
    box.append(table);
  }
}

// Uploads a file as the request body, with a progress bar; resolves to the JSON report.
function upload(url, csrf, file, bar) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("Content-Type", "text/csv");
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    bar.hidden = false;
    bar.value = 0;
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) bar.value = Math.round((e.loaded / e.total) * 100);
    };
    xhr.onload = () => {
      bar.value = 100;
      let body;
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = { error: "The file could not be loaded." }; }
      if (xhr.status >= 400 && !body.error) body = { error: "The file could not be loaded." };
      resolve(body);
    };
    xhr.onerror = () => resolve({ error: "The upload was interrupted. Check your connection and try again." });
    xhr.send(file);
  });
}

document.querySelectorAll("form[data-upload]").forEach((form) => {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const file = form.querySelector("input[type=file]").files[0];
    if (!file) return;
    const box = form.parentElement.querySelector(".report");
    const report = await upload(form.getAttribute("data-upload"), form.getAttribute("data-csrf"), file, form.querySelector("progress"));
    showReport(box, report);
    if (!report.error) {
      const again = text("a", "Refresh the campaign", "button");
      again.href = window.location.pathname;
      box.append(again);
    }
  });
});

// The CSV's header row, read in the browser (quotes handled), for the parameter mapping.
function headerColumns(line) {
  const out = [];
  let cur = "", quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') { cur += '"'; i++; }
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { out.push(cur.trim()); cur = ""; }
    else cur += c;
  }
  out.push(cur.trim());
  return out.filter((c) => c !== "");
}

const newForm = document.getElementById("new-campaign");
if (newForm) {
  const fileInput = document.getElementById("file");
  const rows = newForm.querySelector(".param-rows");
  let columns = [];
  const addRow = () => {
    const n = rows.children.length + 1;
    const row = document.createElement("div");
    row.className = "param-row";
    const sel = document.createElement("select");
    sel.name = "param_column";
    sel.id = `param-${n}`;
    sel.append(new Option("(choose a column)", ""));
    columns.forEach((c) => sel.append(new Option(c, c)));
    const label = text("label", `Parameter {{${n}}} from column`);
    label.htmlFor = sel.id;
    const fb = document.createElement("input");
    fb.name = "param_fallback";
    fb.id = `fallback-${n}`;
    const fbLabel = text("label", "when empty, use");
    fbLabel.htmlFor = fb.id;
    row.append(label, sel, fbLabel, fb);
    rows.append(row);
  };
  document.getElementById("add-param").addEventListener("click", addRow);
  fileInput.addEventListener("change", async () => {
    const file = fileInput.files[0];
    if (!file) return;
    const head = await file.slice(0, 65536).text();
    columns = headerColumns(head.split(/\r?\n/)[0].replace(/^\uFEFF/, ""));
    rows.querySelectorAll("select").forEach((sel) => {
      const keep = sel.value;
      sel.replaceChildren(new Option("(choose a column)", ""));
      columns.forEach((c) => sel.append(new Option(c, c)));
      sel.value = columns.includes(keep) ? keep : "";
    });
    if (!rows.children.length) addRow();
  });
  newForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const box = newForm.querySelector(".report");
    box.replaceChildren();
    const csrf = newForm.querySelector("input[name=csrf]").value;
    const r = await fetch(newForm.action, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": csrf },
      body: new URLSearchParams(new FormData(newForm)),
    });
    const created = await r.json().catch(() => ({ error: "The campaign could not be created." }));
    if (!r.ok) {
      box.append(text("p", created.error || "The campaign could not be created.", "problem"));
      return;
    }
    const page = `/ui/campaigns/${encodeURIComponent(created.id)}`;
    const file = fileInput.files[0];
    if (!file) { window.location.assign(page); return; }
    const report = await upload(`${page}/recipients`, csrf, file, newForm.querySelector("progress"));
    showReport(box, report);
    const open = text("a", "Open the campaign", "button");
    open.href = page;
    box.append(open);
  });
}

document.querySelectorAll("form[data-confirm]").forEach((form) => {
  form.addEventListener("submit", (ev) => {
    if (!window.confirm(form.getAttribute("data-confirm"))) ev.preventDefault();
  });
});

document.querySelectorAll("[data-progress]").forEach(poll);
