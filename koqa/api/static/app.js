// koqa web page: ask a question in a collection, show answers highlighted in their passages.
// Plain DOM code, no build step; text is always inserted with textContent (never as HTML).
"use strict";

const $ = (id) => document.getElementById(id);

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h["X-API-Key"] = key;
  return h;
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function errorMessage(res) {
  try {
    const body = await res.json();
    if (body.error) return (body.error.field ? body.error.field + ": " : "") + body.error.message;
  } catch (_) { /* not JSON */ }
  return res.status + " " + res.statusText;
}

async function loadCollections() {
  const saved = localStorage.getItem("koqa-api-key");
  if (saved && !$("api-key").value) $("api-key").value = saved;
  const res = await fetch("/collections", { headers: headers() });
  if (!res.ok) { setStatus("컬렉션을 불러오지 못했습니다: " + await errorMessage(res), true); return; }
  const select = $("collection");
  select.replaceChildren();
  for (const c of await res.json()) {
    const opt = document.createElement("option");
    opt.value = c.name;
    opt.textContent = c.name;
    select.appendChild(opt);
  }
  const wanted = new URLSearchParams(location.search).get("collection");
  if (wanted) select.value = wanted;
}

function passageNode(answer) {
  const div = document.createElement("div");
  div.className = "passage";
  const p = answer.passage;
  if (!p) { div.textContent = answer.context; return div; }
  const mark = document.createElement("mark");
  mark.textContent = p.text.slice(p.answer_start, p.answer_end);
  div.append(p.text.slice(0, p.answer_start), mark, p.text.slice(p.answer_end));
  return div;
}

function answerNode(answer, index) {
  const li = document.createElement("li");
  li.className = "answer";
  const text = document.createElement("div");
  text.className = "answer-text";
  text.textContent = answer.text;
  const meta = document.createElement("div");
  meta.className = "meta";
  const more = answer.sources.length > 1 ? ` · ${answer.sources.length}곳에서 찾음` : "";
  meta.textContent = `신뢰도 ${(answer.score * 100).toFixed(1)}% · ${answer.doc_title || answer.doc_id}` +
    ` [${answer.start}–${answer.end}]${more}`;
  li.append(text, meta, passageNode(answer));
  li.dataset.rank = String(index + 1);
  return li;
}

async function ask(event) {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question) { setStatus("질문을 입력하세요.", true); return; }
  localStorage.setItem("koqa-api-key", $("api-key").value.trim());
  $("ask").disabled = true;
  setStatus("찾는 중…");
  $("answers").replaceChildren();
  try {
    const res = await fetch("/ask", {
      method: "POST", headers: headers(),
      body: JSON.stringify({
        question, collection: $("collection").value || "default",
        top_k_passages: Number($("top-k").value), top_n_answers: Number($("top-n").value),
        mode: $("mode").value, return_passages: true,
      }),
    });
    if (!res.ok) { setStatus(await errorMessage(res), true); return; }
    const body = await res.json();
    const list = $("answers");
    if (body.no_answer) {
      const li = document.createElement("li");
      li.className = "no-answer";
      li.textContent = `확실한 답을 찾지 못했습니다 (최고 신뢰도 ${((1 - body.no_answer_score) * 100).toFixed(1)}% < ` +
        `${(body.threshold * 100).toFixed(0)}%). 후보:`;
      list.appendChild(li);
    }
    body.answers.forEach((a, i) => list.appendChild(answerNode(a, i)));
    const ms = ((body.timings.retrieve_s || 0) + (body.timings.read_s || 0)) * 1000;
    setStatus(body.answers.length ? `답 ${body.answers.length}개 · ${ms.toFixed(0)} ms` : "답이 없습니다.");
  } catch (err) {
    setStatus("요청 실패: " + err, true);
  } finally {
    $("ask").disabled = false;
  }
}

$("ask-form").addEventListener("submit", ask);
$("api-key").addEventListener("change", loadCollections);
loadCollections();
