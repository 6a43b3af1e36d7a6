// Drives Debian's chromium (headless, fresh profile) through every page of a
// running `queuectl web --allow-actions` and checks the DOM contract of
// plan 13 against the queue the caller built. tests/it/web_browser.rs runs it:
//
//   node dashboard.mjs URL SCENE_JSON SHOTS_DIR
//
// SCENE_JSON (written by the test) holds `status` (`queuectl status --json`),
// `jobs` (id -> state, from `list --json --all`), `queues` (queue -> state ->
// count), `dead` (a dead job to retry), `hostile` (a job whose command and
// output are markup), `workers` (registered worker names), `live_workers`.
//
// Live update handshake: the script prints `enqueue-more` on stdout and reads
// one line from stdin, `status`, `jobs` and `queues` as in SCENE_JSON after
// the test enqueued more jobs; the open overview must show the new counts
// without a reload.
//
// Exits 0 when every check held, 1 with the failures on stderr otherwise;
// screenshots of every page (light, dark, 375 px phone) land in SHOTS_DIR.

import { chromium } from "playwright-core";
import { mkdtempSync, readFileSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const [base, sceneFile, shotsDir] = process.argv.slice(2);
if (!base || !sceneFile || !shotsDir) {
  console.error("usage: node dashboard.mjs URL SCENE_JSON SHOTS_DIR");
  process.exit(2);
}
const scene = JSON.parse(readFileSync(sceneFile, "utf8"));
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
// A state's page may take a poll (3 s) or two to change; generous, never a
// measure of speed.
const WAIT_MS = 30_000;
const STATES = ["pending", "processing", "completed", "failed", "dead", "cancelled"];
const NAV = ["overview", "jobs", "dlq", "workers", "queues", "schedules"];

const failures = [];
function check(ok, what) {
  if (!ok) failures.push(what);
  return ok;
}
function step(what) {
  console.error(`step: ${what}`);
}

// The test's stdin, one line at a time.
const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function ask(request) {
  process.stdout.write(`${request}\n`);
  const { value, done } = await stdinLines.next();
  if (done) throw new Error(`no answer on stdin to ${request}`);
  return JSON.parse(value);
}

const profile = mkdtempSync(join(tmpdir(), "queuectl-chromium-"));
mkdirSync(shotsDir, { recursive: true });
const context = await chromium.launchPersistentContext(profile, {
  executablePath: chromiumPath,
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    // This machine's network is closed: nothing may try to reach out.
    "--disable-quic",
    "--disable-component-update",
    "--disable-sync",
  ],
  viewport: { width: 1280, height: 800 },
});

// Everything the pages do wrong, wherever it happens.
const problems = [];
const dialogs = [];
// Reported by every page through an exposed binding (survives navigation).
await context.exposeBinding("__queuectlCspViolation", ({ page }, text) => {
  problems.push(`CSP violation on ${page.url()}: ${text}`);
});
await context.addInitScript(() => {
  document.addEventListener("securitypolicyviolation", (e) => {
    window.__queuectlCspViolation(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile}:${e.lineNumber})`);
  });
});
// A confirm() a step asks for (purge asks first) is answered as the step
// says and noted there; any other dialog is script from job data.
let confirmAnswer = null;
const confirms = [];
context.on("dialog", async (dialog) => {
  if (confirmAnswer !== null && dialog.type() === "confirm") {
    confirms.push(dialog.message());
    await (confirmAnswer ? dialog.accept() : dialog.dismiss());
    return;
  }
  dialogs.push(`${dialog.type()}: ${dialog.message()} on ${dialog.page()?.url()}`);
  await dialog.dismiss();
});

const page = context.pages()[0] ?? (await context.newPage());
page.setDefaultTimeout(WAIT_MS);
page.on("console", (message) => {
  if (message.type() === "error" || message.type() === "warning") {
    problems.push(`console ${message.type()} on ${page.url()}: ${message.text()}`);
  }
});
page.on("pageerror", (error) => problems.push(`script error on ${page.url()}: ${error.message}`));
page.on("requestfailed", (request) => {
  problems.push(`request failed: ${request.url()}: ${request.failure()?.errorText}`);
});
page.on("response", (response) => {
  if (response.status() >= 400) problems.push(`${response.status()} for ${response.url()}`);
});

async function open(path, dataPage) {
  step(`open ${path}`);
  const response = await page.goto(new URL(path, base).href, { waitUntil: "load" });
  check(response?.status() === 200, `${path}: status ${response?.status()}, expected 200`);
  const shown = await page.getAttribute("body", "data-page");
  check(shown === dataPage, `${path}: body[data-page] is ${shown}, expected ${dataPage}`);
  check((await page.locator("main").count()) === 1, `${path}: no <main>`);
  for (const nav of NAV) {
    check((await page.locator(`a[data-nav="${nav}"]`).count()) >= 1, `${path}: no nav link a[data-nav="${nav}"]`);
  }
  await checkNoInjection(path);
}

// Job data is markup in this scene: it must show as text and never run.
async function checkNoInjection(path) {
  const injected = await page.evaluate(() => ({
    images: document.querySelectorAll('img[src="x"]').length,
    inlineScripts: [...document.scripts].filter((s) => !s.src).length,
    scriptsWithAlert: [...document.scripts].filter((s) => s.textContent.includes("alert(")).length,
  }));
  check(injected.images === 0, `${path}: an <img src=x> from job data became an element`);
  check(injected.inlineScripts === 0, `${path}: ${injected.inlineScripts} inline <script> element(s)`);
  check(injected.scriptsWithAlert === 0, `${path}: a <script> from job data became an element`);
}

async function text(selector) {
  const locator = page.locator(selector);
  if ((await locator.count()) === 0) return null;
  return (await locator.first().textContent()).trim();
}

async function checkCount(path, selector, expected) {
  const shown = await text(selector);
  check(shown !== null, `${path}: no ${selector}`);
  if (shown !== null) {
    check(shown === String(expected), `${path}: ${selector} shows "${shown}", expected ${expected}`);
  }
}

async function overview(status) {
  await open("/", "overview");
  for (const state of STATES) {
    await checkCount("/", `[data-count="${state}"]:not(td)`, status.counts[state]);
  }
  check((await page.locator('table[data-table="queues"]').count()) === 1, "/: no table[data-table=queues]");
  for (const [queue, counts] of Object.entries(scene.queues)) {
    const row = `table[data-table="queues"] tr[data-queue="${queue}"]`;
    check((await page.locator(row).count()) === 1, `/: no row ${row}`);
    for (const state of STATES) {
      await checkCount("/", `${row} td[data-count="${state}"]`, counts[state] ?? 0);
    }
    check((await page.locator(`[data-lag="${queue}"]`).count()) >= 1, `/: no lag [data-lag="${queue}"]`);
  }
  check((await page.locator('svg[data-chart="last-hour"]').count()) === 1, "/: no svg[data-chart=last-hour]");
  for (const stat of ["p50", "p95"]) {
    check((await page.locator(`[data-stat="${stat}"]`).count()) >= 1, `/: no [data-stat="${stat}"]`);
  }
  await checkCount("/", '[data-count="workers"]', scene.live_workers);
}

// The open overview changes without a reload once the test enqueued more.
async function liveUpdate() {
  step("live update");
  await page.evaluate(() => {
    window.__queuectlNotReloaded = true;
  });
  try {
    await page.waitForFunction(() => document.body.dataset.updated);
  } catch {
    check(false, "/: body[data-updated] never set: app.js did not poll");
  }
  const first = await page.evaluate(() => document.body.dataset.updated);
  check(!Number.isNaN(Date.parse(first)), `/: body[data-updated] "${first}" is not a timestamp`);
  const { status, jobs, queues } = await ask("enqueue-more");
  Object.assign(scene, { jobs, queues });
  try {
    await page.waitForFunction(
      ([before, pending]) =>
        document.body.dataset.updated !== before &&
        document.querySelector('[data-count="pending"]:not(td)')?.textContent.trim() === String(pending),
      [first, status.counts.pending],
    );
  } catch {
    check(false, `/: pending did not become ${status.counts.pending} without a reload (shows ${await text('[data-count="pending"]:not(td)')})`);
  }
  const kept = await page.evaluate(() => ({
    marker: window.__queuectlNotReloaded === true,
    navigations: performance.getEntriesByType("navigation").length,
  }));
  check(kept.marker && kept.navigations === 1, "/: the page reloaded instead of updating in place");
  for (const state of STATES) {
    await checkCount("/ (updated)", `[data-count="${state}"]:not(td)`, status.counts[state]);
  }
  return status;
}

async function jobs() {
  await open("/jobs", "jobs");
  const rows = await page.$$eval('table[data-table="jobs"] tr[data-job]', (trs) =>
    trs.map((tr) => [tr.dataset.job, tr.querySelector('td[data-field="state"]')?.textContent.trim()]),
  );
  check(rows.length > 0, "/jobs: no rows tr[data-job]");
  for (const [id, state] of rows) {
    check(id in scene.jobs, `/jobs: a row for job "${id}", which the queue does not have`);
    if (id in scene.jobs) check(state === scene.jobs[id], `/jobs: job ${id} shows state "${state}", expected ${scene.jobs[id]}`);
  }
  const total = Object.keys(scene.jobs).length;
  const hasNext = (await page.locator('a[data-nav="next"]').count()) > 0;
  if (!hasNext) check(rows.length === total, `/jobs: ${rows.length} rows and no next page, the queue has ${total} jobs`);

  step("filter form: state=dead");
  const filter = 'form[data-form="filter"]';
  check((await page.locator(filter).count()) === 1, "/jobs: no form[data-form=filter]");
  for (const name of ["state", "queue", "q"]) {
    check((await page.locator(`${filter} [name="${name}"]`).count()) === 1, `/jobs: the filter form has no input named ${name}`);
  }
  const stateField = page.locator(`${filter} [name="state"]`);
  if ((await stateField.evaluate((e) => e.tagName)) === "SELECT") await stateField.selectOption("dead");
  else await stateField.fill("dead");
  // As a click on its button would (the form may have none: Enter submits).
  await Promise.all([page.waitForURL(/state=dead/), page.locator(filter).evaluate((form) => form.requestSubmit())]);
  const dead = await page.$$eval('table[data-table="jobs"] tr[data-job]', (trs) =>
    trs.map((tr) => [tr.dataset.job, tr.querySelector('td[data-field="state"]')?.textContent.trim()]),
  );
  const expectedDead = Object.entries(scene.jobs).filter(([, s]) => s === "dead").map(([id]) => id).sort();
  check(
    JSON.stringify(dead.map(([id]) => id).sort()) === JSON.stringify(expectedDead),
    `/jobs?state=dead: rows ${JSON.stringify(dead.map(([id]) => id))}, expected ${JSON.stringify(expectedDead)}`,
  );

  step("filter by text: the hostile command");
  await page.goto(new URL(`/jobs?q=${encodeURIComponent("<script>")}`, base).href);
  const found = await page.$$eval('table[data-table="jobs"] tr[data-job]', (trs) => trs.map((tr) => tr.dataset.job));
  check(found.includes(scene.hostile), `/jobs?q=<script>: the hostile job ${scene.hostile} is not found (rows ${JSON.stringify(found)})`);
  await checkNoInjection("/jobs?q=<script>");
}

async function job(id, expected) {
  const path = `/jobs/${encodeURIComponent(id)}`;
  await open(path, "job");
  check((await text('[data-field="id"]')) === id, `${path}: [data-field=id] is not ${id}`);
  check((await text('[data-field="state"]')) === expected.state, `${path}: [data-field=state] is "${await text('[data-field="state"]')}", expected ${expected.state}`);
  check((await text('[data-field="command"]')) === expected.command.trim(), `${path}: [data-field=command] is "${await text('[data-field="command"]')}", expected the command as text: ${expected.command}`);
  const attempts = await page.locator('table[data-table="attempts"] tbody tr').count();
  check(attempts === expected.attempts, `${path}: ${attempts} attempt rows, expected ${expected.attempts}`);
  const output = await text('pre[data-field="output"]');
  check(output !== null && output.includes(expected.output), `${path}: pre[data-field=output] does not show "${expected.output}" as text: ${output}`);
  const journalctl = await text('code[data-field="journalctl"]');
  check(journalctl !== null && journalctl.includes(`QUEUECTL_JOB_ID=${id}`), `${path}: code[data-field=journalctl] is ${journalctl}`);
}

async function dlq(status) {
  await open("/dlq", "dlq");
  const rows = await page.$$eval('table[data-table="dlq"] tr[data-job]', (trs) =>
    trs.map((tr) => [tr.dataset.job, tr.querySelector('td[data-field="error"]')?.textContent.trim() ?? null]),
  );
  check(rows.length === status.counts.dead, `/dlq: ${rows.length} rows, status says ${status.counts.dead} dead`);
  for (const [id, error] of rows) {
    check(scene.jobs[id] === "dead", `/dlq: job ${id} is listed but is ${scene.jobs[id]}`);
    check(Boolean(error), `/dlq: job ${id} has no td[data-field=error] text`);
  }
}

// With actions on: retry the dead job from the dead letter page.
async function retry(id) {
  step(`retry ${id}`);
  const button = page.locator(`table[data-table="dlq"] tr[data-job="${id}"] button[data-action="retry"]`);
  if (!check((await button.count()) === 1, `/dlq: no retry button for dead job ${id}`)) return;
  const form = button.locator("xpath=ancestor::form[1]");
  check((await form.getAttribute("method"))?.toLowerCase() === "post", "/dlq: the retry button is not in a POST form");
  check((await form.locator('input[name="csrf"]').count()) === 1, "/dlq: the retry form has no csrf field");
  const [post] = await Promise.all([
    page.waitForRequest((request) => request.method() === "POST"),
    page.waitForNavigation({ waitUntil: "load" }),
    button.click(),
  ]);
  const answer = await post.response();
  if (!check(answer?.status() === 303, `retry: POST ${post.url()} answered ${answer?.status()}, expected 303`)) {
    // What the browser sent (its cookie left out) and what the server said.
    const { origin, referer, "sec-fetch-site": site } = await post.allHeaders();
    failures.push(`retry: the POST carried Origin ${origin}, Referer ${referer}, Sec-Fetch-Site ${site}; answer: ${(await answer?.text())?.slice(0, 300)}`);
  }
  check(new URL(page.url()).pathname === "/dlq", `retry: the answer led to ${page.url()}, not back to /dlq`);
  await page.goto(new URL("/dlq", base).href);
  check(
    (await page.locator(`table[data-table="dlq"] tr[data-job="${id}"]`).count()) === 0,
    `/dlq: job ${id} is still listed after its retry`,
  );
  const path = `/jobs/${encodeURIComponent(id)}`;
  await page.goto(new URL(path, base).href);
  const state = await text('[data-field="state"]');
  check(state === "pending", `${path}: after the retry click the job is "${state}", expected pending`);
}

async function workers() {
  await open("/workers", "workers");
  check((await page.locator('table[data-table="workers"]').count()) === 1, "/workers: no table[data-table=workers]");
  for (const name of scene.workers) {
    check((await page.locator(`tr[data-worker="${name}"]`).count()) === 1, `/workers: no row tr[data-worker="${name}"]`);
  }
}

async function table(path, dataPage, name) {
  await open(path, dataPage);
  check((await page.locator(`table[data-table="${name}"]`).count()) === 1, `${path}: no table[data-table=${name}]`);
}

// Every page light, dark and at phone width; the dark one must differ and
// a phone-wide page must not scroll sideways (tables scroll in their box).
async function screenshots(pages) {
  for (const [name, path] of pages) {
    step(`screenshots of ${path}`);
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.emulateMedia({ colorScheme: "light" });
    await page.goto(new URL(path, base).href, { waitUntil: "load" });
    const light = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    await page.screenshot({ path: join(shotsDir, `${name}.png`), fullPage: true });
    await page.emulateMedia({ colorScheme: "dark" });
    const dark = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    check(light !== dark, `${path}: the same background (${light}) in light and dark`);
    await page.screenshot({ path: join(shotsDir, `${name}-dark.png`), fullPage: true });
    await page.emulateMedia({ colorScheme: "light" });
    await page.setViewportSize({ width: 375, height: 812 });
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    check(width <= 375, `${path}: ${width} px wide at a 375 px viewport (the page scrolls sideways)`);
    await page.screenshot({ path: join(shotsDir, `${name}-phone.png`), fullPage: true });
  }
}

// With actions on: purge asks before it posts; answered no it posts
// nothing, answered yes it posts (7d old: nothing in the scene is deleted).
async function purgeAsksFirst() {
  step("purge asks first");
  await open("/dlq", "dlq");
  const button = page.locator('form[data-form="purge"] button[data-action="purge"]');
  if (!check((await button.count()) === 1, "/dlq: no purge button")) return;
  const posts = [];
  const onRequest = (request) => {
    if (request.method() === "POST") posts.push(request.url());
  };
  page.on("request", onRequest);
  try {
    confirmAnswer = false;
    await button.click();
    check(confirms.length === 1 && confirms[0].startsWith("Delete every"), `purge: asked ${JSON.stringify(confirms)}`);
    confirmAnswer = true;
    const [post] = await Promise.all([
      page.waitForRequest((request) => request.method() === "POST"),
      page.waitForNavigation({ waitUntil: "load" }),
      button.click(),
    ]);
    check(confirms.length === 2, `purge: asked ${confirms.length} times for two clicks`);
    check((await post.response())?.status() === 303, `purge: POST ${post.url()} was not answered 303`);
    // The click answered no posted nothing: only the second one did.
    check(posts.length === 1, `purge: ${posts.length} POSTs (${posts.join(", ")}) for one yes and one no`);
  } finally {
    page.off("request", onRequest);
    confirmAnswer = null;
  }
}

try {
  await overview(scene.status);
  const status = await liveUpdate();
  await jobs();
  await job(scene.hostile, scene.hostile_job);
  await dlq(status);
  await retry(scene.dead);
  await purgeAsksFirst();
  await workers();
  await table("/queues", "queues", "queues");
  await table("/schedules", "schedules", "schedules");
  await screenshots([
    ["overview", "/"],
    ["jobs", "/jobs"],
    ["job", `/jobs/${encodeURIComponent(scene.hostile)}`],
    ["dlq", "/dlq"],
    ["workers", "/workers"],
    ["queues", "/queues"],
    ["schedules", "/schedules"],
  ]);
} catch (error) {
  failures.push(`stopped at ${page.url()}: ${error.stack ?? error}`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}

failures.push(...problems, ...dialogs.map((d) => `a dialog opened (script from job data ran): ${d}`));
if (failures.length > 0) {
  console.error(`${failures.length} check(s) failed:`);
  for (const failure of failures) console.error(`- ${failure}`);
  process.exit(1);
}
console.error("all checks held");
process.exit(0);
