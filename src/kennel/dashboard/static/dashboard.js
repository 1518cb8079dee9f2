// Kennel's dashboard script. Every page works without it; on a worker's page it follows the
// turn in flight through the worker's event stream and shows the answer as it arrives.
(function () {
  "use strict";

  var RETRY_MS = 2000;

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

  // Swap in the sections of the page as the server renders them now (state, files, usage,
  // history), keeping what the user is typing into the Run form.
  function refresh() {
    fetch(window.location.pathname + window.location.search, {
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
        ["state", "run", "history", "usage"].forEach(function (id) {
          var next = fresh.getElementById(id);
          var current = byId(id);
          if (next && current) {
            current.replaceWith(document.adoptNode(next));
          }
        });
        if (typed !== null && byId("input")) {
          byId("input").value = typed;
        }
        follow();
      })
      .catch(function () {
        // Signed out meanwhile, or the server is away: a plain reload shows which.
        window.location.reload();
      });
  }

  function follow() {
    var state = byId("state");
    if (!state || state.getAttribute("data-running") !== "true" || !window.EventSource) {
      return;
    }
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

  document.addEventListener("DOMContentLoaded", follow);
})();
