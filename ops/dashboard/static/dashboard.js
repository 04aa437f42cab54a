// The dashboard's only script: refreshes the server-rendered panels, time-travels them with
// as_of, opens profiles, and draws the ingest-rate sparkline. No framework, no build step.
(function () {
  "use strict";
  const REFRESH_MS = 3000;
  const panels = document.getElementById("panels");
  const profile = document.getElementById("profile");
  const asofInput = document.getElementById("asof");
  const live = document.getElementById("live");
  const rates = [];
  let asOf = new URLSearchParams(location.search).get("as_of");  // null: now
  let openKey = null;

  function query(extra) {
    const params = new URLSearchParams(extra || {});
    if (asOf) params.set("as_of", asOf);
    const text = params.toString();
    return text ? "?" + text : "";
  }

  function showMode() {
    live.dataset.live = asOf ? "no" : "yes";
    live.textContent = asOf ? "⏸ time travel" : "● live";
    document.getElementById("asof-now").classList.toggle("active", !asOf);
  }

  function drawSpark() {
    const svg = document.getElementById("spark");
    if (!svg || rates.length < 2) return;
    const top = Math.max(1, ...rates);
    const points = rates.map((r, i) => `${(100 * i / (rates.length - 1)).toFixed(1)},${(23 - 22 * r / top).toFixed(1)}`);
    svg.innerHTML = `<polyline points="${points.join(" ")}"></polyline>`;
  }

  function noteRate() {
    const cell = panels.querySelector('[data-stat="rate"]');
    const value = cell ? parseFloat(cell.textContent.replace(/,/g, "")) : NaN;
    if (!isNaN(value)) { rates.push(value); if (rates.length > 40) rates.shift(); }
    drawSpark();
  }

  async function refresh() {
    try {
      const answer = await fetch("/dashboard/panels" + query());
      if (answer.ok) { panels.innerHTML = await answer.text(); panels.dataset.asOf = asOf || ""; noteRate(); }
    } catch (e) { /* the engine restarting: try again at the next tick */ }
    if (openKey) await openProfile(openKey, false);
  }

  async function openProfile(key, scroll) {
    openKey = key;
    const answer = await fetch("/dashboard/profile" + query({ key: key }));
    profile.innerHTML = await answer.text();
    profile.hidden = false;
    if (scroll) profile.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  document.getElementById("asof-form").addEventListener("submit", function (event) {
    event.preventDefault();
    const value = asofInput.value;  // "YYYY-MM-DDTHH:MM[:SS]", read as UTC
    asOf = value ? new Date(value + (value.length === 16 ? ":00" : "") + "Z").toISOString() : null;
    history.replaceState(null, "", location.pathname + query());
    showMode();
    refresh();
  });
  document.getElementById("asof-now").addEventListener("click", function () {
    asOf = null;
    asofInput.value = "";
    history.replaceState(null, "", location.pathname);
    showMode();
    refresh();
  });
  document.getElementById("search-form").addEventListener("submit", function (event) {
    event.preventDefault();
    const key = document.getElementById("search").value.trim();
    if (key) openProfile(key, true);
  });
  profile.addEventListener("click", function (event) {
    const target = event.target;
    if (target.matches("[data-close]")) { profile.hidden = true; openKey = null; }
    if (target.matches("[data-open]")) { event.preventDefault(); openProfile(target.dataset.open, true); }
  });

  showMode();
  noteRate();
  setInterval(refresh, REFRESH_MS);
})();
