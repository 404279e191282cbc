// Drives berth's web console in headless Chromium (Debian's /usr/bin/chromium) with playwright-core.
//
//   node console.mjs <phase>     phases: create | verify | readonly
//
// Input comes from environment variables set by tests/e2e/test_console.py (BERTH_URL, REPO, …).
// Each phase prints one JSON line (`RESULT {...}`) with what it read from the pages, and exits
// non-zero with a message on the first failed check. Screenshots go to $SHOTS.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) throw new Error(`missing environment variable ${k}`);
  return v;
};
const URL_ = env('BERTH_URL');
const SHOTS = env('SHOTS');
const phase = process.argv[2];
const result = {};

class CheckFailed extends Error {}
function check(cond, message) {
  if (!cond) throw new CheckFailed(message);
}

async function launch() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-console-chromium-'));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport: { width: 1360, height: 900 },
    timeout: 60_000,
  });
  context.setDefaultTimeout(20_000);
  const page = context.pages()[0] ?? await context.newPage();
  const consoleErrors = [];
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  // Pages answered with 4xx on purpose (refusals, validation) log "Failed to load resource"; anything
  // else (script exceptions, CSP violations) is a failure.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource: the server responded with a status of 4')) {
      consoleErrors.push(m.text());
    }
  });
  return { context, page, dir, consoleErrors };
}

async function shot(page, name, opts = {}) {
  const dir = opts.dir ?? SHOTS;
  fs.mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: path.join(dir, `${name}.png`), fullPage: opts.fullPage ?? true });
}

async function signInWithKey(page, key, secret) {
  await page.goto(`${URL_}/console`);
  check(page.url().includes('/console/signin'), `unauthenticated visit should land on sign-in, got ${page.url()}`);
  await page.fill('#access_key_id', key);
  await page.fill('#secret_access_key', secret);
  await Promise.all([page.waitForURL(/\/console\/repositories/), page.click('form[aria-labelledby="key-h"] button[type="submit"]')]);
}

async function signInWithPassword(page, account, user, password) {
  await page.goto(`${URL_}/console/signin`);
  await page.fill('#account', account);
  await page.fill('#user', user);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL(/\/console\/repositories/), page.click('form[aria-labelledby="pw-h"] button[type="submit"]')]);
}

/// A POST from the page's own origin with the browser's cookie: what a forged form could send.
async function forge(page, url, fields) {
  return page.evaluate(async ({ url, fields }) => {
    const r = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
      redirect: 'manual',
    });
    return { status: r.status, body: await r.text() };
  }, { url, fields });
}

async function csrfOf(page) {
  return page.getAttribute('form[action="/console/signout"] input[name="csrf"]', 'value');
}

/// Nothing in the page's tables and forms is cut off at `width` px: no element (inputs and
/// textareas scroll by design) is wider inside than its box, no table is wider than its wrapper,
/// and every dropdown is wide enough for its longest option. Restores the viewport afterwards.
async function checkNotClipped(page, what, width = 1280) {
  const before = page.viewportSize();
  await page.setViewportSize({ width, height: 900 });
  const clipped = await page.evaluate(() => {
    const out = [];
    const ctx = document.createElement('canvas').getContext('2d');
    const name = (el) => el.tagName.toLowerCase() + (el.id ? `#${el.id}` : '') +
      (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\s+/).join('.') : '') +
      ` "${(el.textContent || '').trim().slice(0, 40)}"`;
    for (const el of document.querySelectorAll('main table, main table *, main form, main form *, main .table-wrap')) {
      if (el.closest('template, .sr-only') || el.matches('input, textarea, option')) continue;
      if (el.getClientRects().length === 0 || el.clientWidth === 0) continue; // hidden or inline
      if (el.tagName === 'SELECT') {
        const cs = getComputedStyle(el);
        ctx.font = `${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
        const widest = Math.max(0, ...Array.from(el.options, (o) => ctx.measureText(o.text).width));
        // Room for the text: the box less its padding and Chromium's ~20px arrow.
        const room = el.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight) - 20;
        if (widest > room + 1) out.push(`${name(el)}: longest option ${Math.ceil(widest)}px in ${Math.floor(room)}px`);
      } else if (el.scrollWidth > el.clientWidth + 1) {
        out.push(`${name(el)}: ${el.scrollWidth}px of content in ${el.clientWidth}px`);
      }
    }
    return out;
  });
  await page.setViewportSize(before);
  check(clipped.length === 0, `clipped at ${width}px on ${what}: ${clipped.join('; ')}`);
  result.clip_checked = [...(result.clip_checked ?? []), what];
}

// ---- phases ----

async function create(page) {
  const repo = env('REPO');
  // Sign-in page, then a wrong secret, then the right one.
  await page.goto(`${URL_}/console/signin`);
  await shot(page, 'signin', { fullPage: false });
  await page.fill('#access_key_id', env('ADMIN_KEY'));
  await page.fill('#secret_access_key', 'not-the-secret');
  await page.click('form[aria-labelledby="key-h"] button[type="submit"]');
  check(await page.locator('[role="alert"]').first().isVisible(), 'a wrong secret shows an error');
  await signInWithKey(page, env('ADMIN_KEY'), env('ADMIN_SECRET'));
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'berth_console');
  check(session && session.httpOnly && session.sameSite === 'Strict' && session.path === '/console', `session cookie attributes: ${JSON.stringify(session)}`);

  // Create repository: client-side validation first (the service's words), then the real thing.
  await page.click('a:has-text("Create repository")');
  await page.waitForURL(/\/console\/repositories\/new/);
  await page.fill('#name', 'Bad Name!');
  const invalid = await page.$eval('#name', (el) => ({ valid: el.checkValidity(), message: el.validationMessage }));
  check(!invalid.valid && invalid.message.includes('must be 2-256 characters'), `name validated before submit: ${JSON.stringify(invalid)}`);
  check(await page.locator('#filter-0').isHidden(), 'exclusion filters hidden while MUTABLE');
  await page.check('#mut-immutable_with_exclusion');
  check(await page.locator('#filter-0').isVisible(), 'exclusion filters shown for IMMUTABLE_WITH_EXCLUSION');
  await page.fill('#filter-0', 'a**b*');
  await page.fill('#name', repo);
  await page.check('#mut-immutable');
  check(await page.locator('#filter-0').isHidden(), 'exclusion filters hidden again for IMMUTABLE');
  await page.check('#scan_on_push');
  await page.fill('#tag-key-0', 'team');
  await page.fill('#tag-value-0', 'console-test');
  await shot(page, 'create-repository');
  await checkNotClipped(page, 'create form');
  await Promise.all([page.waitForURL(/\/-\/push/), page.click('form button[type="submit"]:has-text("Create repository")')]);
  check((await page.textContent('[role="status"]')).includes('Repository created'), 'created notice');

  // The same name again: the service's message, inline.
  await page.goto(`${URL_}/console/repositories/new`);
  await page.fill('#name', repo);
  await page.click('form button[type="submit"]:has-text("Create repository")');
  const dup = await page.textContent('#name-error');
  check(dup.includes('already exists'), `duplicate name error: ${dup}`);

  // Push commands.
  await page.goto(`${URL_}/console/repo/${repo}/-/push`);
  const commands = {};
  for (const step of ['login', 'build', 'tag', 'push']) {
    commands[step] = (await page.textContent(`[data-command="${step}"] pre code`)).trim();
    check(await page.locator(`[data-command="${step}"] button.copy`).isVisible(), `copy button for ${step}`);
  }
  await page.click('[data-command="push"] button.copy');
  await page.waitForFunction(() => document.getElementById('live').textContent.length > 0);
  await shot(page, 'push-commands');
  result.commands = commands;
  result.summary = await page.textContent('dl.summary');
}

async function verify(page) {
  const repo = env('REPO');
  const digest = env('DIGEST');
  const size = env('SIZE');
  await signInWithPassword(page, env('ACCOUNT'), 'admin', env('ADMIN_PASSWORD'));

  // The repositories list shows the new repository with its image.
  await page.goto(`${URL_}/console/repositories?q=${encodeURIComponent(repo)}`);
  const row = page.locator(`tr[data-repository="${repo}"]`);
  check(await row.count() === 1, 'repository listed');
  const rowText = await row.textContent();
  check(rowText.includes('Immutable') && rowText.includes('Enabled'), `row shows IMMUTABLE + scan on push: ${rowText}`);
  const count = await row.locator('[data-images]').getAttribute('data-images');
  check(count === env('EXPECT_IMAGES'), `image count ${count} (the image and its scan's SBOM referrer, if any)`);
  await page.goto(`${URL_}/console/repositories`);
  check(/^Page 1 of \d+ · \d+ repositories$/.test((await page.textContent('#page-count')).trim()), 'page count in name order');
  check(await page.getAttribute('th[data-sort="name"]', 'aria-sort') === 'ascending', 'name order shown on its header');
  await shot(page, 'repositories');
  await checkNotClipped(page, 'repository list');
  // Sortable headers: a click sorts by that column, a second click reverses it; the page count stays.
  await Promise.all([page.waitForURL(/sort=name-desc/), page.click('th[data-sort="name"] a')]);
  check(await page.getAttribute('th[data-sort="name"]', 'aria-sort') === 'descending', 'name descending on its header');
  const names = await page.$$eval('#repositories tbody tr', (rows) => rows.map((r) => r.dataset.repository));
  check(names.join() === [...names].sort().reverse().join(), `names in descending order: ${names.join()}`);
  await Promise.all([page.waitForURL(/sort=created$/), page.click('th[data-sort="created"] a')]);
  check(await page.getAttribute('th[data-sort="created"]', 'aria-sort') === 'descending', 'created newest first');
  check((await page.textContent('#page-count')).startsWith('Page 1 of '), 'page count in creation order');
  // Selection as in ECR's console: one repository for View push commands and Delete.
  await page.goto(`${URL_}/console/repositories?q=console%2F`);
  const pushButton = page.locator('#repositories-form button:has-text("View push commands")');
  const deleteRepo = page.locator('#repositories-form button:has-text("Delete")');
  check(await pushButton.isDisabled() && await deleteRepo.isDisabled(), 'list actions wait for a selection');
  await page.check(`tr[data-repository="${repo}"] input[name="repository"]`);
  check(await pushButton.isEnabled() && await deleteRepo.isEnabled(), 'one selected: both actions');
  await page.check(`tr[data-repository="${env('DOOMED')}"] input[name="repository"]`);
  check(await pushButton.isDisabled() && await deleteRepo.isDisabled(), 'two selected: neither action');
  await page.uncheck(`tr[data-repository="${env('DOOMED')}"] input[name="repository"]`);
  await Promise.all([page.waitForURL(/\/-\/push$/), pushButton.click()]);
  check(page.url().endsWith(`/console/repo/${repo}/-/push`), `View push commands opens the repository's: ${page.url()}`);
  // Delete from the list: the confirmation asks for the name; a wrong one deletes nothing.
  await page.goto(`${URL_}/console/repositories?q=console%2F`);
  await page.check(`tr[data-repository="${env('DOOMED')}"] input[name="repository"]`);
  await Promise.all([page.waitForLoadState('load'), deleteRepo.click()]);
  check((await page.textContent('#confirm-h')).includes(`Delete the repository ${env('DOOMED')}?`), 'repository delete confirmation');
  await page.fill('#confirm_name', env('DOOMED'));
  await shot(page, 'delete-repository');
  await Promise.all([page.waitForURL(/done=repository-deleted/), page.click('#confirm button:has-text("Delete repository")')]);
  check(await page.locator(`tr[data-repository="${env('DOOMED')}"]`).count() === 0, 'deleted repository gone from the list');

  // Repository page: the image with its digest and size.
  await page.goto(`${URL_}/console/repo/${repo}`);
  const img = page.locator(`tr[data-digest="${digest}"]`);
  check(await img.count() === 1, `image ${digest} listed on the repository page`);
  check(await img.locator('[data-bytes]').getAttribute('data-bytes') === size, `image size ${size}`);
  check((await img.textContent()).includes('latest'), 'tag latest');
  // The scan's SBOM (when attached) sits under its image, not as a loose untagged row.
  const referrers = Number(env('EXPECT_IMAGES')) - 1;
  check(await page.locator('#images > tbody > tr[data-digest]').count() === 1, 'one image row; referrers are nested');
  check(await page.locator(`tr.nested-row[data-parent="${digest}"] li[data-relation="referrer"]`).count() === referrers,
    `${referrers} referrer(s) under the image`);
  result.images_text = await img.textContent();
  await shot(page, 'repository');
  await checkNotClipped(page, 'repository images');
  await page.click('a:has-text("Untagged")');
  check(await page.locator(`tr[data-digest="${digest}"]`).count() === 0, 'untagged filter hides the tagged image');
  await page.click('a:has-text("Tagged")');
  check(await page.locator(`tr[data-digest="${digest}"]`).count() === 1, 'tagged filter shows it');

  // Image page.
  await page.click(`tr[data-digest="${digest}"] td.digest a`);
  await page.waitForURL(/\/-\/image\//);
  check((await page.textContent('code[data-digest]')).trim() === digest, 'image page digest');
  check(await page.getAttribute('#image-size [data-bytes]', 'data-bytes') === size, 'image page size');
  const manifest = JSON.parse(await page.textContent('#manifest'));
  check(manifest.schemaVersion === 2 && Array.isArray(manifest.layers), 'manifest JSON shown');
  // The download is the stored bytes: they hash to the image digest.
  const rawHref = await page.getAttribute('a:has-text("Download raw manifest")', 'href');
  const rawDigest = await page.evaluate(async (u) => {
    const bytes = await (await fetch(u)).arrayBuffer();
    const sum = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    return 'sha256:' + Array.from(sum, (b) => b.toString(16).padStart(2, '0')).join('');
  }, rawHref);
  check(rawDigest === digest, `raw manifest download hashes to the digest: ${rawDigest}`);
  check(await page.locator('#layers tbody tr').count() === manifest.layers.length + 1, 'config + layers listed');
  check(await page.locator('#scan-findings').count() === 1, 'scan findings section');
  result.scan_status = await page.getAttribute('#scan-findings [data-scan-status]', 'data-scan-status');
  await shot(page, 'image');
  await checkNotClipped(page, 'image page');

  // The scan's SBOM: its own page offers the document and the image it describes, no pull or scan.
  await page.click(`#referrers a[href$="${env('SBOM')}"]`);
  await page.waitForURL(/\/-\/image\//);
  const sbomText = await page.textContent('main');
  check(!sbomText.includes('docker pull') && await page.locator('button:has-text("Scan now")').count() === 0, 'no pull or scan on an SBOM');
  check((await page.getAttribute('#sbom-subject', 'href')).endsWith(`/-/image/${digest}`), 'the SBOM links to its image');
  result.sbom = await page.evaluate(async (u) => (await fetch(u)).json(), await page.getAttribute('#sbom-download', 'href'));
  await shot(page, 'sbom');
  await checkNotClipped(page, 'sbom page');

  // A multi-arch index: each platform's scan, linking to its findings; no scan of the index itself.
  const multi = env('MULTI_REPO');
  await page.goto(`${URL_}/console/repo/${multi}/-/image/${env('INDEX')}`);
  result.platform_scans = {};
  for (const row of await page.locator('#platforms tbody tr').all()) {
    const child = await row.getAttribute('data-digest');
    result.platform_scans[child] = await row.locator('[data-scan-status]').getAttribute('data-scan-status');
    check(await row.locator(`a[href$="/-/image/${child}#scan-findings"]`).count() === 1, `findings link for ${child}`);
  }
  check(await page.locator('button:has-text("Scan now")').count() === 0 && await page.locator('#scan-findings').count() === 0,
    'an index offers no scan of its own');
  await shot(page, 'image-index');
  await checkNotClipped(page, 'image index');

  // A policy naming an action ECR does not have: a warning in plain words, saved only on confirm.
  await page.goto(`${URL_}/console/repo/${multi}/-/permissions`);
  await page.fill('#policy', JSON.stringify({ Version: '2012-10-17', Statement: [{ Sid: 'PullTypo', Effect: 'Allow',
    Principal: { AWS: `arn:aws:iam::${env('ACCOUNT')}:root` }, Action: ['ecr:BatchGetImage', 'ecr:Nope'] }] }));
  await Promise.all([page.waitForLoadState('load'), page.click('button:has-text("Save policy")')]);
  check((await page.textContent('#unknown-actions')).includes('ECR has no action named ecr:Nope'), 'unknown action warning');
  await shot(page, 'policy-unknown-action');
  await Promise.all([page.waitForURL(/done=policy-saved/), page.click('button:has-text("Save anyway")')]);
  const statement = await page.textContent('#policy-statements tbody tr');
  check(statement.includes('PullTypo') && statement.includes('ecr:Nope') && statement.includes('No'), `statement table: ${statement}`);
  check(await page.locator('#policy-edit').getAttribute('open') === null, 'the JSON editor waits to be asked for');
  await checkNotClipped(page, 'permissions');

  // Permissions: invalid JSON (caught in the page), an invalid policy (the service's message), a valid one.
  await page.goto(`${URL_}/console/repo/${repo}/-/permissions`);
  check((await page.textContent('main')).includes('No repository policy yet'), 'empty state for no policy');
  await page.fill('#policy', '{"Version": "2012-10-17", "Statement": [');
  await page.click('button:has-text("Save policy")');
  check((await page.textContent('#policy-error')).includes('not valid JSON'), 'JSON syntax error shown before submit');
  check(page.url().endsWith('/-/permissions'), 'no submit with broken JSON');
  await page.fill('#policy', JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Perhaps', Principal: '*', Action: 'ecr:BatchGetImage' }] }));
  await Promise.all([page.waitForLoadState('load'), page.click('button:has-text("Save policy")')]);
  const serviceError = await page.textContent('#policy-error');
  check(serviceError.includes('Invalid repository policy provided'), `service validation message shown: ${serviceError}`);
  result.policy_error = serviceError;
  page.once('dialog', (d) => d.accept());
  await page.click('a:has-text("Read-only for everyone in this account")');
  check((await page.inputValue('#policy')).includes('aws:PrincipalAccount'), 'template inserted');
  await Promise.all([page.waitForURL(/done=policy-saved/), page.click('button:has-text("Save policy")')]);
  check((await page.textContent('[role="status"]')).includes('Repository policy saved'), 'policy saved');
  check((await page.textContent('#policy-statements')).includes('ReadOnlyForThisAccount'), 'saved policy as a statements table');
  await shot(page, 'permissions');

  // Registry policy page (admins).
  await page.goto(`${URL_}/console/registry`);
  check(await page.locator('button:has-text("Save policy")').count() === 1, 'registry policy editor for the admin');

  // Settings: tags, scanning, delete controls.
  await page.goto(`${URL_}/console/repo/${repo}/-/settings`);
  check((await page.textContent('#resource-tags')).includes('console-test'), 'resource tag from the create form');
  check(await page.isChecked('#scan_on_push'), 'scan on push checked');
  await shot(page, 'settings');

  // Lifecycle page.
  result.lifecycle = await lifecycle(page);

  // Phone width.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${URL_}/console/repositories`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `no horizontal page scroll at phone width (overflow ${overflow}px)`);
  // Key columns stay, secondary ones give way, and the table fits without scrolling sideways.
  check(await page.locator('#repositories th:has-text("Repository name")').isVisible(), 'name column at phone width');
  check(await page.locator('#repositories th:has-text("URI")').isVisible(), 'URI column at phone width');
  check(await page.locator('#repositories th:has-text("Encryption")').isHidden(), 'secondary columns hidden at phone width');
  const repoTable = await page.$eval('#repositories', (t) => t.closest('.table-wrap').scrollWidth - t.closest('.table-wrap').clientWidth);
  check(repoTable <= 1, `repositories table fits at phone width (overflow ${repoTable}px)`);
  await shot(page, 'repositories-phone', { fullPage: false });
  await page.goto(`${URL_}/console/repo/${repo}`);
  // Every tab is on screen (they wrap rather than scroll out of sight).
  const offscreen = await page.$$eval('.tabs a', (tabs) => tabs.filter((a) => {
    const r = a.getBoundingClientRect();
    return r.right > window.innerWidth + 1 || r.left < -1;
  }).map((a) => a.textContent.trim()));
  check(offscreen.length === 0, `tabs off-screen at phone width: ${offscreen.join(', ')}`);
  const imgOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(imgOverflow <= 1, `no horizontal page scroll on the repository page at phone width (overflow ${imgOverflow}px)`);
  await shot(page, 'repository-phone', { fullPage: false });
  result.phone_checked = true;
  await page.setViewportSize({ width: 1360, height: 900 });

  // Keyboard: the skip link is the first stop and leads to the content.
  await page.goto(`${URL_}/console/repositories`);
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement.classList.contains('skip')), 'skip link is first in focus order');

  // Delete the image (and its SBOM referrer, if the scan attached one) with the confirmation step.
  await page.goto(`${URL_}/console/repo/${repo}`);
  const deleteButton = page.locator('#images-form button:has-text("Delete")');
  check(await deleteButton.isDisabled(), 'delete disabled until something is selected');
  await page.check('input[data-select-all]');
  check(await page.isChecked(`tr[data-digest="${digest}"] input[name="image"]`), 'select all selects the image');
  await Promise.all([page.waitForLoadState('load'), deleteButton.click()]);
  const n = env('EXPECT_IMAGES');
  check((await page.textContent('#confirm-h')).includes(`Delete ${n} image`), `confirmation step for ${n}`);
  check((await page.textContent('.confirm-list')).includes(digest), 'confirmation lists the digest');
  await shot(page, 'delete-images');
  await Promise.all([page.waitForURL(/done=images-deleted/), page.click('section.danger-zone button:has-text("Delete")')]);
  check((await page.textContent('main')).includes('No images yet'), 'empty state after delete');
}

async function lifecycle(page) {
  // Seed 004's policy on a repository of 11 prod images; ECR's rule form adds a third rule to
  // it; a test run (preview) changes nothing; then save.
  const repo = env('LC_REPO');
  await page.goto(`${URL_}/console/repo/${repo}/-/lifecycle`);
  check((await page.textContent('main')).includes('No lifecycle policy'), 'lifecycle empty state');
  check(await page.locator('#rule-form').isVisible(), 'rule form shown');
  const policy = env('LIFECYCLE_POLICY');
  await page.fill('#lifecycle-policy', policy);
  await page.fill('#r_priority', '3');
  await page.fill('#r_description', 'Old release images');
  await page.check('#r_status_tagged');
  check(await page.locator('#r_tags').isVisible(), 'tag fields shown for tagged images');
  await page.selectOption('#r_tag_match', 'prefix');
  await page.fill('#r_tags', 'release');
  await page.selectOption('#r_count_type', 'sinceImagePushed');
  await page.fill('#r_count_number', '90');
  await checkNotClipped(page, 'lifecycle rule form');
  await Promise.all([page.waitForLoadState('load'), page.click('button:has-text("Add rule to the policy")')]);
  check((await page.textContent('#rule-added')).includes('Rule 3 was added'), 'rule added notice');
  const composed = JSON.parse(await page.inputValue('#lifecycle-policy'));
  const seed = JSON.parse(policy);
  check(composed.rules.length === 3 && JSON.stringify(composed.rules.slice(0, 2)) === JSON.stringify(seed.rules),
    `the form adds to the existing rules: ${JSON.stringify(composed)}`);
  check(await page.inputValue('#r_priority') === '4', 'the next rule gets the next priority');
  // The test run POST redirects to a GET of its result: a reload shows it again without posting.
  await Promise.all([page.waitForURL(/preview=shown/), page.click('button:has-text("Test run")')]);
  const reloaded = await page.reload();
  check(reloaded.request().method() === 'GET' && reloaded.request().redirectedFrom() === null, 'the preview result reloads as a GET');
  const summary = await page.textContent('#preview-summary');
  check(summary.includes('1 image would expire'), `preview summary: ${summary}`);
  const expected = env('LC_EXPIRES');
  check(await page.locator(`#preview-results tr[data-digest="${expected}"]`).count() === 1, 'preview names the oldest prod image');
  check((await page.textContent('#preview-results')).includes('prod-00'), 'preview shows its tag');
  check(JSON.parse(await page.inputValue('#lifecycle-policy')).rules.length === 3, 'the previewed text is back in the editor');
  await shot(page, 'lifecycle');
  await Promise.all([page.waitForURL(/done=lifecycle-saved/), page.click('button:has-text("Save lifecycle policy")')]);
  check((await page.textContent('[role="status"]')).includes('Lifecycle policy saved'), 'lifecycle policy saved');
  check((await page.textContent('#lifecycle-rules')).includes("Keep last 10 'prod' images"), 'saved rules listed');
  check((await page.textContent('#lifecycle-rules')).includes('Old release images'), 'the added rule is saved');
  return { rules: composed.rules.length, summary };
}

async function readonly(page) {
  const repo = env('REPO');
  // Admin: a POST without the CSRF token is refused.
  await signInWithKey(page, env('ADMIN_KEY'), env('ADMIN_SECRET'));
  const noToken = await forge(page, '/console/repositories', { name: `${repo}-nocsrf`, mutability: 'MUTABLE' });
  check(noToken.status === 403 && noToken.body.includes('This form has expired'), `POST without CSRF token refused: ${noToken.status}`);
  result.no_csrf_status = noToken.status;
  await page.context().clearCookies();

  await signInWithKey(page, env('RO_KEY'), env('RO_SECRET'));
  const list = await page.textContent('main');
  check(list.includes(repo), 'read-only user sees the repository');
  check(await page.locator('a:has-text("Create repository")').count() === 0, 'no create control');
  check(await page.locator('a:has-text("Registry policy")').count() === 0, 'no registry policy link');
  check(await page.locator('#repositories-form button:has-text("Delete")').count() === 0, 'no delete from the list');
  check(await page.locator('input[data-deletable]').count() === 0, 'no row offered for deletion');
  await shot(page, 'repositories-readonly');
  await page.goto(`${URL_}/console/repo/${repo}`);
  check(await page.locator('input[name="image"]').count() === 0, 'no image selection');
  check(await page.locator('#images-form button:has-text("Delete")').count() === 0, 'no delete images control');
  await page.goto(`${URL_}/console/repo/${repo}/-/settings`);
  check(await page.locator('button:has-text("Delete repository")').count() === 0, 'no delete repository control');
  check(await page.locator('button:has-text("Save tag immutability")').count() === 0, 'no mutability control');
  await page.goto(`${URL_}/console/repo/${repo}/-/permissions`);
  check(await page.locator('button:has-text("Save policy")').count() === 0, 'no policy editor');
  await page.goto(`${URL_}/console/repo/${env('MULTI_REPO')}/-/permissions`);
  check(await page.locator('#policy-statements').count() === 1, 'the policy table for a reader');
  check(await page.locator('text=Edit policy JSON').count() === 0 && await page.locator('button:has-text("Save")').count() === 0,
    'no policy editing for a reader');
  await page.goto(`${URL_}/console/repo/${repo}/-/lifecycle`);
  check(await page.locator('#rule-form').count() === 0 && await page.locator('button:has-text("Save lifecycle policy")').count() === 0,
    'no lifecycle rule form for a reader');

  // Forged POSTs with the user's own valid CSRF token: the server refuses them.
  const csrf = await csrfOf(page);
  const created = await forge(page, '/console/repositories', { csrf, name: `${repo}-forged`, mutability: 'MUTABLE' });
  check(created.status === 403 && created.body.includes('ecr:CreateRepository'), `forged create refused: ${created.status}`);
  const deleted = await forge(page, `/console/repo/${repo}/-/delete`, { csrf, confirm_name: repo, force: 'on' });
  check(deleted.status === 403 && deleted.body.includes('ecr:DeleteRepository'), `forged delete refused: ${deleted.status}`);
  result.forged_create_status = created.status;
  result.forged_delete_status = deleted.status;
}

const phases = { create, verify, readonly };

async function main() {
  if (!phases[phase]) throw new CheckFailed(`unknown phase ${phase}; use one of ${Object.keys(phases).join(', ')}`);
  const { context, page, dir, consoleErrors } = await launch();
  try {
    await phases[phase](page);
    check(consoleErrors.length === 0, `script errors in the page: ${consoleErrors.join(' | ')}`);
  } catch (e) {
    // Failure screenshots go next to the test's temporary files, not into docs/.
    try { await shot(page, `failure-${phase}`, { dir: process.env.FAIL_SHOTS || os.tmpdir() }); } catch { /* ignore */ }
    throw e;
  } finally {
    await context.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log('RESULT ' + JSON.stringify(result));
}

main().catch((e) => {
  console.error(e instanceof CheckFailed ? `CHECK FAILED: ${e.message}` : (e && e.stack) || String(e));
  process.exit(1);
});
