/* The search page: Pagefind's JS API with our own accessible UI.
   Results with highlighted snippets, filters (section, status, evidence, tag), the query and
   filters kept in the address, arrows + Enter to pick a result. Loaded only on this page. */
(function () {
  "use strict";
  var doc = document;
  var page = doc.querySelector("[data-search-page]");
  if (!page) return;
  var form = page.querySelector("[data-search-form]");
  var input = page.querySelector("[data-search-input]");
  var status = doc.getElementById("search-status");
  var notice = page.querySelector("[data-search-notice]");
  var list = doc.getElementById("search-results");
  var more = page.querySelector("[data-search-more]");
  var filterBox = doc.getElementById("search-filters");
  var PAGE_SIZE = 10;
  var FILTERS = [["section", "Section"], ["status", "Status"], ["evidence", "Evidence"], ["tag", "Tag"]];
  var params = new URLSearchParams(location.search);
  var selected = {};
  FILTERS.forEach(function (f) { selected[f[0]] = params.getAll(f[0]); });
  input.value = params.get("q") || "";

  var el = function (name, className, text) {
    var node = doc.createElement(name);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  var say = function (parts) {
    notice.textContent = "";
    parts.forEach(function (part) {
      notice.appendChild(typeof part === "string" ? doc.createTextNode(part) : el("code", "", part[0]));
    });
    notice.hidden = false;
  };

  if (location.protocol === "file:") {
    say(["Search needs the site to be served over HTTP; it cannot run from files opened directly. Run ",
      ["python build.py serve"], " in the project folder (or ", ["python -m http.server --directory site"],
      "), then open ", ["http://127.0.0.1:8000/search/"], "."]);
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    return;
  }

  var pagefind = null, results = [], shown = 0, generation = 0, timer = 0, started = false;
  var bundle = new URL(page.getAttribute("data-bundle") + "pagefind.js", location.href).href;

  /* Pagefind (its JS, WebAssembly and filter files) loads when the reader starts to search,
     or at once when the address already holds a query or filters. Loading it on every visit
     was 0.6-0.8 s of main-thread work under Lighthouse (total blocking time 770 ms). */
  function start() {
    if (started) return;
    started = true;
    ["focus", "pointerdown", "keydown"].forEach(function (type) { input.removeEventListener(type, start); });
    load();
  }
  var asked = input.value || FILTERS.some(function (f) { return selected[f[0]].length; });
  if (asked || doc.activeElement === input) {
    start();
  } else {
    ["focus", "pointerdown", "keydown"].forEach(function (type) { input.addEventListener(type, start); });
    form.addEventListener("submit", start);
    page.addEventListener("pointerover", start, { once: true });
  }

  function load() {
    status.textContent = "Loading the search index…";
    import(bundle).then(function (module) {
      pagefind = module;
      return pagefind.options({ excerptLength: 28 });
    }).then(function () {
      return pagefind.filters();
    }).then(function (available) {
      buildFilters(available || {});
      status.textContent = "";
      run();
    }).catch(function () {
      status.textContent = "";
      say(["The search index could not be loaded. Build the site with search enabled (",
        ["python build.py build"], ") and serve it over HTTP; under ", ["serve"],
        " the index is refreshed a moment after each rebuild."]);
    });
  }

  /* -- filters ------------------------------------------------------------------------ */
  var countSpans = {};
  function buildFilters(available) {
    // a disclosure: open beside the results on wide screens, closed above them on phones
    var wrapper = el("details", "filters");
    wrapper.open = !window.matchMedia || window.matchMedia("(min-width: 48rem)").matches;
    var summary = el("summary", "filters-title", "Filter results");
    wrapper.appendChild(summary);
    filterBox.appendChild(wrapper);
    FILTERS.forEach(function (f) {
      var name = f[0], values = available[name];
      if (!values || !Object.keys(values).length) return;
      var fieldset = el("fieldset", "filter-group");
      var legend = el("legend", "", f[1]);
      fieldset.appendChild(legend);
      Object.keys(values).sort(function (a, b) { return a.localeCompare(b); }).forEach(function (value) {
        var label = el("label", "filter-option");
        var box = el("input");
        box.type = "checkbox";
        box.name = name;
        box.value = value;
        box.checked = selected[name].indexOf(value) !== -1;
        box.addEventListener("change", function () {
          selected[name] = Array.prototype.map.call(
            filterBox.querySelectorAll("input[name='" + name + "']:checked"), function (b) { return b.value; });
          run();
        });
        var count = el("span", "count", String(values[value]));
        countSpans[name + "\u0000" + value] = count;
        label.appendChild(box);
        label.appendChild(doc.createTextNode(" " + value + " "));
        label.appendChild(count);
        fieldset.appendChild(label);
      });
      // long lists fold away; sections are the main way to narrow a search, so they stay open
      if (name !== "section" && Object.keys(values).length > 8) {
        var details = el("details", "filter-more");
        if (selected[name].length) details.open = true;
        details.appendChild(el("summary", "", f[1] + " (" + Object.keys(values).length + ")"));
        details.appendChild(fieldset);
        wrapper.appendChild(details);
      } else {
        wrapper.appendChild(fieldset);
      }
    });
    if (Object.keys(selected).some(function (k) { return selected[k].length; })) wrapper.open = true;
    filterBox.hidden = false;
  }
  function updateCounts(counts) {
    Object.keys(countSpans).forEach(function (key) {
      var parts = key.split("\u0000");
      var n = counts && counts[parts[0]] ? counts[parts[0]][parts[1]] || 0 : 0;
      countSpans[key].textContent = String(n);
      countSpans[key].parentNode.classList.toggle("is-empty", n === 0);
    });
  }
  function activeFilters() {
    var filters = {};
    Object.keys(selected).forEach(function (name) {
      if (selected[name].length) filters[name] = { any: selected[name] };
    });
    return filters;
  }

  /* -- searching ---------------------------------------------------------------------- */
  function writeAddress(query) {
    var next = new URLSearchParams();
    if (query) next.set("q", query);
    Object.keys(selected).forEach(function (name) {
      selected[name].forEach(function (value) { next.append(name, value); });
    });
    var search = next.toString();
    history.replaceState(null, "", location.pathname + (search ? "?" + search : ""));
  }

  function run() {
    if (!pagefind) return;
    var query = input.value.trim();
    var filters = activeFilters();
    var filtered = Object.keys(filters).length > 0;
    writeAddress(query);
    var mine = ++generation;
    if (!query && !filtered) {
      list.textContent = "";
      more.hidden = true;
      status.textContent = "";
      updateCounts(null);
      return;
    }
    pagefind.search(query || null, { filters: filters }).then(function (search) {
      if (mine !== generation || !search) return;
      results = search.results;
      shown = 0;
      list.textContent = "";
      updateCounts(search.filters);
      var n = results.length;
      var what = query ? " for “" + query + "”" : "";
      return showMore().then(function () {
        if (mine !== generation) return;
        // announced once the first results are on the page
        status.textContent = n ? n + (n === 1 ? " result" : " results") + what +
          (filtered ? ", filtered" : "") + "." : "No results" + what +
          (filtered ? " with these filters" : "") + ". Try other or fewer words" +
          (filtered ? ", or clear a filter." : ".");
      });
    });
  }

  function showMore() {
    var mine = generation;
    var batch = results.slice(shown, shown + PAGE_SIZE);
    return Promise.all(batch.map(function (r) { return r.data(); })).then(function (items) {
      if (mine !== generation) return;
      items.forEach(function (data) { list.appendChild(renderResult(data, shown++)); });
      more.hidden = shown >= results.length;
    });
  }

  function renderResult(data, index) {
    var item = el("li", "search-result");
    var link = el("a", "result-link", (data.meta && data.meta.title) || data.url);
    link.href = data.url;
    link.id = "result-" + index;
    var title = el("h2", "result-title");
    title.appendChild(link);
    item.appendChild(title);
    var filters = data.filters || {};
    var meta = el("p", "result-meta");
    (filters.section || []).forEach(function (s) { meta.appendChild(el("span", "result-section", s)); });
    ["status", "evidence"].forEach(function (name) {
      (filters[name] || []).forEach(function (v) { meta.appendChild(el("span", "badge tone-neutral", v)); });
    });
    if (meta.childNodes.length) item.appendChild(meta);
    var excerpt = el("p", "result-excerpt");
    fillExcerpt(excerpt, data.excerpt || "");
    item.appendChild(excerpt);
    return item;
  }

  /* Pagefind's excerpt is escaped text plus <mark> tags: rebuild it from text nodes and
     <mark> elements only, so no markup from an indexed page can reach this page. */
  var decoder = doc.createElement("textarea");
  function fillExcerpt(target, html) {
    var marked = false;
    html.split(/(<mark>|<\/mark>)/).forEach(function (part) {
      if (part === "<mark>") { marked = true; return; }
      if (part === "</mark>") { marked = false; return; }
      if (!part) return;
      decoder.innerHTML = part;
      target.appendChild(marked ? el("mark", "", decoder.value) : doc.createTextNode(decoder.value));
    });
  }

  /* -- input and keyboard ------------------------------------------------------------- */
  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(run, 160);
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    clearTimeout(timer);
    run();
  });
  more.addEventListener("click", function () {
    var next = shown;
    showMore().then(function () {
      var link = doc.getElementById("result-" + next);
      if (link) link.focus();
    });
  });
  var links = function () { return Array.prototype.slice.call(list.querySelectorAll(".result-link")); };
  input.addEventListener("keydown", function (event) {
    if (event.key === "ArrowDown" && links().length) {
      event.preventDefault();
      links()[0].focus();
    }
  });
  list.addEventListener("keydown", function (event) {
    var all = links();
    var at = all.indexOf(doc.activeElement);
    if (at === -1) return;
    if (event.key === "ArrowDown" && at < all.length - 1) {
      event.preventDefault();
      all[at + 1].focus();
    } else if (event.key === "ArrowUp") {
      event.preventDefault();
      (at > 0 ? all[at - 1] : input).focus();
    } else if (event.key === "Escape") {
      input.focus();
    }
  });
})();
