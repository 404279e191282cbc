// Drives berth's public gallery (/gallery/) in headless Chromium with playwright-core, never
// signed in. Input from environment variables set by tests/e2e/test_gallery.py; prints one
// `RESULT {...}` line with what it read, exits non-zero with a message on the first failed check.
// Screenshots go to $SHOTS (docs/console).
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const env = (k) => {
  const v = process.env[k];
  if (v === undefined) throw new Error(`missing environment variable ${k}`);
  return v;
};
const URL_ = env('BERTH_URL');
const SHOTS = env('SHOTS');
const ALIAS = env('ALIAS');
const REPO = env('REPO');
const result = { dialogs: [] };

class CheckFailed extends Error {}
function check(cond, message) {
  if (!cond) throw new CheckFailed(message);
}

async function shot(page, name, opts = {}) {
  fs.mkdirSync(opts.dir ?? SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(opts.dir ?? SHOTS, `${name}.png`), fullPage: opts.fullPage ?? true });
}

/// How far the page scrolls sideways (0: it fits the viewport).
const overflow = (page) => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);

async function run(page, context) {
  // No sign-in: the gallery answers directly, never redirecting to the console's sign-in.
  const first = await page.goto(`${URL_}/gallery/`);
  check(first.status() === 200, `gallery status ${first.status()}`);
  check(page.url() === `${URL_}/gallery/`, `redirected to ${page.url()}`);
  check((await context.cookies()).length === 0, 'the gallery sets no cookie');
  result.listed = await page.$$eval('#results [data-repository]', (els) => els.map((e) => e.dataset.repository));
  check(result.listed.includes(`${ALIAS}/${REPO}`), `the list has ${ALIAS}/${REPO}: ${result.listed}`);

  // Search by words of the description.
  await page.fill('#q', env('SEARCH'));
  await Promise.all([page.waitForURL(/\?q=/), page.click('form[role="search"] button[type="submit"]')]);
  result.found = await page.$$eval('#results [data-repository]', (els) => els.map((e) => e.dataset.repository));
  const item = page.locator(`#results [data-repository="${ALIAS}/${REPO}"]`);
  result.found_text = (await item.innerText()).replace(/\s+/g, ' ');
  await shot(page, 'gallery-search', { dir: SHOTS });

  // The repository page.
  await Promise.all([page.waitForURL(new RegExp(`/gallery/${ALIAS}/${REPO}$`)), item.locator('h2 a').click()]);
  result.title = await page.title();
  result.description = await page.innerText('#description');
  result.badges = await page.$$eval('.gallery-head .platforms .badge', (els) => els.map((e) => e.textContent));
  result.about_headings = await page.$$eval('#about h1, #about h2, #about h3', (els) => els.map((e) => e.textContent));
  result.about_text = await page.innerText('#about');
  result.usage_code = await page.$$eval('#usage pre code', (els) => els.map((e) => e.textContent));
  result.about_links = await page.$$eval('#about a', (els) => els.map((a) => ({ text: a.textContent, href: a.getAttribute('href') })));
  result.scripts_in_texts = await page.locator('#about script, #usage script, #about [onerror], #about iframe, #about img[src^="javascript"]').count();
  result.javascript_hrefs = await page.locator('a[href^="javascript" i], [src^="javascript" i]').count();
  result.tags = await page.$$eval('#tag-table tbody tr', (rows) => rows.map((r) => ({
    tag: r.dataset.tag,
    size: r.querySelector('.size').textContent,
    bytes: Number(r.querySelector('.size').dataset.bytes),
    pushed: r.querySelector('time').getAttribute('datetime'),
  })));
  result.pull_command = await page.innerText('#pull pre code');
  result.logo_width = await page.$eval('.gallery-head img.repo-logo', (img) => img.naturalWidth);
  // Whatever the texts tried, clicking the would-be link does nothing either.
  const bad = page.getByText('click me', { exact: true });
  if (await bad.count()) await bad.first().click();
  // The copy button puts the pull command on the clipboard.
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: URL_ });
  await page.click('#pull button.copy');
  await page.waitForFunction(() => document.querySelector('#pull button.copy').textContent.startsWith('Copied'));
  result.clipboard = await page.evaluate(() => navigator.clipboard.readText());
  check(page.url().endsWith(`/gallery/${ALIAS}/${REPO}`), `still on the page: ${page.url()}`);
  await shot(page, 'gallery-repository', { dir: SHOTS });

  // A phone: nothing scrolls sideways, on the repository page or the search.
  await page.setViewportSize({ width: 375, height: 812 });
  await page.reload();
  result.phone_overflow_repository = await overflow(page);
  await shot(page, 'gallery-phone', { dir: SHOTS });
  await page.goto(`${URL_}/gallery/`);
  result.phone_overflow_search = await overflow(page);
  result.viewport_meta = await page.getAttribute('meta[name="viewport"]', 'content');

  // Unknown alias or repository: the 404 page.
  const missing = await page.goto(`${URL_}/gallery/${ALIAS}/no-such-repository`);
  result.missing_status = missing.status();
  result.missing_text = await page.innerText('main');
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-gallery-chromium-'));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
    timeout: 60_000,
  });
  context.setDefaultTimeout(20_000);
  const page = context.pages()[0] ?? await context.newPage();
  const errors = [];
  // A dialog is a script that ran: recorded and dismissed.
  page.on('dialog', async (d) => { result.dialogs.push(d.message()); await d.dismiss(); });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource: the server responded with a status of 404')) errors.push(m.text());
  });
  try {
    await run(page, context);
    result.page_errors = errors;
  } catch (e) {
    try { await shot(page, 'failure-gallery', { dir: process.env.FAIL_SHOTS || os.tmpdir() }); } catch { /* ignore */ }
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
