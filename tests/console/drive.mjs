// Drive Weir's console in headless Chromium (Debian's package) for
// tests/console.rs: open URL, wait for data, read what the page shows, click
// the first plugin's reload button, wait for its version to change, and
// print what happened as one JSON object. Any console error or page error is
// reported in `errors`. Usage: node drive.mjs URL [SCREENSHOT.png]
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  // This machine's network is closed: keep Chromium from calling out.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const errors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("console", (m) => { if (m.type() === "error") errors.push(`${m.text()} (${m.location().url})`); });
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);
  // Until the process has kept two history samples (5 s apart), so every
  // partition's lag chart has a line.
  await page.waitForFunction(() => {
    const lines = [...document.querySelectorAll("#partitions svg polyline")];
    return lines.length > 0 && lines.every((l) => (l.getAttribute("points") ?? "").includes(" "));
  }, null, { timeout: 30000 });
  const shown = await page.evaluate(() => {
    const rows = (id) => [...document.querySelectorAll(`#${id} tbody tr`)];
    const cells = (row) => [...row.cells].map((c) => c.textContent);
    return {
      ready: document.getElementById("ready").textContent,
      pipelines: rows("pipelines").map(cells),
      partitions: rows("partitions").filter((r) => r.dataset.topic).map((r) => ({
        topic: r.dataset.topic, partition: Number(r.dataset.partition),
        lag: r.querySelector('[data-field="lag"]').textContent,
        sparkline: r.querySelector("svg polyline")?.getAttribute("points") ?? "",
      })),
      failures: rows("failures").filter((r) => r.dataset.kind).map((r) => cells(r).slice(0, 3)),
      failureCharts: document.querySelectorAll("#failures svg polyline").length,
      plugins: rows("plugins").filter((r) => r.dataset.plugin).map((r) => ({
        name: r.dataset.plugin, version: r.querySelector('[data-field="version"]').textContent,
      })),
    };
  });
  // Dead letters: every one, then only a kind there is none of, then all again.
  await page.waitForFunction(() => document.querySelectorAll("#letters tbody tr[data-letter]").length > 0, null, { timeout: 30000 });
  const letters = () => page.evaluate(() => [...document.querySelectorAll("#letters tbody tr[data-letter]")]
    .map((r) => ({
      kind: r.dataset.kind,
      key: r.querySelector('[data-field="key"]').textContent,
      value: r.querySelector('[data-field="value"]').textContent,
    })));
  shown.letters = await letters();
  // Records carry the producer's bytes: none of their markup may become an element.
  shown.injected = await page.evaluate(() => document.querySelectorAll("#letters tbody img, #letters tbody b").length);
  shown.pwned = await page.evaluate(() => document.body.dataset.pwned ?? null);
  const loaded = () => page.evaluate(() => Number(document.body.dataset.lettersLoaded ?? 0));
  let count = await loaded();
  await page.selectOption("#letter-kind", "timeout");
  await page.waitForFunction((n) => Number(document.body.dataset.lettersLoaded ?? 0) > n, count, { timeout: 30000 });
  shown.timeoutLetters = await letters();
  shown.lettersStatus = await page.textContent("#letters-status");
  count = await loaded();
  await page.selectOption("#letter-kind", "");
  await page.waitForFunction((n) => Number(document.body.dataset.lettersLoaded ?? 0) > n, count, { timeout: 30000 });
  const before = shown.plugins[0]?.version;
  await page.click('#plugins tbody tr button[data-action="reload"]');
  await page.waitForFunction(
    (old) => document.querySelector('#plugins [data-field="version"]')?.textContent !== old,
    before, { timeout: 60000 });
  shown.reloaded = await page.textContent('#plugins [data-field="version"]');
  await page.waitForSelector('#reloads tbody tr[data-outcome="reloaded"]', { timeout: 10000 });
  shown.reloads = await page.evaluate(() => [...document.querySelectorAll("#reloads tbody tr[data-outcome]")]
    .map((r) => [...r.cells].slice(1).map((c) => c.textContent)));
  shown.action = await page.textContent("#action");
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  shown.errors = errors;
  console.log(JSON.stringify(shown));
} finally {
  await browser.close();
}
