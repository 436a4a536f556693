// The chat page: keeps the conversation (OpenAI messages, images as data URLs), streams each
// answer from /v1/chat/completions over SSE, and shows tokens/s. No framework, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { model: null, history: [], pending: [], controller: null };

function saved(id) {  // settings survive a reload
  const el = $(id);
  const v = localStorage.getItem("l4." + id);
  if (v !== null) el.value = v;
  el.addEventListener("change", () => localStorage.setItem("l4." + id, el.value));
}
["system", "temperature", "top_p", "max_tokens", "presence_penalty", "frequency_penalty", "seed", "api_key"].forEach(saved);

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api_key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

async function loadModel() {
  try {
    const r = await fetch("/v1/models", { headers: headers() });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error ? body.error.message : r.statusText);
    state.model = body.data[0].id;
    $("model-name").textContent = state.model;
  } catch (e) {
    $("model-name").textContent = "(no model: " + e.message + ")";
  }
}

function addMessage(role, text, images) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  for (const src of images || []) {
    const img = document.createElement("img");
    img.src = src;
    div.appendChild(img);
  }
  const span = document.createElement("span");
  span.className = "text";
  span.textContent = text;
  div.appendChild(span);
  $("messages").appendChild(div);
  $("messages").scrollTop = $("messages").scrollHeight;
  return div;
}

function attach(files) {
  for (const f of files) {
    if (!f.type.startsWith("image/")) continue;
    const reader = new FileReader();
    reader.onload = () => {
      state.pending.push(reader.result);
      const img = document.createElement("img");
      img.src = reader.result;
      img.title = "Click to remove";
      img.onclick = () => { state.pending.splice(state.pending.indexOf(reader.result), 1); img.remove(); };
      $("attachments").appendChild(img);
    };
    reader.readAsDataURL(f);
  }
}

function number(id) {
  const v = $(id).value.trim();
  return v === "" ? undefined : Number(v);
}

function requestBody() {
  const messages = [];
  const system = $("system").value.trim();
  if (system) messages.push({ role: "system", content: system });
  messages.push(...state.history);
  const body = { model: state.model, messages, stream: true, stream_options: { include_usage: true },
                 temperature: number("temperature"), top_p: number("top_p"), max_tokens: number("max_tokens"),
                 presence_penalty: number("presence_penalty"), frequency_penalty: number("frequency_penalty"),
                 seed: number("seed") };
  Object.keys(body).forEach((k) => body[k] === undefined && delete body[k]);
  return body;
}

// Yields the JSON payload of each SSE "data:" event until [DONE].
async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        yield JSON.parse(data);
      }
    }
  }
}

function busy(on) {
  $("send").disabled = on;
  $("stop").disabled = !on;
}

async function send() {
  const text = $("prompt").value;
  if ((!text.trim() && !state.pending.length) || !state.model) return;
  const images = state.pending.splice(0);
  $("attachments").innerHTML = "";
  $("prompt").value = "";
  const content = images.length
    ? [...images.map((url) => ({ type: "image_url", image_url: { url } })), { type: "text", text }]
    : text;
  state.history.push({ role: "user", content });
  addMessage("user", text, images);
  const div = addMessage("assistant", "");
  const out = div.querySelector(".text");
  busy(true);
  state.controller = new AbortController();
  const t0 = performance.now();
  let tFirst = null, chunks = 0, tokens = null, answer = "", finish = null;
  try {
    const r = await fetch("/v1/chat/completions", { method: "POST", headers: headers(),
                                                    body: JSON.stringify(requestBody()), signal: state.controller.signal });
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      throw new Error(body.error ? body.error.message : r.status + " " + r.statusText);
    }
    for await (const ev of events(r)) {
      if (ev.error) throw new Error(ev.error.message);
      if (ev.usage) tokens = ev.usage.completion_tokens;
      for (const c of ev.choices || []) {
        const piece = c.delta && c.delta.content;
        if (piece) {
          if (tFirst === null) tFirst = performance.now();
          answer += piece;
          out.textContent = answer;
          $("messages").scrollTop = $("messages").scrollHeight;
        }
        if (c.finish_reason) finish = c.finish_reason;
        chunks += 1;
        const secs = (performance.now() - (tFirst || t0)) / 1000;
        $("stats").textContent = secs > 0 ? `${(chunks / secs).toFixed(1)} tokens/s` : "";
      }
    }
    state.history.push({ role: "assistant", content: answer });
  } catch (e) {
    if (e.name === "AbortError") {
      state.history.push({ role: "assistant", content: answer });
      finish = "stopped";
    } else {
      div.className = "msg error";
      out.textContent = answer + (answer ? "\n" : "") + "Error: " + e.message;
      state.history.pop();  // the user turn that failed is not kept
    }
  } finally {
    busy(false);
    state.controller = null;
  }
  const t1 = performance.now();
  const n = tokens !== null ? tokens : chunks;
  const decodeS = tFirst !== null ? (t1 - tFirst) / 1000 : 0;
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = `${n} tokens` + (decodeS > 0 ? `, ${(Math.max(n - 1, 0) / decodeS).toFixed(1)} tokens/s` : "") +
    (tFirst !== null ? `, first token after ${((tFirst - t0) / 1000).toFixed(2)} s` : "") + (finish ? `, ${finish}` : "");
  div.appendChild(meta);
  $("stats").textContent = meta.textContent;
}

$("composer").addEventListener("submit", (e) => { e.preventDefault(); send(); });
$("prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(); }
});
$("stop").addEventListener("click", () => state.controller && state.controller.abort());
$("reset").addEventListener("click", () => { state.history = []; $("messages").innerHTML = ""; $("stats").textContent = ""; });
$("file-input").addEventListener("change", (e) => { attach(e.target.files); e.target.value = ""; });
const zone = $("drop-zone");
["dragenter", "dragover"].forEach((t) => zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.add("over"); }));
["dragleave", "drop"].forEach((t) => zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.remove("over"); }));
zone.addEventListener("drop", (e) => attach(e.dataTransfer.files));
$("api_key").addEventListener("change", loadModel);
loadModel();
