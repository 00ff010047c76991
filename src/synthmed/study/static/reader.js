"use strict";
// The reader page of a synthmed study: one image at a time, answered by mouse or keyboard.
// It talks only to the JSON API documented in docs/reader-study.md.
(() => {
  const token = location.pathname.split("/")[2];
  const api = (path) => `/api/${token}/${path}`;
  const $ = (id) => document.getElementById(id);
  const canvas = $("image");
  const view = { zoom: 1, window: 1, level: 0, lo: 0, hi: 255 };
  let info = null;
  let current = null;
  let pixels = null;
  let answers = {};
  let active = 0;
  let shownAt = 0;
  let busy = false;
  let questions = [];

  async function request(url, options) {
    const response = await fetch(url, options);
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(body.detail || response.statusText);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function say(text) { $("message").textContent = text || ""; }

  function buildQuestions() {
    const scale = ["certainly real", "probably real", "possibly real",
                   "possibly synthetic", "probably synthetic", "certainly synthetic"];
    questions = [{ key: "confidence", label: "Real or synthetic?",
                   options: scale.map((text, i) => [i + 1, text]) }];
    if (info.questions.includes("realism")) {
      questions.push({ key: "realism", label: "How realistic is it? (1 not at all, 5 completely)",
                       options: [1, 2, 3, 4, 5].map((v) => [v, String(v)]) });
    }
    if (info.questions.includes("findings")) {
      questions.push({ key: "tumor_present", label: "Is a tumour present?", options: [[true, "yes"], [false, "no"]] });
      questions.push({ key: "hemisphere", label: "Which hemisphere is it in?", options: [["left", "left"], ["right", "right"]],
                       when: (a) => a.tumor_present === true });
    }
    const form = $("questions");
    form.replaceChildren();
    questions.forEach((q) => {
      const set = document.createElement("fieldset");
      set.id = `q-${q.key}`;
      const legend = document.createElement("legend");
      legend.textContent = q.label;
      set.append(legend);
      const row = document.createElement("div");
      row.className = "options";
      q.options.forEach(([value, text], i) => {
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.value = String(value);
        const key = document.createElement("kbd");
        key.textContent = String(i + 1);
        button.append(key, ` ${text}`);
        button.addEventListener("click", () => choose(q, value));
        row.append(button);
      });
      set.append(row);
      form.append(set);
    });
  }

  const applicable = () => questions.filter((q) => !q.when || q.when(answers));
  const complete = () => applicable().every((q) => answers[q.key] !== undefined);

  function choose(q, value) {
    answers[q.key] = value;
    if (q.key === "tumor_present" && value !== true) delete answers.hemisphere;
    const list = applicable();
    const next = list.findIndex((x) => answers[x.key] === undefined);
    active = next === -1 ? list.length - 1 : next;
    refresh();
  }

  function refresh() {
    const list = applicable();
    questions.forEach((q) => {
      const set = $(`q-${q.key}`);
      set.disabled = !list.includes(q);
      set.classList.toggle("active", list[active] === q);
      set.querySelectorAll("button").forEach((b) => {
        b.classList.toggle("chosen", answers[q.key] !== undefined && b.dataset.value === String(answers[q.key]));
      });
    });
    $("submit").disabled = !complete() || busy;
  }

  function progress(index, total) {
    $("bar").style.width = `${(100 * index) / total}%`;
    $("progress").setAttribute("aria-valuenow", String(index));
    $("progress").setAttribute("aria-valuemax", String(total));
    $("count").textContent = `${Math.min(index + 1, total)} / ${total}`;
  }

  function render() {
    if (!pixels) return;
    const { width, height, channels } = info.image_format;
    const out = new ImageData(width, height);
    const low = view.level - view.window / 2;
    const gain = 255 / view.window;
    for (let p = 0; p < width * height; p += 1) {
      for (let c = 0; c < 3; c += 1) {
        const v = pixels[p * channels + (channels === 3 ? c : 0)];
        out.data[p * 4 + c] = Math.max(0, Math.min(255, (v - low) * gain));
      }
      out.data[p * 4 + 3] = 255;
    }
    canvas.width = width;
    canvas.height = height;
    canvas.getContext("2d").putImageData(out, 0, 0);
    fit();
    $("window").value = String(view.window);
    $("level").value = String(view.level);
  }

  function fit() {
    const box = $("viewer");
    const { width, height } = info.image_format;
    const scale = Math.min(box.clientWidth / width, box.clientHeight / height) * view.zoom;
    canvas.style.width = `${Math.floor(width * scale)}px`;
    canvas.style.height = `${Math.floor(height * scale)}px`;
  }

  function resetView() {
    view.zoom = 1;
    view.window = Math.max(1, view.hi - view.lo);
    view.level = (view.hi + view.lo) / 2;
    render();
  }

  async function loadNext() {
    const next = await request(api("next"));
    answers = {};
    active = 0;
    if (next.done) {
      current = null;
      $("study").hidden = true;
      $("done").hidden = false;
      progress(next.total, next.total);
      $("count").textContent = `${next.total} / ${next.total}`;
      return;
    }
    const raw = await (await fetch(next.pixels)).arrayBuffer();
    const { bits } = info.image_format;
    pixels = bits === 16 ? new Uint16Array(raw) : new Uint8Array(raw);
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of pixels) { if (v < lo) lo = v; if (v > hi) hi = v; }
    // 8-bit images open at their stored values; 16-bit ones at their own range (12-bit data would look black).
    [view.lo, view.hi] = bits === 16 ? [lo, Math.max(hi, lo + 1)] : [0, 255];
    const top = bits === 16 ? 65535 : 255;
    $("window").max = String(top + 1);
    $("level").max = String(top);
    current = next;
    progress(next.index, next.total);
    resetView();
    refresh();
    shownAt = performance.now();
  }

  async function submit() {
    if (!current || !complete() || busy) return;
    busy = true;
    refresh();
    const body = { item: current.item, seconds: Math.round(performance.now() - shownAt) / 1000 };
    applicable().forEach((q) => { body[q.key] = answers[q.key]; });
    try {
      await request(api("answer"), { method: "POST", headers: { "Content-Type": "application/json" },
                                     body: JSON.stringify(body) });
      say("");
    } catch (error) {
      if (error.status !== 409) { say(`Not saved: ${error.message}. Try again.`); busy = false; refresh(); return; }
      say("That image was answered already; here is the next one.");
    }
    busy = false;
    await loadNext();
  }

  function onKey(event) {
    if (!current || event.ctrlKey || event.metaKey || event.altKey) return;
    const list = applicable();
    if (/^[1-9]$/.test(event.key)) {
      const q = list[active];
      const option = q && q.options[Number(event.key) - 1];
      if (option) choose(q, option[0]);
    } else if (event.key === "Enter") {
      submit();
    } else if (event.key === "Backspace") {
      active = Math.max(0, active - 1);
      refresh();
    } else if (event.key === "+" || event.key === "=") {
      view.zoom *= 1.25; fit();
    } else if (event.key === "-") {
      view.zoom = Math.max(0.25, view.zoom / 1.25); fit();
    } else if (event.key === "f") {
      view.zoom = 1; fit();
    } else if (event.key === "r") {
      resetView();
    } else {
      return;
    }
    event.preventDefault();
  }

  function dragWindowLevel() {
    let start = null;
    canvas.addEventListener("pointerdown", (e) => { start = { x: e.clientX, y: e.clientY, w: view.window, l: view.level }; });
    window.addEventListener("pointerup", () => { start = null; });
    window.addEventListener("pointermove", (e) => {
      if (!start) return;
      const step = (view.hi - view.lo || 1) / 256;
      view.window = Math.max(1, start.w + (e.clientX - start.x) * step);
      view.level = start.l - (e.clientY - start.y) * step;
      render();
    });
    $("viewer").addEventListener("wheel", (e) => {
      e.preventDefault();
      view.zoom = e.deltaY < 0 ? view.zoom * 1.1 : Math.max(0.25, view.zoom / 1.1);
      fit();
    }, { passive: false });
  }

  async function start() {
    info = await request(api("study"));
    buildQuestions();
    document.addEventListener("keydown", onKey);
    $("submit").addEventListener("click", submit);
    $("reset").addEventListener("click", resetView);
    $("window").addEventListener("input", (e) => { view.window = Number(e.target.value); render(); });
    $("level").addEventListener("input", (e) => { view.level = Number(e.target.value); render(); });
    window.addEventListener("resize", fit);
    dragWindowLevel();
    await loadNext();
  }

  start().catch((error) => say(`Cannot load the study: ${error.message}`));
})();
