// deployer dashboard: the little behaviour the pages need (served from /static, allowed by the CSP).
"use strict";

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]').content;
}

// Reveal one secret output on request: POST (CSRF header), then show the value in place.
function setUpReveal(button) {
  button.addEventListener("click", async () => {
    const target = document.getElementById(button.dataset.target);
    button.disabled = true;
    try {
      const response = await fetch(button.dataset.reveal, {
        method: "POST",
        headers: { "X-CSRF-Token": csrfToken() },
        credentials: "same-origin",
      });
      const body = await response.json();
      if (!response.ok) {
        throw new Error(body.error || response.statusText);
      }
      target.textContent = body.value;
      target.classList.add("revealed");
      button.textContent = "Revealed";
    } catch (err) {
      target.textContent = "could not reveal: " + err.message;
      button.disabled = false;
    }
  });
}

// The destroy button stays disabled until the deployment's name is typed (the server checks it too).
function setUpDestroyConfirmation(form) {
  const input = form.querySelector("input[data-expected]");
  const button = form.querySelector("button[type=submit]");
  const update = () => {
    button.disabled = input.value.trim() !== input.dataset.expected;
  };
  input.addEventListener("input", update);
  update();
}

// A submitted form says it is working and cannot be sent twice.
function setUpBusyForms(form) {
  form.addEventListener("submit", () => {
    const button = form.querySelector("button[type=submit]");
    if (button) {
      button.disabled = true;
      button.textContent = "Working…";
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("button[data-reveal]").forEach(setUpReveal);
  document.querySelectorAll("#destroy-form").forEach(setUpDestroyConfirmation);
  document.querySelectorAll("form[method=post]").forEach(setUpBusyForms);
  const refresh = Number(document.body.dataset.refreshSeconds || 0);
  if (refresh > 0) {
    setTimeout(() => window.location.reload(), refresh * 1000);
  }
});
