// examples/chat in a real browser: Debian's chromium driven by playwright-core (from
// the lockfile), on a closed network. Two pages served by different processes: a
// line typed in one appears in the other, and both lines show in a third page
// opened later. The page loads nothing but its own files. A tab whose process is
// killed reconnects to another and shows the history again. A screenshot goes to
// $CHAT_OUTPUT_DIR/chat_browser.png. Run by ctest (tests/chat/CMakeLists.txt).
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";

import { Chat, outputDir, requirePackage } from "./chat_support.mjs";

const { chromium } = await requirePackage("playwright-core");
const executablePath = process.env.CHAT_CHROMIUM ?? "/usr/bin/chromium";
if (!existsSync(executablePath)) {
  throw new Error(`no chromium at ${executablePath}: install Debian's (scripts/bootstrap.sh test does), ` +
                  "or point CHAT_CHROMIUM at one");
}
// Without the background-networking flags chromium tries to reach Google's hosts at
// every start, which a closed network refuses.
const args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync"];

let chat;
let browser;
const tabs = [];  // { page, node, pid } of the first test's tabs
let profile;
const requests = [];

before(async () => {
  chat = await Chat.start(2);
  profile = mkdtempSync(path.join(tmpdir(), "chat-chromium-"));  // a new empty --user-data-dir
  browser = await chromium.launchPersistentContext(profile, { executablePath, headless: true, args,
                                                              viewport: { width: 900, height: 560 } });
  browser.on("request", (request) => requests.push(request.url()));
});

after(async () => {
  await browser?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  const exit = await chat?.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, `the chat's graceful stop; it said:\n${chat?.stderr}`);
  // Under the asan preset: no process reported an error, a leak or undefined behaviour.
  assert.doesNotMatch(chat?.stderr ?? "", /Sanitizer|runtime error:/);
});

// A new tab on the chat, once its WebSocket is welcomed: which process serves it.
async function openPage() {
  const page = await browser.newPage();
  await page.goto(chat.url);
  await page.waitForSelector("#served:not([data-node=''])", { timeout: 10000 });
  const node = Number(await page.getAttribute("#served", "data-node"));
  const pid = Number(await page.getAttribute("#served", "data-pid"));
  assert.match(await page.textContent("#served"), new RegExp(`node ${node} \\(pid ${pid}\\)`));
  return { page, node, pid };
}

async function say(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
}

function lineSelector(from, text) {
  return `#messages li.message:has(.from:text-is("${from}")):has-text("${text}")`;
}

test("a line typed in a tab of one process appears in a tab of another, and in a later tab's history", async () => {
  const first = await openPage();
  let second;
  for (let attempt = 0; attempt < 60 && !second; ++attempt) {
    const candidate = await openPage();
    if (candidate.node !== first.node) second = candidate;
    else await candidate.page.close();
  }
  assert.ok(second, `every tab was served by node ${first.node}`);
  assert.notEqual(second.pid, first.pid);

  await first.page.fill("#name", "alice");
  await first.page.click("#nick button");
  await second.page.waitForSelector('#online li:text-is("alice")', { timeout: 10000 });
  await say(first.page, "hello from the first tab");
  await second.page.waitForSelector(lineSelector("alice", "hello from the first tab"), { timeout: 10000 });
  assert.match(await second.page.textContent("#messages"), new RegExp(`node ${first.node} alice`));

  await second.page.fill("#name", "bob");
  await second.page.click("#nick button");
  await say(second.page, "and hello back from the second");
  await first.page.waitForSelector(lineSelector("bob", "and hello back from the second"), { timeout: 10000 });

  const third = await openPage();
  const lines = await third.page.$$eval("#messages li.message", (items) => items.map((item) => item.textContent));
  assert.equal(lines.length, 2, JSON.stringify(lines));
  assert.match(lines[0], /alice: hello from the first tab$/);
  assert.match(lines[1], /bob: and hello back from the second$/);
  const online = await third.page.$$eval("#online li", (items) => items.map((item) => item.textContent));
  assert.ok(online.includes("alice") && online.includes("bob"), JSON.stringify(online));

  await second.page.screenshot({ path: path.join(outputDir, "chat_browser.png") });
  tabs.push(first, second, third);
  // Nothing but the chat's own page, files and WebSocket.
  const foreign = requests.filter((url) => !url.startsWith(chat.url) && !url.startsWith(`ws://127.0.0.1:${chat.port}/`));
  assert.deepEqual(foreign, []);
  assert.ok(requests.some((url) => url.endsWith("/chat.js")) && requests.some((url) => url.endsWith("/chat.css")));
});

test("a tab whose process is killed reconnects to another process and shows the room again", async () => {
  const tab = tabs.find((t) => t.node !== 0);  // node 0 is the master: a worker's tab
  assert.ok(tab, "no tab was served by a worker");
  const ready = chat.readyCount();
  process.kill(tab.pid, "SIGKILL");
  await tab.page.waitForSelector(`#served:not([data-node='']):not([data-node='${tab.node}'])`, { timeout: 20000 });
  const node = Number(await tab.page.getAttribute("#served", "data-node"));
  assert.notEqual(node, tab.node);
  const lines = await tab.page.$$eval("#messages li.message", (items) => items.map((item) => item.textContent));
  assert.equal(lines.length, 2, JSON.stringify(lines));
  assert.match(lines[0], /alice: hello from the first tab$/);
  await chat.waitForReady(ready + 1);  // the replacement, so that the stop below stops it too
});
