// Copy buttons (data-copy="#element"): copy that element's text to the clipboard.
// Without JavaScript the buttons stay hidden (hidden, display: none) and the text is selectable as it is.
// navigator.clipboard exists only on HTTPS (or localhost); elsewhere the text is
// copied through a selected, off-screen textarea.
(function () {
  function fallback(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.left = "-9999px";
    document.body.appendChild(area);
    area.select();
    var done = false;
    try { done = document.execCommand("copy"); } catch (e) { done = false; }
    area.remove();
    return done;
  }
  function said(button, words) {
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    button.textContent = words;
    setTimeout(function () { button.textContent = label; }, 2000);
  }
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.hidden = false;
    button.style.display = "";  // the stylesheet would show a [hidden] button: it is inline
    button.addEventListener("click", function () {
      var source = document.querySelector(button.getAttribute("data-copy"));
      var text = source ? source.textContent : "";
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(
          function () { said(button, "Copied"); },
          function () { said(button, fallback(text) ? "Copied" : "Select the text and copy it"); }
        );
      } else {
        said(button, fallback(text) ? "Copied" : "Select the text and copy it");
      }
    });
  });
})();
