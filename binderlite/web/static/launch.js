// Launch page: follow /build/<provider>/<spec>, show phase and log, go to the server when ready.
//
// The server's token goes only to a URL inside that server: same origin as the ready event's
// `url` and under its path. A link whose urlpath/labpath/filepath would leave it (a scheme,
// "//", "\", a "." or ".." segment, percent-encoded or not) is refused: the page says so and
// opens the server's start page instead after REFUSED_DELAY_MS, so the message can be read.
(function () {
  "use strict";
  const REFUSED_DELAY_MS = 3000;
  const card = document.getElementById("launch");
  const phase = document.getElementById("phase");
  const status = document.getElementById("status-message");
  const log = document.getElementById("log");
  const params = new URLSearchParams(window.location.search);
  let finished = false;

  // BinderHub's rule: urlpath as given; else labpath → doc/tree/<path>; else filepath → tree/<path>.
  // One leading "/" is dropped, as BinderHub joins the path under the server's URL.
  // Returns [what the link asked for, the path to join].
  function requestedPath() {
    const urlpath = params.get("urlpath");
    const labpath = params.get("labpath");
    const filepath = params.get("filepath");
    if (urlpath) return [urlpath, urlpath.trim().replace(/^\//, "")];
    const asked = labpath || filepath || "";
    const file = encodeURI(asked.trim().replace(/^\//, "").replace(/\/$/, ""));
    if (labpath) return [asked, "doc/tree/" + file];
    if (filepath) return [asked, "tree/" + file];
    return ["", ""];
  }

  // Percent-decoding repeated until nothing changes (each pass shortens the text, so it ends).
  function fullyDecoded(text) {
    let previous;
    do {
      previous = text;
      text = text.replace(/%([0-9a-f]{2})/gi, function (_, hex) {
        return String.fromCharCode(parseInt(hex, 16));
      });
    } while (text !== previous);
    return text;
  }

  // Why `path` may not be joined under the server's URL, or "" if it may.
  function refusal(path) {
    const plain = fullyDecoded(path);
    if (/[\u0000-\u001f\u007f]/.test(plain)) return "it contains control characters";
    if (/^[a-z][a-z0-9+.-]*:/i.test(plain)) return "it names a scheme";
    if (plain.includes("\\")) return "it contains a backslash";
    if (plain.startsWith("/")) return "it starts with \"//\"";
    if (plain.split(/[/?#]/).some(function (seg) { return seg === "." || seg === ".."; })) {
      return "it has a \".\" or \"..\" segment";
    }
    return "";
  }

  // The URL to open with the token, checked to be inside the server; null if `base` is unusable.
  function serverTarget(base, path) {
    if (base.protocol !== "http:" && base.protocol !== "https:") return null;
    const url = new URL(path, base);
    if (url.origin !== base.origin || !url.pathname.startsWith(base.pathname)) return null;
    return url;
  }

  function withToken(url, token) {
    const query = "token=" + encodeURIComponent(token || "");
    url.search = url.search.length > 1 ? url.search.slice(1) + "&" + query : query;
    return url;
  }

  function append(text) {
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.textContent += text;
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  // The reason first (its first line, in words), then the rest of the message; the full log stays below.
  function fail(message) {
    finished = true;
    phase.textContent = "failed";
    status.textContent = "The launch failed.";
    const lines = message.trim().split("\n");
    document.getElementById("failure-reason").textContent = lines[0];
    document.getElementById("failure-message").textContent = lines.slice(1).join("\n");
    document.getElementById("failure").hidden = false;
    document.getElementById("log-box").open = true;
  }

  // Warnings (a conda package left out, …) are listed apart, above the log.
  function warn(text) {
    const item = document.createElement("li");
    item.textContent = text.trim().replace(/^binderlite: /, "");
    document.getElementById("warning-list").appendChild(item);
    document.getElementById("warnings").hidden = false;
  }

  function openServer(data) {
    let base;
    try {
      base = new URL(data.url, window.location.href);
    } catch (err) {
      fail("The server's address is not a URL: " + data.url);
      return;
    }
    if (!base.pathname.endsWith("/")) base.pathname += "/";
    base.search = "";
    base.hash = "";
    const [asked, path] = requestedPath();
    const why = refusal(path);
    const target = why ? null : serverTarget(base, path);
    const root = serverTarget(base, "");
    if (!root) {
      fail("The server's address is not an http(s) URL: " + data.url);
      return;
    }
    if (target) {
      status.textContent = "Server ready, redirecting to " + base.href;
      window.location.href = withToken(target, data.token).href;
      return;
    }
    const notice = document.getElementById("refused");
    notice.textContent =
      "This link asks to open \u201c" + asked + "\u201d, which is not a page inside your server (" +
      (why || "it leads outside the server") + "). Opening the server's start page instead.";
    notice.hidden = false;
    status.textContent = "Server ready at " + base.href;
    window.setTimeout(function () {
      window.location.href = withToken(root, data.token).href;
    }, REFUSED_DELAY_MS);
  }

  const source = new EventSource(card.dataset.buildUrl + window.location.search);
  source.onmessage = function (msg) {
    let data;
    try {
      data = JSON.parse(msg.data);
    } catch (err) {
      append(msg.data + "\n");
      return;
    }
    if (data.phase) phase.textContent = data.phase;
    if (data.message) append(data.message);
    if (data.warning === true && data.message) warn(data.message);
    if (data.phase === "failed") {
      source.close();
      fail(data.message || "The build or launch failed.");
    } else if (data.phase === "ready") {
      finished = true;
      source.close();
      if (data.url) openServer(data);
      else status.textContent = data.message || "Done.";
    } else if (data.message) {
      status.textContent = data.message.trim().split("\n").pop();
    }
  };
  source.onerror = function () {
    if (finished) return;
    source.close();
    fail("Lost the connection to the build stream. The build goes on on the server; reload this page to follow it.");
  };
})();
