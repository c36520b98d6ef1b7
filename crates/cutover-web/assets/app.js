// cutover dashboard: live updates over server-sent events. The pages are complete without this
// script; it only adds what happens after a page was rendered. Text is always set with
// textContent, never parsed as HTML.
"use strict";
(function () {
  var base = document.body.getAttribute("data-base") || "";
  var status = document.getElementById("live-status");
  var table = document.querySelector("[data-live]");
  var notice = document.querySelector("[data-live-notice]");
  var anchor = table || notice;
  if (!anchor || typeof EventSource === "undefined") return;
  var after = anchor.getAttribute("data-after") || "0";
  var subject = anchor.getAttribute("data-subject") || "";
  var url = base + "/events?after=" + encodeURIComponent(after);
  if (subject) url += "&subject=" + encodeURIComponent(subject);
  var source = new EventSource(url);
  function say(text) { if (status) status.textContent = text; }
  source.onopen = function () {
    say(table ? "Live: new events appear below as they happen." : "Live: changes are announced here.");
  };
  source.onerror = function () { say("Live updates paused; retrying…"); };
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }
  function link(path, text) {
    var a = document.createElement("a");
    a.href = base + path;
    a.textContent = text;
    return a;
  }
  function subjectCell(tr, s) {
    var td = document.createElement("td");
    var m = /^deployment[:/](\d+)$/.exec(s);
    var r = /^release[:/](.+)$/.exec(s);
    if (m) td.appendChild(link("/deployments/" + m[1], s));
    else if (r) td.appendChild(link("/releases/" + encodeURIComponent(r[1]), s));
    else td.textContent = s;
    tr.appendChild(td);
  }
  function addRow(ev) {
    var tbody = table.tBodies[0];
    var tr = document.createElement("tr");
    tr.className = "fresh";
    tr.setAttribute("data-seq", String(ev.seq));
    var th = document.createElement("th");
    th.scope = "row";
    th.textContent = String(ev.seq);
    th.className = "num";
    tr.appendChild(th);
    var td = document.createElement("td");
    var t = document.createElement("time");
    t.dateTime = ev.at;
    t.textContent = ev.at_text;
    td.appendChild(t);
    tr.appendChild(td);
    cell(tr, ev.actor);
    cell(tr, ev.action);
    subjectCell(tr, ev.subject);
    cell(tr, ev.summary, "mono");
    var empty = tbody.querySelector("tr.empty");
    if (empty) empty.remove();
    if (table.getAttribute("data-order") === "desc") tbody.insertBefore(tr, tbody.firstChild);
    else tbody.appendChild(tr);
  }
  source.addEventListener("audit", function (msg) {
    var ev;
    try { ev = JSON.parse(msg.data); } catch (e) { return; }
    if (table) {
      addRow(ev);
      say("Live: event " + ev.seq + " (" + ev.action + " " + ev.subject + ") arrived: " + ev.summary);
    } else if (/^deployment\.|^proof\.|^agent\./.test(ev.action)) {
      say("Changed since this page was loaded: " + ev.action + " " + ev.subject + ". Reload to see it.");
    }
    var to = ev.action === "deployment.transition" && ev.payload ? ev.payload.to : null;
    var m = /^deployment[:/](\d+)$/.exec(ev.subject);
    if (to && m) {
      // The deployment page's state, and the deployments list's state cell.
      var state = document.querySelector("[data-deployment-state]");
      if (state && subject === ev.subject) state.textContent = to;
      var stateCell = document.querySelector('tr[data-deployment="' + m[1] + '"] [data-state]');
      if (stateCell) stateCell.textContent = to;
    }
  });
})();
