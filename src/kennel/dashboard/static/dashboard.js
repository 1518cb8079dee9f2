// Kennel's dashboard script. Every page works without it; on a worker's page it shows one tab
// at a time, follows the turn in flight through the worker's event stream (the answer as it
// arrives, a clock, each model request and tool call with its duration, the sources found),
// looks again when a schedule comes due, and copies the address and token with the Copy
// buttons. Forms marked `data-confirm` ask first, in the page's own dialog (without the script
// their routes ask on a page instead).
(function () {
  "use strict";

  var RETRY_MS = 2000;
  // A schedule's firing is looked for this long after its due time, again every MIN_WAIT_MS
  // while it has not started, and given up STALE_MS after (the server is away, or busy).
  var DUE_SLACK_MS = 1500;
  var MIN_WAIT_MS = 2000;
  var STALE_MS = 60000;
  var MAX_WAIT_MS = 86400000; // setTimeout fires at once past 2^31 ms
  var TICK_MS = 200;
  var following = false;
  var dueTimer = null;

  document.documentElement.classList.add("js");

  function byId(id) {
    return document.getElementById(id);
  }

  function setStatus(text) {
    var badge = byId("live-status");
    if (badge) {
      badge.textContent = text;
      badge.className = "status status-" + text;
    }
  }

  // The worker page's own address: after a refused form the browser shows the form's.
  function pageUrl() {
    var state = byId("state");
    var events = state ? state.getAttribute("data-events") : null;
    var path = events ? events.replace(/\/events$/, "") : window.location.pathname;
    return path === window.location.pathname ? path + window.location.search : path;
  }

  // Swap in the sections of the page as the server renders them now (state, files, usage,
  // history, the schedules and deliveries lists), keeping what the user is typing into the
  // Run form (the panels' forms are not swapped).
  function refresh() {
    fetch(pageUrl(), {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    })
      .then(function (response) {
        if (response.redirected || !response.ok) {
          throw new Error("page answered " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var typed = byId("input") ? byId("input").value : null;
        // The timeline of the turn that just ended stays on the page (the server keeps no
        // timings of it), unless another turn is running now.
        var lastLive = byId("live");
        var freshState = fresh.getElementById("state");
        var keepLive =
          lastLive &&
          byId("timeline") &&
          byId("timeline").children.length > 0 &&
          freshState &&
          freshState.getAttribute("data-running") !== "true";
        ["state", "run", "history", "usage", "schedule-list", "webhook-log"].forEach(function (id) {
          var next = fresh.getElementById(id);
          var current = byId(id);
          if (next && current) {
            // What the user opened stays open (a schedule's runs, the conversation).
            current.querySelectorAll("details[open][id]").forEach(function (opened) {
              var again = next.querySelector("#" + CSS.escape(opened.id));
              if (again) {
                again.open = true;
              }
            });
            current.replaceWith(document.adoptNode(next));
          }
        });
        if (typed !== null && byId("input")) {
          byId("input").value = typed;
        }
        if (keepLive && byId("live")) {
          lastLive.classList.add("ended");
          byId("live").replaceWith(lastLive);
        }
        follow();
        watchSchedules();
      })
      .catch(function () {
        // Signed out meanwhile, or the server is away: loading the page again shows which
        // (never a reload, which would post a refused form again).
        window.location.assign(pageUrl());
      });
  }

  // Look at the page again when the next schedule comes due, so its task shows up.
  function watchSchedules() {
    if (dueTimer !== null) {
      window.clearTimeout(dueTimer);
      dueTimer = null;
    }
    var list = byId("schedule-list");
    var due = list ? Date.parse(list.getAttribute("data-next-due") || "") : NaN;
    if (isNaN(due)) {
      return;
    }
    var wait = due - Date.now() + DUE_SLACK_MS;
    if (wait < -STALE_MS) {
      return;
    }
    dueTimer = window.setTimeout(function () {
      dueTimer = null;
      if (!following) {
        refresh(); // else the turn's end refreshes the page, and watches again
      }
    }, Math.min(Math.max(wait, MIN_WAIT_MS), MAX_WAIT_MS));
  }

  // The Copy buttons: the clipboard where the browser allows it (https, or this computer),
  // else the text is selected for the user to copy.
  function copy(button) {
    var source = byId(button.getAttribute("data-copy"));
    if (!source) {
      return;
    }
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);

    function say(text) {
      button.textContent = text;
      window.setTimeout(function () {
        button.textContent = label;
      }, 2000);
    }

    function select() {
      var range = document.createRange();
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      say("Selected: copy with Ctrl+C");
    }

    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(source.textContent.trim()).then(function () {
        say("Copied");
      }, select);
    } else {
      select();
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-copy]") : null;
    if (button) {
      copy(button);
    }
  });

  function seconds(ms) {
    var s = Math.max(0, ms) / 1000;
    if (s < 60) {
      return s.toFixed(1) + " s";
    }
    return Math.floor(s / 60) + " min " + Math.floor(s % 60) + " s";
  }

  // The turn's timeline: one entry a model request or tool call. Durations are measured here,
  // as the events arrive; a page opened mid-turn gets the earlier events at once, so theirs
  // read as near zero.
  function Timeline(list) {
    this.list = list;
    this.open = [];
    this.requests = 0;
  }

  Timeline.prototype.add = function (kind, name) {
    var item = document.createElement("li");
    item.className = "step step-" + kind + " step-running";
    var label = document.createElement("span");
    label.className = "step-name";
    label.textContent = name;
    var took = document.createElement("span");
    took.className = "step-took";
    took.textContent = "…";
    item.appendChild(label);
    item.appendChild(document.createTextNode(" "));
    item.appendChild(took);
    this.list.appendChild(item);
    var entry = { item: item, took: took, start: Date.now(), end: null };
    this.open.push(entry);
    return entry;
  };

  Timeline.prototype.done = function (entry, failed) {
    if (!entry || entry.end !== null) {
      return;
    }
    entry.end = Date.now();
    entry.took.textContent = seconds(entry.end - entry.start);
    entry.item.classList.remove("step-running");
    entry.item.classList.add(failed ? "step-failed" : "step-done");
    this.open = this.open.filter(function (e) {
      return e !== entry;
    });
  };

  // A response in several parts (text, then a tool call) ends with its last part.
  Timeline.prototype.stretch = function (entry) {
    if (entry.end === null) {
      this.done(entry);
      return;
    }
    entry.end = Date.now();
    entry.took.textContent = seconds(entry.end - entry.start);
  };

  Timeline.prototype.tick = function () {
    var now = Date.now();
    this.open.forEach(function (entry) {
      entry.took.textContent = seconds(now - entry.start) + "…";
    });
  };

  Timeline.prototype.closeAll = function (failed) {
    var self = this;
    this.open.slice().forEach(function (entry) {
      self.done(entry, failed);
    });
  };

  // The pages a tool found (web_fetch's page, web_search's results, an MCP tool's links).
  function foundUrls(output) {
    var found = [];
    if (!output || typeof output !== "object") {
      return found;
    }
    if (typeof output.url === "string") {
      found.push(output);
    }
    [output.results, output.links].forEach(function (list) {
      if (Array.isArray(list)) {
        list.forEach(function (page) {
          if (page && typeof page.url === "string") {
            found.push(page);
          }
        });
      }
    });
    return found.filter(function (page) {
      return /^https?:\/\//.test(page.url);
    });
  }

  function follow() {
    var state = byId("state");
    if (!state || state.getAttribute("data-running") !== "true" || !window.EventSource) {
      return;
    }
    if (following) {
      return; // one stream at a time
    }
    following = true;
    var answer = byId("answer");
    var hint = byId("no-answer");
    if (hint) {
      hint.remove();
    }
    var live = byId("live");
    var elapsed = byId("elapsed");
    var sources = byId("live-sources");
    var timeline = new Timeline(byId("timeline"));
    var seenSources = {};
    var model = null; // the model request in progress
    var tools = {}; // toolCallId -> {name, entry}
    var started = Date.parse(elapsed.getAttribute("data-started") || "");
    if (isNaN(started)) {
      started = Date.now();
    }
    live.hidden = false;
    var source = new EventSource(state.getAttribute("data-events"));
    var ended = false;

    function tick() {
      elapsed.textContent = seconds(Date.now() - started);
      timeline.tick();
    }
    tick();
    var ticking = window.setInterval(tick, TICK_MS);

    function addSource(url, title) {
      if (seenSources[url]) {
        return;
      }
      seenSources[url] = true;
      var item = document.createElement("li");
      var link = document.createElement("a");
      link.href = url;
      link.rel = "noreferrer noopener";
      link.target = "_blank";
      link.textContent = title || url;
      item.appendChild(link);
      sources.appendChild(item);
      byId("live-found").hidden = false;
    }

    // A model request ends with the last part of its response.
    function modelAnswered() {
      if (model) {
        timeline.stretch(model);
      }
    }

    function end(delay, failed) {
      if (ended) {
        return;
      }
      ended = true;
      following = false;
      source.close();
      window.clearInterval(ticking);
      tick();
      timeline.closeAll(failed);
      window.setTimeout(refresh, delay);
    }

    source.onmessage = function (message) {
      if (message.data === "[DONE]") {
        end(0);
        return;
      }
      var chunk;
      try {
        chunk = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      switch (chunk.type) {
        case "start":
          setStatus("running");
          break;
        case "start-step":
          timeline.requests += 1;
          model = timeline.add("model", "Model request " + timeline.requests);
          break;
        case "text-start":
          answer.textContent = "";
          break;
        case "text-delta":
          answer.textContent += chunk.delta;
          break;
        case "text-end":
          modelAnswered();
          break;
        case "tool-input-start":
          tools[chunk.toolCallId] = { name: chunk.toolName, entry: null };
          break;
        case "tool-input-available":
          modelAnswered();
          if (tools[chunk.toolCallId]) {
            tools[chunk.toolCallId].entry = timeline.add("tool", "Tool " + chunk.toolName);
          }
          break;
        case "tool-output-available":
          if (tools[chunk.toolCallId]) {
            timeline.done(tools[chunk.toolCallId].entry);
          }
          foundUrls(chunk.output).forEach(function (page) {
            addSource(page.url, page.title);
          });
          break;
        case "tool-output-error":
        case "tool-input-error":
          if (tools[chunk.toolCallId]) {
            timeline.done(tools[chunk.toolCallId].entry, true);
          }
          break;
        case "source-url":
          addSource(chunk.url, chunk.title);
          break;
        case "error":
          timeline.add("error", "Error: " + (chunk.errorText || "")).item.className =
            "step step-error step-failed";
          end(0, true);
          break;
        case "finish":
          end(0);
          break;
        default:
          break;
      }
    };
    // The stream broke off (a restart, a network change): look again in a moment.
    source.onerror = function () {
      end(RETRY_MS);
    };
  }

  // -- tabs of the worker page ----------------------------------------------------------

  // The tab holding the element `id` (a section's anchor, or a tab's own id); the first
  // tab when none does.
  function showTab(id) {
    var panels = document.querySelectorAll(".tab-panel");
    if (!panels.length) {
      return;
    }
    var target = id ? byId(id) : null;
    var panel = target && target.closest ? target.closest(".tab-panel") : null;
    if (!panel) {
      panel = panels[0];
    }
    panels.forEach(function (each) {
      each.classList.toggle("active", each === panel);
    });
    document.querySelectorAll("#tabs a").forEach(function (link) {
      var on = link.getAttribute("data-tab") === panel.id;
      link.classList.toggle("current", on);
      if (on) {
        link.setAttribute("aria-current", "true");
      } else {
        link.removeAttribute("aria-current");
      }
    });
  }

  function hashTarget() {
    try {
      return decodeURIComponent(window.location.hash.slice(1));
    } catch (error) {
      return "";
    }
  }

  window.addEventListener("hashchange", function () {
    showTab(hashTarget());
  });

  // -- confirm before a form that changes or destroys ------------------------------------

  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      var message = form.getAttribute ? form.getAttribute("data-confirm") : null;
      var dialog = byId("confirm-dialog");
      if (!message || form.getAttribute("data-confirmed") === "yes" || !dialog || !dialog.showModal) {
        return; // no dialog support: the form posts as it does without the script
      }
      event.preventDefault();
      var subject = form.getAttribute("data-confirm-subject");
      byId("confirm-subject").textContent = subject || "";
      byId("confirm-subject").hidden = !subject;
      byId("confirm-message").textContent = message;
      byId("confirm-ok").textContent = form.getAttribute("data-confirm-button") || "Confirm";
      dialog.returnValue = "";
      dialog.onclose = function () {
        if (dialog.returnValue === "confirm") {
          // The route acts only on a confirmed form; else it asks on a page of its own.
          var confirmed = document.createElement("input");
          confirmed.type = "hidden";
          confirmed.name = "confirmed";
          confirmed.value = "yes";
          form.appendChild(confirmed);
          form.setAttribute("data-confirmed", "yes");
          form.submit();
        }
      };
      dialog.showModal();
      byId("confirm-cancel").focus();
    },
    true
  );

  document.addEventListener("DOMContentLoaded", function () {
    showTab(hashTarget());
    follow();
    watchSchedules();
  });
})();
