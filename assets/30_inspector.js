/* Frame inspector: the arrow keys step a frame, and the URL follows the frame (no inline script: CSP). */
window.dash_clientside = Object.assign({}, window.dash_clientside, {
  bagboard: Object.assign({}, (window.dash_clientside || {}).bagboard, {
    // Put the inspected frame's time in the address bar without a navigation: the URL can be shared,
    // and nothing re-renders (dcc.Location only reacts to its own pushes and to back/forward).
    replaceSearch: function (search) {
      if (typeof search === "string" && search !== window.location.search) {
        window.history.replaceState(window.history.state, "", window.location.pathname + search);
      }
      return search;
    },
  }),
});

document.addEventListener("keydown", function (event) {
  if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) {
    return;
  }
  var id = { ArrowLeft: "ra-fi-prev", ArrowRight: "ra-fi-next" }[event.key];
  var target = event.target;
  var typing = target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  var sliding = target && target.getAttribute && target.getAttribute("role") === "slider";
  if (!id || typing || sliding) {
    return;
  }
  var button = document.getElementById(id);
  if (!button || button.disabled || button.offsetParent === null) {
    return; // no inspector on this page, or it is hidden
  }
  event.preventDefault();
  button.click();
});
