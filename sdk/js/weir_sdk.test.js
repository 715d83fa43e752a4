// The SDK's plain-JavaScript behaviour (no WebAssembly): node --test sdk/js
import { test } from "node:test";
import assert from "node:assert/strict";
import { definePlugin, fetchOk, ProcessError, Record, normalizeOutputs } from "./weir_sdk.js";

const bytes = (s) => new TextEncoder().encode(s);
const wit = (value) => ({ topic: "t", partition: 0, offset: 5n, timestamp: 7n, key: bytes("k"), value: bytes(value), headers: [{ key: "h", value: bytes("1") }] });

test("records read as text, JSON and headers", () => {
  const r = new Record({ value: '{"a": 1}', headers: [["h", "x"]] });
  assert.equal(r.text(), '{"a": 1}');
  assert.deepEqual(r.json(), { a: 1 });
  assert.deepEqual(r.header("h"), bytes("x"));
  assert.throws(() => new Record({ value: "nope" }).json(), ProcessError);
});

test("outputs are normalized", () => {
  assert.deepEqual(normalizeOutputs(null), []);
  assert.equal(normalizeOutputs({ value: "x" }).length, 1);
  assert.throws(() => normalizeOutputs("x"), TypeError);
});

test("a plugin maps records to outcomes, one per record, never throwing", () => {
  const plugin = definePlugin({
    process(record) {
      if (record.text() === "bad") throw new ProcessError("later", { retryable: true });
      if (record.text() === "boom") throw new RangeError("oops");
      return record.toOutput({ value: record.text().toUpperCase() });
    },
  });
  const [ok, retry, crash] = plugin.process([wit("hi"), wit("bad"), wit("boom")]);
  assert.equal(ok.tag, "ok");
  assert.deepEqual(ok.val[0].value, bytes("HI"));
  assert.deepEqual(ok.val[0].headers, [{ key: "h", value: bytes("1") }]);
  assert.deepEqual(retry, { tag: "err", val: { message: "later", retryable: true } });
  assert.deepEqual(crash, { tag: "err", val: { message: "RangeError: oops", retryable: false } });
});

test("init gets the configuration as an object and may refuse it", () => {
  let seen;
  definePlugin({ init: (c) => (seen = c), process: () => null }).init([["a", "1"]]);
  assert.deepEqual(seen, { a: "1" });
  const refusing = definePlugin({ init: () => { throw new Error("missing `field`"); }, process: () => null });
  assert.throws(() => refusing.init([]), (e) => e === "missing `field`");
});

test("an async process is awaited per record, a rejection failing only its record", async () => {
  const plugin = definePlugin({
    async process(record) {
      await new Promise((resolve) => setTimeout(resolve, 1));
      if (record.text() === "later") throw new ProcessError("try again", { retryable: true });
      return record.toOutput({ value: record.text().toUpperCase() });
    },
  });
  const outcomes = await plugin.process([wit("a"), wit("later")]);
  assert.equal(outcomes[0].tag, "ok");
  assert.deepEqual(outcomes[0].val[0].value, bytes("A"));
  assert.deepEqual(outcomes[1], { tag: "err", val: { message: "try again", retryable: true } });
});

test("fetchOk maps statuses and network failures to ProcessErrors", async () => {
  const real = globalThis.fetch;
  try {
    const answer = (status) => async () => new Response("x", { status });
    globalThis.fetch = answer(200);
    assert.equal((await fetchOk("http://h/")).status, 200);
    for (const [status, retryable] of [[503, true], [429, true], [404, false]]) {
      globalThis.fetch = answer(status);
      await assert.rejects(fetchOk("http://h/"), (e) => e instanceof ProcessError && e.retryable === retryable);
    }
    globalThis.fetch = async () => { throw new TypeError("NetworkError when attempting to fetch resource"); };
    await assert.rejects(fetchOk("http://h/"), (e) => e instanceof ProcessError && !e.retryable && /denied/.test(e.message));
    globalThis.fetch = async () => { throw new DOMException("timed out", "TimeoutError"); };
    await assert.rejects(fetchOk("http://h/"), (e) => e instanceof ProcessError && e.retryable);
  } finally {
    globalThis.fetch = real;
  }
});
