// Destructive buttons and forms (data-confirm="question") ask first; see
// nomarr_site/confirm.py. Without this script the server asks on a page of its own.
document.addEventListener("submit", function (event) {
  var form = event.target, button = event.submitter;
  var question = (button && button.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
  var added = form.querySelector("input[data-confirmed]");
  if (added) added.remove();  // from an earlier answer (the page came back from history)
  if (!question) return;
  if (!window.confirm(question)) { event.preventDefault(); return; }
  var yes = document.createElement("input");
  yes.type = "hidden"; yes.name = "confirm"; yes.value = "yes";
  yes.setAttribute("data-confirmed", "");
  form.appendChild(yes);
}, true);
