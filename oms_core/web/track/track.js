// The tracking page without reloading: every 30 s the JSON answer refreshes the arrival
// window and the van. When something the page is built around changes (the state, the
// van appearing, the proof of delivery), the page reloads, unless the customer is
// typing a complaint: then a banner offers the reload instead.
(function () {
  "use strict";
  var EVERY_MS = 30000;
  var body = document.body;
  var token = location.pathname.split("/")[2];
  var url = "/api/v1/track/" + encodeURIComponent(token) + "?lang=" + body.dataset.lang;

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, key) { return values[key]; });
  }

  function hm(iso) {
    var parts = {};
    var fmt;
    try {
      fmt = new Intl.DateTimeFormat("en-GB", {
        timeZone: body.dataset.tz, hour: "2-digit", minute: "2-digit", hourCycle: "h23",
      });
    } catch (e) {
      fmt = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    }
    fmt.formatToParts(new Date(iso)).forEach(function (p) { parts[p.type] = p.value; });
    return parts.hour + body.dataset.timeSep + parts.minute;
  }

  function distance(m) {
    if (m < 1000) { return Math.max(10, Math.round(m / 10) * 10) + " m"; }
    return (m / 1000).toFixed(1).replace(".", body.dataset.decimalSep) + " km";
  }

  function shape(d) {
    return [d.state, d.vehicle ? "1" : "0", d.epod ? "1" : "0", d.notice ? "1" : "0",
      d.stops_before === null ? "" : String(d.stops_before)].join("|");
  }

  function typing() {
    var form = document.getElementById("complaint-form");
    if (!form) { return false; }
    return form.elements.text.value !== "" || form.elements.photo.value !== "" ||
      form.elements.category.value !== "" || form.contains(document.activeElement);
  }

  function setText(id, text) {
    var el = document.getElementById(id);
    if (el) { el.textContent = fill(el.dataset.template, text); }
  }

  function reload() {
    // After a refused complaint the address is the form's: load the page, not the POST.
    var page = "/t/" + token;
    if (location.pathname === page) { location.reload(); } else { location.replace(page + location.search); }
  }

  function show(d) {
    if (shape(d) !== body.dataset.shape) {
      if (!typing()) { reload(); return; }
      document.getElementById("news").hidden = false;
    }
    if (d.eta) {
      setText("eta-range", { start: hm(d.eta.window_start), end: hm(d.eta.window_end) });
    }
    if (d.vehicle) {
      if (d.vehicle.distance_m !== null) {
        setText("vehicle-away", { distance: distance(d.vehicle.distance_m) });
      }
      setText("vehicle-seen", { time: hm(d.vehicle.at) });
      var map = document.getElementById("vehicle-map");
      if (map) { map.href = d.vehicle.map_url; }
    }
    setText("updated", { time: hm(new Date().toISOString()) });
  }

  function refresh() {
    fetch(url, { cache: "no-store", credentials: "omit" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) { if (d) { show(d); } })
      .catch(function () { /* offline for a moment: the next round tries again */ });
  }

  if (token) { setInterval(refresh, EVERY_MS); }
}());
