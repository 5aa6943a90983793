// The console's few behaviours. Everything works without them but picking a time on the axis.
"use strict";

function trouble(text) {
  const box = document.getElementById("trouble");
  if (!box) return;
  box.textContent = text;
  box.hidden = !text;
}

function shownError(xhr) {
  const page = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
  const found = page.querySelector("#error .detail");
  const hint = page.querySelector("#error .hint");
  const said = found ? found.textContent + (hint ? " " + hint.textContent : "") : "";
  return said || "The server answered " + xhr.status + ".";
}

document.addEventListener("htmx:responseError", (event) => trouble(shownError(event.detail.xhr)));
document.addEventListener("htmx:sendError", () => {
  trouble("The server cannot be reached: what this page shows dates from " +
          new Date().toLocaleTimeString() + ". It keeps trying.");
});
document.addEventListener("htmx:afterRequest", (event) => {
  if (event.detail.successful) trouble("");
});

document.addEventListener("click", (event) => {
  const target = event.target;
  if (target.matches("[data-back]") && history.length > 1) {
    event.preventDefault();
    history.back();
  }
  if (target.matches("[data-select-all]")) {
    for (const box of target.closest("form").querySelectorAll("input[name=message]")) {
      box.checked = target.checked;
    }
  }
  const axis = target.closest("svg#axis");
  if (axis && !target.closest("a")) {
    const box = axis.getBoundingClientRect();
    const view = axis.viewBox.baseVal;
    const x = view.x + (event.clientX - box.left) / box.width * view.width;
    const start = Number(axis.dataset.start), end = Number(axis.dataset.end);
    const at = new Date(start + Math.min(1, Math.max(0, x / 1000)) * (end - start));
    const field = document.getElementById("point");
    if (field) {
      field.value = at.toISOString().replace(/\.\d+Z$/, "Z");
      field.focus();
    }
  }
});

document.addEventListener("change", (event) => {
  if (event.target.id === "point-list" && event.target.value) {
    document.getElementById("point").value = event.target.value;
  }
});
