// berth console: progressive enhancement only. Every page works without this script;
// it adds copy buttons, live form hints, select-all, policy templates and fields shown for some choices.
(function () {
  'use strict';

  function announce(message) {
    var live = document.getElementById('live');
    if (!live) return;
    live.textContent = '';
    window.setTimeout(function () { live.textContent = message; }, 40);
  }

  // ---- copy buttons ----
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).then(function () { return true; }, function () { return fallbackCopy(text); });
    }
    return Promise.resolve(fallbackCopy(text));
  }
  function fallbackCopy(text) {
    var ta = document.createElement('textarea');
    ta.value = text;
    ta.setAttribute('readonly', '');
    ta.style.position = 'fixed';
    ta.style.opacity = '0';
    document.body.appendChild(ta);
    ta.select();
    var ok = false;
    try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
    ta.remove();
    return ok;
  }
  document.querySelectorAll('button.copy[data-copy]').forEach(function (b) { b.hidden = false; });
  document.addEventListener('click', function (ev) {
    var b = ev.target.closest && ev.target.closest('button.copy[data-copy]');
    if (!b) return;
    copyText(b.getAttribute('data-copy')).then(function (ok) {
      var label = b.firstChild;
      if (label && label.nodeType === 3) {
        label.nodeValue = ok ? 'Copied' : 'Copy failed';
        b.classList.toggle('copied', ok);
        window.setTimeout(function () { label.nodeValue = 'Copy'; b.classList.remove('copied'); }, 1600);
      }
      announce(ok ? 'Copied to the clipboard' : 'Could not copy; select the text and copy it');
    });
  });

  // ---- fields shown for some choices (exclusion filters, KMS key) ----
  function syncShowFor() {
    document.querySelectorAll('[data-show-for]').forEach(function (el) {
      var name = el.getAttribute('data-show-from') || 'mutability';
      var form = el.closest('form') || document;
      var checked = form.querySelector('input[name="' + name + '"]:checked');
      var show = !!checked && el.getAttribute('data-show-for').split(' ').indexOf(checked.value) >= 0;
      el.hidden = !show;
      el.querySelectorAll('input, select, textarea').forEach(function (i) { i.disabled = !show; });
    });
  }
  document.addEventListener('change', function (ev) {
    if (ev.target.matches && ev.target.matches('input[type="radio"]')) syncShowFor();
  });
  syncShowFor();

  // ---- the service's validation messages, before submit ----
  document.querySelectorAll('[data-invalid-message]').forEach(function (input) {
    var check = function () {
      input.setCustomValidity('');
      if (!input.validity.valid && !input.validity.valueMissing) input.setCustomValidity(input.getAttribute('data-invalid-message'));
    };
    input.addEventListener('input', check);
    input.addEventListener('invalid', check);
  });

  // ---- selection: count, buttons that need 1..max selected (a Delete needs a deletable one) ----
  document.querySelectorAll('[data-needs-selection]').forEach(function (button) {
    var name = button.getAttribute('data-needs-selection');
    var max = Number(button.getAttribute('data-selection-max') || Infinity);
    var form = button.closest('form');
    var count = form.querySelector('#selected-count');
    var sync = function () {
      var chosen = form.querySelectorAll('input[type="checkbox"][name="' + name + '"]:checked');
      var n = chosen.length;
      var refused = button.value === 'delete' && Array.prototype.some.call(chosen, function (b) { return b.dataset.deletable === undefined; });
      button.disabled = n === 0 || n > max || refused;
      if (count) count.textContent = n ? n + ' selected' : '';
    };
    form.addEventListener('change', sync);
    sync();
  });

  // ---- select all ----
  document.querySelectorAll('input[data-select-all]').forEach(function (all) {
    var name = all.getAttribute('data-select-all');
    var form = all.closest('form');
    var boxes = function () { return form.querySelectorAll('input[type="checkbox"][name="' + name + '"]'); };
    all.hidden = false;
    var sync = function () {
      var n = 0, total = 0;
      boxes().forEach(function (b) { total++; if (b.checked) n++; });
      all.checked = n > 0 && n === total;
      all.indeterminate = n > 0 && n < total;
    };
    all.addEventListener('change', function () {
      boxes().forEach(function (b) { b.checked = all.checked; });
      sync();
    });
    form.addEventListener('change', function (ev) { if (ev.target.name === name) sync(); });
    sync();
  });

  // ---- repeatable rows (tags on the create form) ----
  document.querySelectorAll('button[data-add-row]').forEach(function (btn) {
    var container = document.getElementById(btn.getAttribute('data-add-row'));
    if (!container) return;
    btn.hidden = false;
    btn.addEventListener('click', function () {
      var rows = container.children;
      var last = rows[rows.length - 1];
      if (!last) return;
      var copy = last.cloneNode(true);
      var n = rows.length;
      copy.querySelectorAll('input').forEach(function (i) {
        i.value = '';
        i.id = i.id.replace(/\d+$/, String(n));
      });
      copy.querySelectorAll('label').forEach(function (l) {
        l.htmlFor = l.htmlFor.replace(/\d+$/, String(n));
      });
      container.appendChild(copy);
      var first = copy.querySelector('input');
      if (first) first.focus();
    });
  });

  // ---- policy editors: templates, formatting, JSON check ----
  document.addEventListener('click', function (ev) {
    var a = ev.target.closest && ev.target.closest('a[data-template]');
    if (!a) return;
    var target = document.getElementById(a.getAttribute('data-target'));
    if (!target) return;
    ev.preventDefault();
    var text = a.getAttribute('data-template');
    if (target.value.trim() && target.value.trim() !== text.trim() &&
        !window.confirm('Replace the policy in the editor with this template?')) return;
    target.value = text;
    target.focus();
    announce('Template inserted into the editor');
  });
  document.querySelectorAll('button[data-format-json]').forEach(function (b) {
    var target = document.getElementById(b.getAttribute('data-format-json'));
    if (!target) return;
    b.hidden = false;
    b.addEventListener('click', function () {
      try {
        target.value = JSON.stringify(JSON.parse(target.value), null, 2);
        showError(target, '');
      } catch (e) {
        showError(target, 'The policy is not valid JSON: ' + e.message);
      }
    });
  });
  function showError(textarea, message) {
    var box = document.getElementById(textarea.id + '-error');
    if (box) box.textContent = message;
    textarea.classList.toggle('invalid', !!message);
    if (message) textarea.setAttribute('aria-invalid', 'true'); else textarea.removeAttribute('aria-invalid');
  }
  document.querySelectorAll('form[data-json-form]').forEach(function (form) {
    form.addEventListener('submit', function (ev) {
      var ta = form.querySelector('textarea');
      if (!ta) return;
      try {
        JSON.parse(ta.value);
        showError(ta, '');
      } catch (e) {
        ev.preventDefault();
        showError(ta, 'The policy is not valid JSON: ' + e.message);
        ta.focus();
      }
    });
  });

})();
