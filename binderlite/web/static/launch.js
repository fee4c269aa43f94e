// Launch page: follow /build/<provider>/<spec>, show phase and log, go to the server when ready.
(function () {
  "use strict";
  const card = document.getElementById("launch");
  const phase = document.getElementById("phase");
  const status = document.getElementById("status-message");
  const log = document.getElementById("log");
  const params = new URLSearchParams(window.location.search);
  let finished = false;

  // BinderHub's rule: urlpath as given; else labpath → doc/tree/<path>; else filepath → tree/<path>.
  function targetPath() {
    let urlpath = params.get("urlpath");
    if (!urlpath) {
      const labpath = params.get("labpath");
      const filepath = params.get("filepath");
      if (labpath) urlpath = "doc/tree/" + encodeURI(labpath.replace(/^\/+/, ""));
      else if (filepath) urlpath = "tree/" + encodeURI(filepath.replace(/^\/+/, ""));
    }
    return (urlpath || "").trim().replace(/^\/+/, "");
  }

  function append(text) {
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.textContent += text;
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  function fail(message) {
    finished = true;
    phase.textContent = "failed";
    status.textContent = "The launch failed.";
    document.getElementById("failure-message").textContent = message;
    document.getElementById("failure").hidden = false;
    document.getElementById("log-box").open = true;
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
    if (data.phase === "failed") {
      source.close();
      fail(data.message || "The build or launch failed.");
    } else if (data.phase === "ready") {
      finished = true;
      source.close();
      if (!data.url) {
        status.textContent = data.message || "Done.";
        return;
      }
      const url = new URL(targetPath(), data.url);
      url.searchParams.set("token", data.token);
      status.textContent = "Server ready, redirecting to " + data.url;
      window.location.href = url.href;
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
