// Live linter for a message box: posts the draft to /ui/lint and shows the verdict.
// Markup: <textarea data-lint="OUTPUT-ID" data-business="INPUT-ID" (or data-business-name="NAME")
// data-kind="text_back|follow_up|reply" (default text_back)>.
document.querySelectorAll("textarea[data-lint]").forEach(function (box) {
  var out = document.getElementById(box.dataset.lint);
  var business = document.getElementById(box.dataset.business || "");
  var timer;
  function check() {
    var name = business ? business.value : (box.dataset.businessName || "");
    var kind = box.dataset.kind || "text_back";
    fetch("/ui/lint?business=" + encodeURIComponent(name) + "&kind=" + encodeURIComponent(kind),
          {method: "POST", headers: {"content-type": "text/plain"}, body: box.value})
      .then(function (r) { return r.text(); })
      .then(function (html) { out.innerHTML = html; });
  }
  box.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(check, 150); });
  check();
});
