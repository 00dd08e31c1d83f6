// ruvon's article site: the sidebar shows the current page; search runs over search-index.js, loaded on first use.
"use strict";
(function () {
  const current = document.querySelector(".sidebar a.current");
  if (current) current.scrollIntoView({ block: "center" });

  const input = document.getElementById("site-search"), list = document.getElementById("site-search-results");
  if (!input || !list) return;
  let index = null, hits = [], active = -1;

  function load(then) {                       // a script, not fetch(): file:// pages may not fetch
    if (index) return then();
    if (window.SEARCH_INDEX) { index = window.SEARCH_INDEX; return then(); }
    const s = document.createElement("script");
    s.src = "search-index.js";
    s.onload = () => { index = window.SEARCH_INDEX || []; then(); };
    document.head.appendChild(s);
  }

  function score(e, terms) {                  // every term must occur; a title or heading counts more than text
    const t = e.t.toLowerCase(), h = e.h.toLowerCase(), x = e.x.toLowerCase();
    let total = 0;
    for (const term of terms) {
      const s = (t.includes(term) ? 4 : 0) + (h.includes(term) ? 6 : 0) + (x.includes(term) ? 1 : 0);
      if (!s) return 0;
      total += s;
    }
    return total;
  }

  function snippet(text, term) {
    const i = Math.max(0, text.toLowerCase().indexOf(term));
    const start = Math.max(0, i - 50);
    return (start ? "…" : "") + text.slice(start, start + 160) + (start + 160 < text.length ? "…" : "");
  }

  function marked(text, terms) {             // text with the terms in <mark>, built as DOM nodes (no HTML injection)
    const span = document.createElement("span"), lower = text.toLowerCase();
    let i = 0;
    while (i < text.length) {
      let next = -1, len = 0;
      for (const term of terms) { const j = lower.indexOf(term, i); if (j >= 0 && (next < 0 || j < next)) { next = j; len = term.length; } }
      if (next < 0) { span.append(text.slice(i)); break; }
      span.append(text.slice(i, next));
      const m = document.createElement("mark"); m.textContent = text.slice(next, next + len); span.append(m);
      i = next + len;
    }
    return span;
  }

  function show() {
    const terms = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    list.replaceChildren();
    active = -1;
    if (!terms.length) { list.hidden = true; return; }
    hits = index.map(e => [score(e, terms), e]).filter(([s]) => s > 0).sort((a, b) => b[0] - a[0]).slice(0, 12).map(([, e]) => e);
    for (const e of hits) {
      const li = document.createElement("li"), a = document.createElement("a");
      a.href = e.u;
      a.append(marked(e.h || e.t, terms));
      const where = document.createElement("span"); where.className = "where"; where.textContent = e.h ? e.t : "";
      const snip = marked(snippet(e.x, terms[0]), terms); snip.className = "snippet";
      a.append(where, snip);
      li.append(a);
      list.append(li);
    }
    if (!hits.length) { const li = document.createElement("li"); li.className = "none"; li.textContent = "Nothing found."; list.append(li); }
    const box = input.getBoundingClientRect();   // fixed, so the sidebar's scrolling does not clip it
    list.style.left = box.left + "px";
    list.style.top = box.bottom + 4 + "px";
    list.hidden = false;
  }

  function move(step) {
    const links = list.querySelectorAll("a");
    if (!links.length) return;
    if (active >= 0) links[active].classList.remove("active");
    active = (active + step + links.length) % links.length;
    links[active].classList.add("active");
    links[active].scrollIntoView({ block: "nearest" });
  }

  input.addEventListener("input", () => load(show));
  input.addEventListener("focus", () => load(() => input.value && show()));
  input.addEventListener("keydown", ev => {
    if (ev.key === "ArrowDown") { ev.preventDefault(); move(1); }
    else if (ev.key === "ArrowUp") { ev.preventDefault(); move(-1); }
    else if (ev.key === "Enter") { const a = list.querySelectorAll("a")[Math.max(active, 0)]; if (a) window.location.href = a.href; }
    else if (ev.key === "Escape") { list.hidden = true; input.blur(); }
  });
  document.addEventListener("keydown", ev => {
    if (ev.key === "/" && document.activeElement !== input && !/^(INPUT|TEXTAREA)$/.test(document.activeElement.tagName)) { ev.preventDefault(); input.focus(); }
  });
  document.addEventListener("click", ev => { if (!ev.target.closest(".search")) list.hidden = true; });
})();
