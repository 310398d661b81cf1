/* cakupan report: draws the Vega charts inlined in #cakupan-specs, a small tooltip, and the
   tier selectors. No network: every spec carries its data. */
(function () {
  "use strict";
  var payload = JSON.parse(document.getElementById("cakupan-specs").textContent);
  var views = {};
  var tip = document.createElement("div");
  tip.className = "vg-tip";
  tip.setAttribute("role", "tooltip");
  tip.hidden = true;
  document.body.appendChild(tip);

  function esc(text) {
    return String(text).replace(/[&<>"]/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;"}[c];
    });
  }

  function tooltip(handler, event, item, value) {
    if (value == null || value === "" || !event) { tip.hidden = true; return; }
    var html = "";
    if (typeof value === "object") {
      Object.keys(value).forEach(function (key) {
        html += "<div><b>" + esc(key) + "</b>" + esc(value[key]) + "</div>";
      });
    } else {
      html = esc(value);
    }
    tip.innerHTML = html;
    tip.hidden = false;
    var x = event.clientX + 14, y = event.clientY + 14;
    var w = tip.offsetWidth, h = tip.offsetHeight;
    if (x + w > window.innerWidth - 8) { x = Math.max(8, event.clientX - w - 14); }
    if (y + h > window.innerHeight - 8) { y = Math.max(8, event.clientY - h - 14); }
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  }
  window.addEventListener("scroll", function () { tip.hidden = true; }, {passive: true});

  var options = {
    mode: "vega", renderer: "svg", tooltip: tooltip,
    formatLocale: payload.locale.number, timeFormatLocale: payload.locale.time,
    actions: false
  };
  var pending = [];
  Array.prototype.forEach.call(document.querySelectorAll("[data-chart]"), function (el) {
    var name = el.getAttribute("data-chart");
    pending.push(vegaEmbed(el, payload.specs[name], options).then(function (result) {
      views[name] = result.view;
      el.setAttribute("data-rendered", "true");
    }).catch(function (err) {
      el.textContent = "Grafik tidak dapat digambar: " + err;
      console.error(err);
    }));
  });

  function bind(sel) {
    function apply() {
      var value = sel.value;
      var chart = sel.getAttribute("data-view");
      if (chart && views[chart]) {
        views[chart].signal(sel.getAttribute("data-signal"), value).runAsync();
      }
      var group = sel.getAttribute("data-group");
      if (group) {
        Array.prototype.forEach.call(
          document.querySelectorAll("[data-group-item='" + group + "']"), function (el) {
            el.hidden = el.getAttribute("data-key") !== value;
          });
      }
      Array.prototype.forEach.call(
        document.querySelectorAll("[data-label-for='" + sel.id + "']"), function (el) {
          el.textContent = sel.options[sel.selectedIndex].text;
        });
    }
    sel.addEventListener("change", apply);
    apply();
  }
  Promise.all(pending).then(function () {
    Array.prototype.forEach.call(document.querySelectorAll("select[data-select]"), bind);
    document.body.setAttribute("data-charts-ready", "true");
  });
})();
