// medtap web inventory: progressive enhancement only; every page works without it.
// Filter drop-downs apply on change (submit their form), and empty filter fields are
// left out of the URL so that links stay short and bookmarkable.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.requestSubmit());
  }
  for (const form of document.querySelectorAll("form[method='get']")) {
    form.addEventListener("submit", () => {
      for (const field of form.elements) {
        if (field.name && field.value === "") field.disabled = true;
      }
    });
  }
});
// Coming back through the history shows the page as it was left: enable the fields again.
window.addEventListener("pageshow", () => {
  for (const field of document.querySelectorAll("form [disabled]")) field.disabled = false;
});
