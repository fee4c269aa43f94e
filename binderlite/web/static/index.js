// Landing page: turn the form into a shareable /v2/ link and badge markdown (BinderHub's format).
(function () {
  "use strict";
  const form = document.getElementById("launch-form");
  const provider = document.getElementById("provider");
  const repository = document.getElementById("repository");
  const ref = document.getElementById("ref");
  const path = document.getElementById("path");
  const pathType = document.getElementById("path-type");
  const base = new URL(document.querySelector("header .brand").getAttribute("href"), window.location.href);

  function option() {
    return provider.options[provider.selectedIndex];
  }

  function updateProvider() {
    const opt = option();
    document.getElementById("repository-label").textContent = opt.dataset.label;
    repository.placeholder = opt.dataset.placeholder;
    ref.disabled = opt.dataset.ref !== "true";
    update();
  }

  function repoSpec(id, repo) {
    repo = repo.trim();
    if (id === "gh") {
      repo = repo.replace(/^(https?:\/\/)?(www\.)?github\.com\//, "").replace(/\.git$/, "").replace(/\/+$/, "");
    } else if (id === "gl") {
      repo = repo.replace(/^(https?:\/\/)?gitlab\.com\//, "").replace(/\.git$/, "").replace(/\/+$/, "");
    } else if (id === "gist") {
      repo = repo.replace(/^(https?:\/\/)?gist\.github\.com\//, "").replace(/\/+$/, "");
    }
    return option().dataset.urlEncode === "true" ? encodeURIComponent(repo) : repo;
  }

  function shareUrl() {
    const id = provider.value;
    if (!repository.value.trim()) return null;
    let spec = repoSpec(id, repository.value);
    if (option().dataset.ref === "true") {
      spec += "/" + encodeURI(ref.value.trim() || "HEAD");
    }
    const url = new URL("v2/" + id + "/" + spec, base);
    const p = path.value.trim();
    if (p) {
      url.search = (pathType.value === "url" ? "urlpath=" : "labpath=") + encodeURIComponent(p);
    }
    return url.href;
  }

  function update() {
    const url = shareUrl();
    const share = document.getElementById("share");
    if (!url) {
      share.hidden = true;
      return;
    }
    const badge = new URL("badge_logo.svg", base).href;
    document.getElementById("share-url").value = url;
    document.getElementById("badge-markdown").value = "[![Binder](" + badge + ")](" + url + ")";
    document.getElementById("badge-rst").value = ".. image:: " + badge + "\n :target: " + url;
    share.hidden = false;
  }

  provider.addEventListener("change", updateProvider);
  [repository, ref, path, pathType].forEach(function (el) {
    el.addEventListener("input", update);
    el.addEventListener("change", update);
  });
  document.querySelectorAll("#share input").forEach(function (el) {
    el.addEventListener("focus", function () { el.select(); });
  });
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    const url = shareUrl();
    if (url) window.location.href = url;
  });
  updateProvider();
})();
