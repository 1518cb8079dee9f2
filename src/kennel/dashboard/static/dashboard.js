// Kennel's dashboard script. Every page works without it; on a worker's page it follows the
// turn in flight through the worker's event stream and shows the answer as it arrives, looks
// again when a schedule comes due, and copies the address and token with the Copy buttons.
(function () {
  "use strict";

  var RETRY_MS = 2000;
  // A schedule's firing is looked for this long after its due time, again every MIN_WAIT_MS
  // while it has not started, and given up STALE_MS after (the server is away, or busy).
  var DUE_SLACK_MS = 1500;
  var MIN_WAIT_MS = 2000;
  var STALE_MS = 60000;
  var MAX_WAIT_MS = 86400000; // setTimeout fires at once past 2^31 ms
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
    var log = byId("live-log");
    var hint = byId("no-answer");
    if (hint) {
      hint.remove();
    }
    var source = new EventSource(state.getAttribute("data-events"));
    var ended = false;

    function note(text) {
      var item = document.createElement("li");
      item.textContent = text;
      log.appendChild(item);
      log.hidden = false;
    }

    function end(delay) {
      if (ended) {
        return;
      }
      ended = true;
      following = false;
      source.close();
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
        case "text-start":
          answer.textContent = "";
          break;
        case "text-delta":
          answer.textContent += chunk.delta;
          break;
        case "tool-input-start":
          note("Calling " + chunk.toolName + "…");
          break;
        case "tool-output-available":
          note("A tool answered.");
          break;
        case "tool-output-error":
          note("A tool failed: " + (chunk.errorText || ""));
          break;
        case "error":
          note("Error: " + (chunk.errorText || ""));
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

  document.addEventListener("DOMContentLoaded", function () {
    follow();
    watchSchedules();
  });
})();
