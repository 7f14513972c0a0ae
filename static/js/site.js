/* Progressive enhancement only: every page works without this file.
   Theme toggle, "/" to search, link previews on hover and focus, the active TOC entry,
   full link addresses when printing. Its one request: previews.json, on first use. */
(function () {
  "use strict";
  var doc = document;
  var root = doc.documentElement;
  var each = function (list, fn) { Array.prototype.forEach.call(list, fn); };

  /* -- theme: follows the system until the reader picks one; the choice is remembered -- */
  var toggle = doc.querySelector(".theme-toggle");
  var systemDark = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  var isDark = function () {
    var chosen = root.getAttribute("data-theme");
    return chosen ? chosen === "dark" : !!(systemDark && systemDark.matches);
  };
  var showTheme = function () { toggle.setAttribute("aria-pressed", isDark() ? "true" : "false"); };
  if (toggle) {
    toggle.hidden = false;
    showTheme();
    toggle.addEventListener("click", function () {
      var next = isDark() ? "light" : "dark";
      root.setAttribute("data-theme", next);
      try { localStorage.setItem("kb-theme", next); } catch (e) { /* private mode: this page only */ }
      showTheme();
    });
    if (systemDark && systemDark.addEventListener) systemDark.addEventListener("change", showTheme);
  }

  /* -- search box: "/" focuses it; from file:// it explains that search needs HTTP -- */
  var searchInput = doc.querySelector("[data-search-input]");
  doc.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey || !searchInput) return;
    var target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    event.preventDefault();
    searchInput.focus();
    searchInput.select();
  });
  var headerForm = doc.querySelector(".site-header [data-search-form]");
  if (headerForm && location.protocol === "file:") {
    var note = headerForm.querySelector(".search-file-note");
    var explain = function (event) {
      if (event.type === "submit") event.preventDefault();
      note.textContent = "Search needs the site served over HTTP: run “python build.py serve” " +
        "(or “python -m http.server -d site”) and open http://127.0.0.1:8000/.";
      note.hidden = false;
    };
    headerForm.addEventListener("submit", explain);
    searchInput.addEventListener("focus", explain);
  }

  /* -- link previews: title + summary on hover and on keyboard focus -- */
  // previews.json (page file -> {title, summary}) sits at the site root, two levels above us
  var script = doc.currentScript;
  var siteRoot = script ? script.src.replace(/static\/js\/site\.js(\?.*)?$/, "") : "";
  var previews = null, loading = null;
  var loadPreviews = function () {
    if (!loading && siteRoot && window.fetch) {
      loading = fetch(siteRoot + "previews.json").then(function (r) { return r.ok ? r.json() : {}; })
        .catch(function () { return {}; }).then(function (data) { previews = data; return data; });
    }
    return loading;
  };
  var pageFile = function (link) {
    var url = link.href.split("#")[0].split("?")[0];
    if (url.indexOf(siteRoot) !== 0) return null;
    var file = decodeURIComponent(url.slice(siteRoot.length));
    return file === "" || file.slice(-1) === "/" ? file + "index.html" : file;
  };
  each(doc.querySelectorAll("abbr.term[title]"), function (abbr) {
    // our tooltip replaces the native one (which keyboard users never see)
    abbr.setAttribute("data-definition", abbr.title);
    abbr.removeAttribute("title");
  });
  var tip = null, tipFor = null, showTimer = 0, hideTimer = 0;

  var previewOf = function (link) {
    var abbr = link.parentNode;
    if (abbr && abbr.nodeName === "ABBR" && abbr.hasAttribute("data-definition")) {
      return { title: link.textContent, summary: abbr.getAttribute("data-definition") };
    }
    var href = link.getAttribute("href") || "";
    var ref = /^#(ref-\d+)$/.exec(href);
    if (ref) {
      var item = doc.getElementById(ref[1]);
      if (!item) return null;
      var copy = item.cloneNode(true);
      each(copy.querySelectorAll(".backrefs"), function (el) { el.parentNode.removeChild(el); });
      return { title: "Reference " + ref[1].slice(4), summary: copy.textContent.replace(/\s+/g, " ").trim() };
    }
    if (!previews || href.charAt(0) === "#") return null;
    var file = pageFile(link);
    return file && file !== pageFile(location) ? previews[file] || null : null;
  };

  var hide = function () {
    clearTimeout(showTimer);
    if (!tip || !tipFor) return;
    tipFor.removeAttribute("aria-describedby");
    tip.hidden = true;
    tipFor = null;
  };

  var show = function (link) {
    var preview = previewOf(link);
    if (!preview) return;
    if (!tip) {
      tip = doc.createElement("div");
      tip.id = "link-preview";
      tip.className = "link-preview";
      tip.setAttribute("role", "tooltip");
      tip.addEventListener("mouseenter", function () { clearTimeout(hideTimer); });
      tip.addEventListener("mouseleave", function () { hideTimer = setTimeout(hide, 200); });
      doc.body.appendChild(tip);
    }
    hide();
    tip.textContent = "";
    var title = doc.createElement("strong");
    title.textContent = preview.title;
    var summary = doc.createElement("span");
    summary.textContent = preview.summary;
    tip.appendChild(title);
    tip.appendChild(summary);
    tip.hidden = false;
    tipFor = link;
    link.setAttribute("aria-describedby", "link-preview");
    var box = link.getBoundingClientRect();
    var width = tip.offsetWidth, height = tip.offsetHeight;
    var left = Math.max(8, Math.min(box.left, root.clientWidth - width - 8));
    var top = box.bottom + 8;
    if (top + height > window.innerHeight && box.top - height - 8 > 0) top = box.top - height - 8;
    tip.style.left = (left + window.pageXOffset) + "px";
    tip.style.top = (top + window.pageYOffset) + "px";
  };

  var linkIn = function (target) {
    var link = target && target.closest ? target.closest("a[href]") : null;
    return link && link.closest(".article-body, .section-intro, .home-intro") ? link : null;
  };
  // the first hover or focus fetches previews.json; the preview shows once it has arrived
  var whenReady = function (link, then) {
    if (previews || !loadPreviews()) then(); else loadPreviews().then(then);
  };
  doc.addEventListener("mouseover", function (event) {
    var link = linkIn(event.target);
    if (!link || link === tipFor) return;
    clearTimeout(showTimer);
    clearTimeout(hideTimer);
    showTimer = setTimeout(function () {
      whenReady(link, function () { if (link.matches(":hover")) show(link); });
    }, 250);
  });
  doc.addEventListener("mouseout", function (event) {
    var link = linkIn(event.target);
    if (!link) return;
    clearTimeout(showTimer);
    if (link === tipFor) hideTimer = setTimeout(hide, 200);
  });
  doc.addEventListener("focusin", function (event) {
    var link = linkIn(event.target);
    if (!link) { hide(); return; }
    whenReady(link, function () { if (doc.activeElement === link) show(link); });
  });
  doc.addEventListener("focusout", function (event) { if (event.target === tipFor) hide(); });
  doc.addEventListener("keydown", function (event) { if (event.key === "Escape") hide(); });

  /* -- on-page TOC: mark the section being read -- */
  var tocLinks = doc.querySelectorAll(".toc a[href^='#']");
  if (tocLinks.length && "IntersectionObserver" in window) {
    var byId = {};
    each(tocLinks, function (a) { byId[decodeURIComponent(a.getAttribute("href").slice(1))] = a; });
    var visible = {};
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) { visible[entry.target.id] = entry.isIntersecting; });
      var current = null;
      each(tocLinks, function (a) {
        var id = decodeURIComponent(a.getAttribute("href").slice(1));
        if (!current && visible[id]) current = a;
        a.removeAttribute("aria-current");
      });
      if (current) current.setAttribute("aria-current", "location");
    }, { rootMargin: "0px 0px -60% 0px" });
    Object.keys(byId).forEach(function (id) {
      var heading = doc.getElementById(id);
      if (heading) observer.observe(heading);
    });
  }

  /* -- print: internal links get their full address (the public one when known) -- */
  window.addEventListener("beforeprint", function () {
    var canonical = doc.querySelector("link[rel=canonical]");
    var base = canonical ? canonical.href : location.href;
    each(doc.querySelectorAll(".article-body a[href]:not([href^='#'])"), function (a) {
      if (a.closest("abbr") || /^[a-z]+:/i.test(a.getAttribute("href"))) return;
      try { a.setAttribute("data-print-href", new URL(a.getAttribute("href"), base).href); } catch (e) { /* keep */ }
    });
  });
})();
