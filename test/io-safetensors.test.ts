import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { halfToFloat, parseSafetensors, readSafetensors, serializeSafetensors, writeSafetensors, type SafeTensor } from "../src/io/safetensors.js";
import { firstBitDifference, formatError } from "./helpers.js";

const tmp = mkdtempSync(join(tmpdir(), "io-safetensors-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const NAME = "t.safetensors";

/** A file from a header text (not padded) and a data section. */
function build(header: string, data: Uint8Array | number[] = [], headerLength?: number): Uint8Array {
  const json = new TextEncoder().encode(header);
  const d = data instanceof Uint8Array ? data : new Uint8Array(data);
  const out = new Uint8Array(8 + json.length + d.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength ?? json.length), true);
  out.set(json, 8);
  out.set(d, 8 + json.length);
  return out;
}

const u16le = (values: number[]): Uint8Array => {
  const out = new Uint8Array(2 * values.length);
  const dv = new DataView(out.buffer);
  values.forEach((v, i) => dv.setUint16(2 * i, v, true));
  return out;
};

const f32le = (values: number[]): Uint8Array => {
  const out = new Uint8Array(4 * values.length);
  const dv = new DataView(out.buffer);
  values.forEach((v, i) => dv.setFloat32(4 * i, v, true));
  return out;
};

const product = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

/** A random writable tensor: F32 (any float incl. NaN, -0, inf), I32 or U8, 0..3 dims of 0..4. */
const tensorArb: fc.Arbitrary<SafeTensor> = fc
  .record({
    dtype: fc.constantFrom("F32" as const, "I32" as const, "U8" as const),
    shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }),
  })
  .chain(({ dtype, shape }) => {
    const n = product(shape);
    if (dtype === "F32") return fc.float32Array({ minLength: n, maxLength: n }).map((data) => ({ dtype, shape, data }) as SafeTensor);
    if (dtype === "I32") return fc.int32Array({ minLength: n, maxLength: n }).map((data) => ({ dtype, shape, data }) as SafeTensor);
    return fc.uint8Array({ minLength: n, maxLength: n }).map((data) => ({ dtype, shape, data }) as SafeTensor);
  });

const tensorsArb = fc.dictionary(
  fc.string({ maxLength: 12 }).filter((s) => s !== "__metadata__"),
  tensorArb,
  { maxKeys: 6, noNullPrototype: true },
);
const metadataArb = fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 16, unit: "binary" }), {
  maxKeys: 5,
  noNullPrototype: true,
});

function expectSameTensors(parsed: Map<string, SafeTensor>, original: Record<string, SafeTensor>): void {
  expect([...parsed.keys()].sort()).toEqual(Object.keys(original).sort());
  for (const [name, t] of Object.entries(original)) {
    const p = parsed.get(name)!;
    expect(p.dtype).toBe(t.dtype);
    expect(p.shape).toEqual(t.shape);
    expect(p.data.constructor).toBe(t.data.constructor);
    expect(firstBitDifference(p.data, t.data)).toBeNull();
    // F32 bytes (NaN payloads included) survive exactly
    expect(Buffer.from(p.data.buffer, p.data.byteOffset, p.data.byteLength).equals(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))).toBe(true);
  }
}

describe("ST-ROUNDTRIP: safetensors round trip", () => {
  it("random tensors and metadata round-trip, with an 8-aligned data start, and re-serialise to the same bytes", () => {
    fc.assert(
      fc.property(tensorsArb, metadataArb, (tensors, metadata) => {
        const bytes = serializeSafetensors(tensors, metadata);
        const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
        expect((8 + n) % 8).toBe(0);
        const parsed = parseSafetensors(bytes, NAME);
        expectSameTensors(parsed.tensors, tensors);
        expect(parsed.metadata).toEqual(metadata);
        const again = serializeSafetensors(Object.fromEntries(parsed.tensors), parsed.metadata);
        expect(Buffer.from(again).equals(Buffer.from(bytes))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it("handles empty files, scalars (shape []) and zero-size tensors", () => {
    const empty = serializeSafetensors({});
    expect(parseSafetensors(empty, NAME)).toEqual({ tensors: new Map(), metadata: {} });
    const tensors: Record<string, SafeTensor> = {
      scalar: { dtype: "F32", shape: [], data: new Float32Array([3.5]) },
      none: { dtype: "F32", shape: [0], data: new Float32Array(0) },
      wide: { dtype: "I32", shape: [3, 0, 2], data: new Int32Array(0) },
      bytes: { dtype: "U8", shape: [5], data: new Uint8Array([1, 2, 3, 4, 5]) },
      a: { dtype: "U8", shape: [0, 0], data: new Uint8Array(0) },
    };
    const parsed = parseSafetensors(serializeSafetensors(tensors, { note: "" }), NAME);
    expectSameTensors(parsed.tensors, tensors);
    expect(parsed.metadata).toEqual({ note: "" });
  });

  it("is deterministic: insertion order of tensors and metadata does not matter", () => {
    const a: SafeTensor = { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) };
    const b: SafeTensor = { dtype: "U8", shape: [1], data: new Uint8Array([7]) };
    const c: SafeTensor = { dtype: "I32", shape: [1, 1], data: new Int32Array([-1]) };
    const x = serializeSafetensors({ a, b, c, "10": b, "2": c }, { z: "1", a: "2" });
    const y = serializeSafetensors({ "2": c, c, b, "10": b, a }, { a: "2", z: "1" });
    expect(Buffer.from(x).equals(Buffer.from(y))).toBe(true);
  });

  it("parsed tensors are copies, independent of the file bytes", () => {
    const bytes = serializeSafetensors({ w: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) } });
    const parsed = parseSafetensors(bytes, NAME);
    bytes.fill(0, bytes.length - 8);
    expect(Array.from(parsed.tensors.get("w")!.data)).toEqual([1, 2]);
    // Node Buffers (small ones live at an offset in a shared pool; their slice() does not copy)
    const tensors: Record<string, SafeTensor> = {
      u: { dtype: "U8", shape: [3], data: new Uint8Array([4, 5, 6]) },
      w: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) },
    };
    const buf = Buffer.concat([Buffer.from([1, 2, 3]), Buffer.from(serializeSafetensors(tensors))]).subarray(3);
    const fromBuffer = parseSafetensors(buf, NAME).tensors;
    expectSameTensors(fromBuffer, tensors);
    expect(Buffer.isBuffer(fromBuffer.get("u")!.data)).toBe(false);
    buf.fill(0);
    expectSameTensors(fromBuffer, tensors);
  });

  it("reads unaligned input and a file whose tensors are not in name order", () => {
    // a (U8, 3 bytes) then z (F32 at byte 3: unaligned) laid out as written by hand
    const header = '{"z":{"dtype":"F32","shape":[2],"data_offsets":[3,11]},"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}';
    const file = build(header, [9, 8, 7, ...f32le([1.5, -2])]);
    const shifted = new Uint8Array(file.length + 1).subarray(1);
    shifted.set(file);
    const parsed = parseSafetensors(shifted, NAME);
    expect(Array.from(parsed.tensors.get("a")!.data)).toEqual([9, 8, 7]);
    expect(Array.from(parsed.tensors.get("z")!.data)).toEqual([1.5, -2]);
  });
});

describe("ST-BYTES: safetensors bytes", () => {
  it("writes a hand-checked file byte by byte", () => {
    const bytes = serializeSafetensors(
      {
        b: { dtype: "F32", shape: [2], data: new Float32Array([1, -2]) },
        a: { dtype: "U8", shape: [3], data: new Uint8Array([1, 2, 3]) },
        c: { dtype: "I32", shape: [1, 1], data: new Int32Array([-2]) },
      },
      { version: "1", author: "me" },
    );
    const json = '{"__metadata__":{"author":"me","version":"1"},' + '"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},' + '"b":{"dtype":"F32","shape":[2],"data_offsets":[3,11]},' + '"c":{"dtype":"I32","shape":[1,1],"data_offsets":[11,15]}}';
    const padded = Math.ceil(json.length / 8) * 8;
    expect(padded).toBeGreaterThan(json.length); // the padding is exercised
    const expected = new Uint8Array(8 + padded + 15);
    new DataView(expected.buffer).setBigUint64(0, BigInt(padded), true);
    expected.set(new TextEncoder().encode(json.padEnd(padded, " ")), 8);
    expected.set([1, 2, 3], 8 + padded);
    expected.set([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0], 8 + padded + 3); // 1.0f, -2.0f
    expected.set([0xfe, 0xff, 0xff, 0xff], 8 + padded + 11); // int32 -2
    expect(Array.from(bytes)).toEqual(Array.from(expected));
    // The header length is an unsigned 64-bit integer: its high bytes are 0.
    expect(Array.from(bytes.subarray(4, 8))).toEqual([0, 0, 0, 0]);
    expect(bytes[0]).toBe(padded);
  });

  it("writes an empty file as {} padded to 8 bytes", () => {
    const bytes = serializeSafetensors({}, {});
    expect(Array.from(bytes)).toEqual([8, 0, 0, 0, 0, 0, 0, 0, ...new TextEncoder().encode("{}      ")]);
  });
});

/** [bits, value] of +0, -0, +Infinity and -Infinity in a 16-bit format whose +Infinity is `inf`. */
function zerosAndInfinities(inf: number): [number, number][] {
  return [
    [0x0000, 0],
    [0x8000, -0],
    [inf, Infinity],
    [inf | 0x8000, -Infinity],
  ];
}

/** A file of one 16-bit tensor `name` holding the cases' bits, then the NaNs' (`meta`: header text before the tensor). */
function halfFile(name: string, dtype: string, cases: [number, number][], nans: number[], meta = "") {
  const bits = [...cases.map(([b]) => b), ...nans];
  const header = `{${meta}"${name}":{"dtype":"${dtype}","shape":[${bits.length}],"data_offsets":[0,${2 * bits.length}]}}`;
  return { bits, file: parseSafetensors(build(header, u16le(bits)), NAME) };
}

describe("ST-HALF: safetensors F16 and BF16", () => {
  it("decodes hand-built F16 values", () => {
    const cases: [number, number][] = [
      [0x3c00, 1],
      [0xc100, -2.5],
      [0x7bff, 65504],
      [0xfbff, -65504],
      [0x0001, 2 ** -24], // smallest subnormal
      [0x03ff, 1023 * 2 ** -24], // largest subnormal
      [0x0400, 2 ** -14], // smallest normal
      [0x3555, 0.333251953125],
      ...zerosAndInfinities(0x7c00),
    ];
    const nans = [0x7e00, 0x7c01, 0xfe00];
    const { bits, file } = halfFile("h", "F16", cases, nans);
    const t = file.tensors.get("h")!;
    expect(t.dtype).toBe("F16");
    expect(t.shape).toEqual([bits.length]);
    expect(t.data).toBeInstanceOf(Float32Array);
    cases.forEach(([b, v], i) => expect(Object.is(t.data[i], v), `0x${b.toString(16)} -> ${t.data[i]}, expected ${v}`).toBe(true));
    for (let i = cases.length; i < bits.length; i++) expect(Number.isNaN(t.data[i])).toBe(true);
    for (const [b, v] of cases) expect(Object.is(halfToFloat(b), v)).toBe(true);
  });

  it("decodes every F16 value exactly (compared with float32 arithmetic)", () => {
    for (let h = 0; h < 0x10000; h++) {
      const v = halfToFloat(h);
      const exp = (h >> 10) & 0x1f;
      if (exp === 0x1f && (h & 0x3ff) !== 0) expect(Number.isNaN(v)).toBe(true);
      else expect(Math.fround(v)).toBe(v); // representable in float32, so the widening is exact
    }
  });

  it("decodes hand-built BF16 values", () => {
    const cases: [number, number][] = [
      [0x3f80, 1],
      [0xc020, -2.5],
      [0x477f, 65280], // 65504 is not a bfloat16; its neighbours are 65280 and 65536
      [0x4780, 65536],
      [0x7f7f, 3.3895313892515355e38], // largest finite
      [0x0001, 2 ** -133], // smallest subnormal
      [0x007f, 127 * 2 ** -133], // largest subnormal
      [0x0080, 2 ** -126], // smallest normal
      ...zerosAndInfinities(0x7f80),
    ];
    const nans = [0x7fc0, 0xffc1, 0x7f81];
    const { bits, file } = halfFile("b", "BF16", cases, nans, '"__metadata__":{"k":"v"},');
    const t = file.tensors.get("b")!;
    expect(file.metadata).toEqual({ k: "v" });
    expect(t.dtype).toBe("BF16");
    expect(t.data).toBeInstanceOf(Float32Array);
    cases.forEach(([b, v], i) => expect(Object.is(t.data[i], v), `0x${b.toString(16)} -> ${t.data[i]}, expected ${v}`).toBe(true));
    for (let i = cases.length; i < bits.length; i++) expect(Number.isNaN(t.data[i])).toBe(true);
    // the NaN payload is kept: the float32 bits are the bfloat16 bits shifted up
    const f32bits = new Uint32Array(new Float32Array(t.data as Float32Array).buffer);
    nans.forEach((b, j) => expect(f32bits[cases.length + j]).toBe((b << 16) >>> 0));
  });

  it("decodes a file mixing F16, BF16, F32 and I32", () => {
    const data = new Uint8Array([...u16le([0x3c00, 0xc100]), ...u16le([0x3f80]), ...f32le([0.25]), 5, 0, 0, 0]);
    const header = '{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[4,6]},' + '"f":{"dtype":"F32","shape":[1],"data_offsets":[6,10]},"i":{"dtype":"I32","shape":[],"data_offsets":[10,14]}}';
    const t = parseSafetensors(build(header, data), NAME).tensors;
    expect(Array.from(t.get("h")!.data)).toEqual([1, -2.5]);
    expect(Array.from(t.get("b")!.data)).toEqual([1]);
    expect(Array.from(t.get("f")!.data)).toEqual([0.25]);
    expect(t.get("i")!.data).toBeInstanceOf(Int32Array);
    expect(Array.from(t.get("i")!.data)).toEqual([5]);
  });
});

describe("ST-ERRORS: safetensors errors", () => {
  const entry = (dtype: string, shape: number[], begin: number, end: number): string => JSON.stringify({ dtype, shape, data_offsets: [begin, end] });
  const problem = (bytes: Uint8Array): string => formatError(() => parseSafetensors(bytes, NAME), NAME).problem;

  it("refuses files shorter than 8 bytes", () => {
    expect(problem(new Uint8Array(0))).toMatch(/file is 0 bytes, shorter than the 8-byte/);
    expect(problem(new Uint8Array(7))).toMatch(/file is 7 bytes/);
  });

  it("refuses a header length beyond the file", () => {
    expect(problem(build("{}", [], 100))).toMatch(/header length 100 goes beyond the end of the file \(10 bytes/);
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 0xffffffffffffffffn, true);
    expect(problem(huge)).toMatch(/header length 18446744073709551615 goes beyond/);
  });

  it("ST-HUGE-NUMBERS: offsets and dimensions past 2^53 - 1 are named as such, and a non-finite number shows as itself", () => {
    expect(problem(build('{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4611686018427387904]}}'))).toMatch(/data_offsets \[0,4611686018427388000\] reach past 2\^53 - 1 bytes/);
    expect(problem(build('{"t":{"dtype":"F32","shape":[1e20],"data_offsets":[0,4]}}'))).toMatch(/shape \[100000000000000000000\] has a dimension past 2\^53 - 1/);
    expect(problem(build('{"t":{"dtype":"F32","shape":[1e400],"data_offsets":[0,4]}}'))).toMatch(/shape \[Infinity\] must hold non-negative integers, found Infinity/);
  });

  it("refuses headers that are not JSON objects", () => {
    expect(problem(build("{not json"))).toMatch(/header is not valid JSON/);
    expect(problem(build(""))).toMatch(/header is not valid JSON/);
    expect(problem(build("[1, 2]"))).toMatch(/header must be a JSON object, found an array/);
    expect(problem(build("3"))).toMatch(/header must be a JSON object, found 3/);
    expect(problem(build("null"))).toMatch(/header must be a JSON object, found null/);
    const bad = build("{}");
    bad[9] = 0xff;
    expect(problem(bad)).toMatch(/header is not valid UTF-8/);
  });

  it("refuses malformed tensor entries", () => {
    expect(problem(build('{"w": 3}'))).toMatch(/tensor "w": expected an object with dtype, shape and data_offsets, found 3/);
    expect(problem(build('{"w":{"shape":[1],"data_offsets":[0,4]}}', [0, 0, 0, 0]))).toMatch(/tensor "w": missing "dtype"/);
    expect(problem(build('{"w":{"dtype":"F32","data_offsets":[0,4]}}', [0, 0, 0, 0]))).toMatch(/tensor "w": missing "shape"/);
    expect(problem(build('{"w":{"dtype":"F32","shape":[1]}}', [0, 0, 0, 0]))).toMatch(/tensor "w": missing "data_offsets"/);
    expect(problem(build('{"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}', [0, 0, 0, 0]))).toMatch(/dtype must be a string, found 4/);
    expect(problem(build('{"w":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}', [0, 0, 0, 0]))).toMatch(/shape must be an array/);
    expect(problem(build('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}', [0, 0, 0, 0]))).toMatch(/data_offsets must be an array \[begin, end\], found \[0\]/);
    expect(problem(build('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,"4"]}}', [0, 0, 0, 0]))).toMatch(/must be non-negative integers/);
    expect(problem(build('{"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}', [0, 0, 0, 0]))).toMatch(/must be non-negative integers/);
    expect(problem(build('{"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}', [0, 0, 0, 0]))).toMatch(/\[4, 0\] end before they begin/);
  });

  it("refuses unknown and unsupported dtypes", () => {
    expect(problem(build(`{"w":${entry("F128", [1], 0, 16)}}`, new Uint8Array(16)))).toMatch(/tensor "w": unknown dtype "F128"/);
    expect(problem(build(`{"w":${entry("toString", [1], 0, 16)}}`, new Uint8Array(16)))).toMatch(/unknown dtype "toString"/);
    expect(problem(build(`{"w":${entry("F64", [1], 0, 8)}}`, new Uint8Array(8)))).toMatch(/dtype F64 is not supported \(supported: F32, F16, BF16, I32, U8\)/);
  });

  it("refuses negative or non-integer shapes", () => {
    expect(problem(build(`{"w":${entry("U8", [-1], 0, 0)}}`))).toMatch(/tensor "w": shape \[-1\] must hold non-negative integers, found -1/);
    expect(problem(build(`{"w":${entry("U8", [1.5, 2], 0, 3)}}`, [0, 0, 0]))).toMatch(/shape \[1.5,2\] must hold non-negative integers, found 1.5/);
    expect(problem(build('{"w":{"dtype":"U8","shape":["2"],"data_offsets":[0,2]}}', [0, 0]))).toMatch(/must hold non-negative integers, found "2"/);
  });

  it("refuses a byte span that does not match the shape", () => {
    expect(problem(build(`{"w":${entry("F32", [2], 0, 4)}}`, [0, 0, 0, 0]))).toMatch(/tensor "w": data_offsets \[0, 4\] span 4 bytes but dtype F32 with shape \[2\] needs 8 bytes/);
    expect(problem(build(`{"w":${entry("BF16", [3, 2], 0, 6)}}`, new Uint8Array(6)))).toMatch(/needs 12 bytes/);
  });

  it("refuses offsets outside the data section (truncated data)", () => {
    expect(problem(build(`{"w":${entry("F32", [2], 0, 8)}}`, [0, 0, 0, 0]))).toMatch(/tensor "w": data_offsets \[0, 8\] lie outside the data section \(4 bytes after the \d+-byte header; truncated\?\)/);
  });

  it("refuses overlapping tensors", () => {
    const header = `{"a":${entry("F32", [2], 0, 8)},"b":${entry("F32", [2], 4, 12)}}`;
    expect(problem(build(header, new Uint8Array(12)))).toMatch(/tensor "b" \(bytes \[4, 12\]\) overlaps tensor "a" \(bytes \[0, 8\]\)/);
    const same = `{"a":${entry("U8", [4], 0, 4)},"b":${entry("U8", [4], 0, 4)}}`;
    expect(problem(build(same, new Uint8Array(4)))).toMatch(/tensor "b" \(bytes \[0, 4\]\) overlaps tensor "a"/);
  });

  it("refuses data bytes that belong to no tensor", () => {
    const gap = `{"a":${entry("U8", [4], 0, 4)},"b":${entry("U8", [4], 8, 12)}}`;
    expect(problem(build(gap, new Uint8Array(12)))).toMatch(/data section bytes \[4, 8\) belong to no tensor \(the layout must be dense\)/);
    expect(problem(build(`{"a":${entry("U8", [4], 4, 8)}}`, new Uint8Array(8)))).toMatch(/data section bytes \[0, 4\) belong to no tensor/);
    expect(problem(build(`{"a":${entry("U8", [4], 0, 4)}}`, new Uint8Array(7)))).toMatch(/data section has 3 bytes after the last tensor \(bytes \[4, 7\)\) that belong to no tensor/);
    expect(problem(build("{}", [1]))).toMatch(/data section has 1 bytes after the last tensor/);
  });

  it("refuses metadata that is not an object of strings", () => {
    expect(problem(build('{"__metadata__":{"a":"x","n":3}}'))).toMatch(/metadata value of "n" must be a string, found 3/);
    expect(problem(build('{"__metadata__":["a"]}'))).toMatch(/"__metadata__" must be an object of strings, found \["a"\]/);
    expect(problem(build('{"__metadata__":"a"}'))).toMatch(/"__metadata__" must be an object of strings/);
  });

  it("ST-HEADER-UTF8: refuses a header that starts with a UTF-8 byte-order mark (as serde_json does) or is not strict UTF-8, naming the file", () => {
    const raw = (header: number[] | Uint8Array): Uint8Array => {
      const out = new Uint8Array(8 + header.length);
      new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
      out.set(header, 8);
      return out;
    };
    const utf8 = (text: string): number[] => Array.from(new TextEncoder().encode(text));
    const BOM = [0xef, 0xbb, 0xbf];
    const oneTensor = '{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}';
    expect(parseSafetensors(build(oneTensor, [7]), NAME).tensors.get("w")!.data).toEqual(Uint8Array.of(7));
    expect(problem(build(`\ufeff${oneTensor}`, [7]))).toBe("safetensors header starts with a UTF-8 byte-order mark (EF BB BF); the header must be bare JSON (the reference reader refuses a BOM too)");
    expect(problem(raw([...BOM, ...utf8("{}")]))).toMatch(/byte-order mark/);
    expect(problem(raw([...BOM, ...BOM, ...utf8("{}")]))).toMatch(/byte-order mark/);
    // Not UTF-8: a stray 0xFF, a lone continuation byte, an overlong "/", an encoded surrogate, a cut sequence, a UTF-16 BOM.
    for (const bad of [[0xff], [0x80], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82]]) {
      expect(problem(raw([...utf8('{"__metadata__":{"a":"'), ...bad, ...utf8('"}}')])), bad.join(" ")).toBe("safetensors header is not valid UTF-8");
    }
    expect(problem(raw([0xff, 0xfe, ...utf8("{}")]))).toBe("safetensors header is not valid UTF-8");
    // U+FEFF inside a string is an ordinary character.
    expect(parseSafetensors(build('{"__metadata__":{"a":"\ufeffx"}}'), NAME).metadata).toEqual({ a: "\ufeffx" });
    const path = join(tmp, "bom.safetensors");
    writeFileSync(path, raw([...BOM, ...utf8("{}")]));
    expect(formatError(() => readSafetensors(path), path).problem).toMatch(/byte-order mark/);
  });

  it("readSafetensors names the path of a missing file", () => {
    const path = join(tmp, "missing.safetensors");
    expect(formatError(() => readSafetensors(path), path).problem).toMatch(/file does not exist \(expected a safetensors file\)/);
  });

  it("writing refuses inconsistent tensors", () => {
    const f = (t: SafeTensor): Uint8Array => serializeSafetensors({ w: t });
    expect(() => f({ dtype: "F32", shape: [3], data: new Float32Array(2) })).toThrow(/tensor "w": shape \[3\] has 3 elements but the data has 2/);
    expect(() => f({ dtype: "U8", shape: [2, 2], data: new Uint8Array(5) })).toThrow(/shape \[2, 2\] has 4 elements but the data has 5/);
    expect(() => f({ dtype: "F32", shape: [-1], data: new Float32Array(0) })).toThrow(/shape \[-1\] must be an array of non-negative integers/);
    expect(() => f({ dtype: "F32", shape: [2], data: new Int32Array(2) })).toThrow(/dtype F32 needs a Float32Array/);
    expect(() => f({ dtype: "F16", shape: [2], data: new Float32Array(2) })).toThrow(/writing dtype F16 is not supported/);
    expect(() => serializeSafetensors({ __metadata__: { dtype: "U8", shape: [0], data: new Uint8Array(0) } })).toThrow(/reserved/);
    expect(() => serializeSafetensors({}, { a: 3 as unknown as string })).toThrow(/metadata value of "a" must be a string/);
  });
});

describe("ST-FILES: safetensors files", () => {
  it("writes atomically and reads back", () => {
    const path = join(tmp, "a.safetensors");
    const tensors: Record<string, SafeTensor> = { w: { dtype: "F32", shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) } };
    writeSafetensors(path, tensors, { m: "x" });
    expect(existsSync(`${path}.tmp`)).toBe(false);
    expect(readdirSync(tmp)).toContain("a.safetensors");
    const parsed = readSafetensors(path);
    expectSameTensors(parsed.tensors, tensors);
    expect(parsed.metadata).toEqual({ m: "x" });
    expect(Buffer.from(readFileSync(path)).equals(Buffer.from(serializeSafetensors(tensors, { m: "x" })))).toBe(true);
    // a failed write leaves the old file and no temporary file
    expect(() => writeSafetensors(path, { w: { dtype: "F32", shape: [3], data: new Float32Array(2) } })).toThrow();
    expect(existsSync(`${path}.tmp`)).toBe(false);
    expect(readSafetensors(path).metadata).toEqual({ m: "x" });
  });
});
