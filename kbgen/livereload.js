/* kbgen live reload: injected by `kbgen serve` into HTML responses only; never part of a built site.
 *
 * Listens to Server-Sent Events on /__kbgen/events:
 *   reload {epoch, changed}   output files changed by a rebuild ("/x/index.html"; null = all).
 *                             This tab reloads (keeping its scroll position) if its page, or an
 *                             asset other than CSS, changed; if only stylesheets changed, they
 *                             are swapped in place without a reload.
 *   errors {epoch, diagnostics, more}
 *                             the rebuild failed: an overlay lists each problem as
 *                             path:line:col: message + hint over the last good page. The next
 *                             successful rebuild removes it and reloads.
 *
 * Browsers allow about 6 HTTP/1.1 connections per origin, and every open stream holds one, so
 * the stream is closed while the tab is hidden or being left (pagehide) and reopened when it is
 * shown again; the server then sends whatever happened meanwhile.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var epoch = Number(script && script.getAttribute("data-epoch")) || 0;
  var server = (script && script.getAttribute("data-server")) || "";
  var servedFile = (script && script.getAttribute("data-file")) || "";
  var SCROLL_KEY = "kbgen-scroll:" + location.pathname;
  var source = null;
  var overlay = null;

  // -- scroll position across reloads

  function reload() {
    try {
      sessionStorage.setItem(SCROLL_KEY, JSON.stringify([window.scrollX, window.scrollY]));
    } catch (e) { /* storage disabled: reload without it */ }
    disconnect();
    location.reload();
  }

  function restoreScroll() {
    var saved = null;
    try {
      saved = JSON.parse(sessionStorage.getItem(SCROLL_KEY) || "null");
      sessionStorage.removeItem(SCROLL_KEY);
    } catch (e) { return; }
    if (!saved) return;
    var apply = function () { window.scrollTo(saved[0], saved[1]); };
    apply();
    window.addEventListener("load", apply, { once: true }); // images may still change the layout
  }

  // -- what changed, and what this tab does about it

  function pagePaths() {
    var path = location.pathname;
    try { path = decodeURIComponent(path); } catch (e) { /* keep it encoded */ }
    if (path.charAt(path.length - 1) === "/") path += "index.html";
    return servedFile ? [path, servedFile] : [path];
  }

  function isStylesheet(path) { return /\.css$/i.test(path); }
  function isPage(path) { return /\.html$/i.test(path); }
  // Files no page loads as a subresource; their change never affects what this tab shows.
  function isInert(path) { return /\.(xml|txt)$/i.test(path); }

  function onReload(message) {
    var data = JSON.parse(message.data);
    epoch = data.epoch;
    if (overlay || data.changed === null) { reload(); return; }
    var changed = data.changed;
    var mine = pagePaths();
    var needsReload = changed.some(function (path) {
      return mine.indexOf(path) >= 0 || !(isPage(path) || isStylesheet(path) || isInert(path));
    });
    if (needsReload) { reload(); return; }
    var sheets = changed.filter(isStylesheet);
    if (sheets.length) swapStylesheets(sheets);
  }

  function swapStylesheets(paths) {
    var links = document.querySelectorAll('link[rel~="stylesheet"]');
    Array.prototype.forEach.call(links, function (link) {
      var url = new URL(link.href, location.href);
      var path = url.pathname;
      try { path = decodeURIComponent(path); } catch (e) { /* keep it encoded */ }
      if (url.origin !== location.origin || paths.indexOf(path) < 0) return;
      url.searchParams.set("kbgen-epoch", String(epoch));
      var fresh = link.cloneNode(false);
      fresh.href = url.href;
      // Keep the old sheet until the new one has loaded: no flash of unstyled content.
      var done = function () { if (link.parentNode) link.parentNode.removeChild(link); };
      fresh.addEventListener("load", done);
      fresh.addEventListener("error", done);
      link.parentNode.insertBefore(fresh, link.nextSibling);
    });
  }

  // -- the error overlay (in a shadow root: the site's CSS cannot restyle it, nor it the site)

  var OVERLAY_CSS = [
    ":host{all:initial}",
    ".backdrop{position:fixed;inset:0;z-index:2147483647;background:rgba(20,20,24,.72);",
    "overflow:auto;padding:5vh 4vw;font:15px/1.5 system-ui,sans-serif;color:#1b1b1f}",
    ".box{max-width:60rem;margin:0 auto;background:#fff;border-radius:8px;",
    "border-top:6px solid #c62828;box-shadow:0 10px 40px rgba(0,0,0,.4);padding:1.25rem 1.5rem}",
    "h2{margin:0 0 .25rem;font-size:1.25rem;color:#b71c1c}",
    "p{margin:.25rem 0 1rem}",
    "ol{margin:0;padding:0;list-style:none}",
    "li{padding:.6rem 0;border-top:1px solid #e3e3e8}",
    "code{font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre-wrap;",
    "word-break:break-word}",
    ".where{font-weight:600}.error{color:#b71c1c}.warning{color:#8a5a00}",
    ".hint{display:block;color:#3d3d46;margin-top:.2rem;padding-left:1.2rem}",
    "button{float:right;font:inherit;padding:.2rem .7rem;border:1px solid #888;border-radius:4px;",
    "background:#f4f4f6;cursor:pointer}"
  ].join("");

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text; // never innerHTML: messages quote the user's text
    return node;
  }

  function showOverlay(data) {
    hideOverlay();
    var host = document.createElement("div");
    host.id = "kbgen-overlay";
    var root = host.attachShadow({ mode: "open" });
    var style = document.createElement("style");
    style.textContent = OVERLAY_CSS;
    root.appendChild(style);
    var backdrop = element("div", "backdrop");
    var box = element("div", "box");
    box.setAttribute("role", "alertdialog");
    box.setAttribute("aria-labelledby", "kbgen-title");
    var dismiss = element("button", "", "Dismiss");
    dismiss.type = "button";
    dismiss.addEventListener("click", hideOverlay);
    box.appendChild(dismiss);
    var title = element("h2", "", "Build failed");
    title.id = "kbgen-title";
    box.appendChild(title);
    box.appendChild(element("p", "",
      "The page below is the last good build. Fix the problems and save: this tab reloads by itself."));
    var list = element("ol", "");
    (data.diagnostics || []).forEach(function (d) {
      var row = element("li", "");
      var code = element("code", "");
      code.appendChild(element("span", "where", d.location));
      code.appendChild(document.createTextNode(": "));
      code.appendChild(element("span", d.severity, d.severity));
      code.appendChild(document.createTextNode(": " + d.message));
      row.appendChild(code);
      if (d.hint) row.appendChild(element("code", "hint", "hint: " + d.hint));
      list.appendChild(row);
    });
    box.appendChild(list);
    if (data.more) box.appendChild(element("p", "", "… and " + data.more + " more (see the terminal)."));
    backdrop.appendChild(box);
    root.appendChild(backdrop);
    (document.body || document.documentElement).appendChild(host);
    overlay = host;
  }

  function hideOverlay() {
    if (overlay && overlay.parentNode) overlay.parentNode.removeChild(overlay);
    overlay = null;
  }

  function onErrors(message) {
    var data = JSON.parse(message.data);
    epoch = data.epoch;
    showOverlay(data);
  }

  // -- the connection

  function connect() {
    if (source) return;
    source = new EventSource("/__kbgen/events?epoch=" + epoch + "&server=" + encodeURIComponent(server));
    source.addEventListener("reload", onReload);
    source.addEventListener("errors", onErrors);
  }

  function disconnect() {
    if (source) { source.close(); source = null; }
  }

  window.addEventListener("pagehide", disconnect);
  window.addEventListener("pageshow", function (event) {
    if (event.persisted && !document.hidden) connect(); // back/forward cache
  });
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) disconnect(); else connect();
  });

  restoreScroll();
  var inline = document.getElementById("kbgen-errors");
  if (inline) {
    try { showOverlay(JSON.parse(inline.textContent)); } catch (e) { /* the stream sends them too */ }
  }
  if (!document.hidden) connect();
})();
