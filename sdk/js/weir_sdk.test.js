// The SDK's plain-JavaScript behaviour (no WebAssembly): node --test sdk/js
import { test } from "node:test";
import assert from "node:assert/strict";
import { definePlugin, fetchOk, ProcessError, Record, normalizeOutputs, state, StateError, _useStateHost } from "./weir_sdk.js";

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

test("state: get, set and delete in memory, keyed by the bytes' content", () => {
  state.clear();
  assert.equal(state.get(bytes("k")), undefined);
  state.set(bytes("k"), bytes("v1"));
  state.set(new Uint8Array([107]), "v2"); // the same key as other bytes; text is UTF-8
  assert.deepEqual(state.get("k"), bytes("v2"));
  state.set(new Uint8Array([0, 255]), new Uint8Array([1]));
  assert.deepEqual(state.get(Uint8Array.from([0, 255])), new Uint8Array([1]));
  assert.equal(state.get(new Uint8Array([0, 254])), undefined);
  state.delete("k");
  assert.equal(state.get("k"), undefined);
  state.delete("never-set"); // removing a missing key is fine
  state.clear();
  assert.equal(state.get(new Uint8Array([0, 255])), undefined);
});

test("state: values are copied in and out, and only strings and bytes are keys", () => {
  state.clear();
  const value = bytes("abc");
  state.set("k", value);
  value[0] = 0;
  const read = state.get("k");
  read[1] = 0;
  assert.deepEqual(state.get("k"), bytes("abc"));
  assert.throws(() => state.get(undefined), TypeError);
  assert.throws(() => state.set("k", null), TypeError);
  assert.throws(() => state.set("k", 1), TypeError);
  assert.ok(new StateError("x") instanceof Error && !(new StateError("x") instanceof ProcessError));
  state.clear();
});

test("state in a plugin: a count per key, in memory", () => {
  state.clear();
  const plugin = definePlugin({
    process(record) {
      const previous = state.get(record.key);
      const count = (previous ? new DataView(previous.buffer).getBigUint64(0) : 0n) + 1n;
      const stored = new Uint8Array(8);
      new DataView(stored.buffer).setBigUint64(0, count);
      state.set(record.key, stored);
      return record.toOutput({ value: String(count) });
    },
  });
  const keyed = (key, offset) => ({ ...wit("x"), key: bytes(key), offset });
  const outcomes = plugin.process([keyed("a", 0n), keyed("b", 1n), keyed("a", 2n)]);
  assert.deepEqual(outcomes.map((o) => new TextDecoder().decode(o.val[0].value)), ["1", "1", "2"]);
  state.clear();
});

/** A stand-in for the host's `state` import that records the calls. */
function recordingHost({ refuse } = {}) {
  const calls = [];
  return {
    calls,
    get: (key) => (calls.push(["get", new TextDecoder().decode(key)]), undefined),
    set: (offset, key, value) => {
      calls.push(["set", offset, new TextDecoder().decode(key), new TextDecoder().decode(value)]);
      // The bindings throw a `result<_, string>` error as a ComponentError with the string as `payload`.
      if (refuse) throw Object.assign(new Error(refuse), { payload: refuse });
    },
    delete: (offset, key) => calls.push(["delete", offset, new TextDecoder().decode(key)]),
  };
}

test("state writes name the offset of the record being processed", () => {
  const host = recordingHost();
  _useStateHost(host);
  try {
    const plugin = definePlugin({
      process(record) {
        state.get(record.key);
        if (record.text() === "del") state.delete(record.key);
        else state.set(record.key, record.value);
        return null;
      },
    });
    const at = (value, offset) => ({ ...wit(value), offset });
    plugin.process([at("x", 10n), at("del", 11n), at("y", 9007199254740993n)]);
    assert.deepEqual(host.calls, [
      ["get", "k"], ["set", 10n, "k", "x"],
      ["get", "k"], ["delete", 11n, "k"],
      ["get", "k"], ["set", 9007199254740993n, "k", "y"],
    ]);
    // Outside a record (after the batch), a write has no record to belong to.
    assert.throws(() => state.set("k", "v"), (e) => e instanceof StateError && /outside process/.test(e.message));
  } finally {
    _useStateHost(undefined);
  }
});

test("a write the host refuses throws StateError and fails the record", () => {
  _useStateHost(recordingHost({ refuse: "value of 2000000 bytes over the cap of 1048576" }));
  try {
    const plugin = definePlugin({ process: (record) => (state.set("k", "v"), record.toOutput()) });
    const [outcome] = plugin.process([wit("x")]);
    assert.deepEqual(outcome, { tag: "err", val: { message: "StateError: value of 2000000 bytes over the cap of 1048576", retryable: false } });
    let caught;
    definePlugin({ process: () => { try { state.set("k", "v"); } catch (e) { caught = e; } } }).process([wit("x")]);
    assert.ok(caught instanceof StateError);
    assert.equal(caught.message, "value of 2000000 bytes over the cap of 1048576");
  } finally {
    _useStateHost(undefined);
  }
});

test("writes in init and after an await are refused, with the in-memory state too", async () => {
  state.clear();
  const setup = definePlugin({ init: () => state.set("k", "v"), process: () => null });
  assert.throws(() => setup.init([]), (e) => typeof e === "string" && /state.set in init/.test(e));
  const host = recordingHost();
  for (const backend of [undefined, host]) {
    _useStateHost(backend);
    try {
      const plugin = definePlugin({
        async process(record) {
          state.set("before", record.value); // before the first await: this record's
          await new Promise((resolve) => setTimeout(resolve, 1));
          state.set("after", record.value);
        },
      });
      const outcomes = await plugin.process([{ ...wit("a"), offset: 3n }, { ...wit("b"), offset: 4n }]);
      for (const o of outcomes) {
        assert.equal(o.tag, "err");
        assert.match(o.val.message, /^StateError: state.set after an await in process/);
      }
      // Once the batch has settled, code outside the processor may write again.
      if (backend === undefined) state.set("free", "1");
    } finally {
      _useStateHost(undefined);
    }
  }
  assert.deepEqual(host.calls, [["set", 3n, "before", "a"], ["set", 4n, "before", "b"]]);
  assert.deepEqual(state.get("before"), bytes("b"));
  assert.equal(state.get("after"), undefined);
  state.clear();
});
