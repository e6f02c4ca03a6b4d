import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ArrayAux, readAuxFile, XorShiftAux } from "../src/sampling/index.js";

/**
 * Independent xorshift64* reference, closure style: the 64-bit state is kept
 * reduced with BigInt.asUintN, the u32 is the high half of the product.
 */
function referenceStream(seed: bigint): { u32: () => bigint; u: () => number } {
  let s = BigInt.asUintN(64, seed);
  const u32 = () => {
    s = s ^ (s >> 12n);
    s = BigInt.asUintN(64, s ^ (s << 25n));
    s = s ^ (s >> 27n);
    return BigInt.asUintN(64, s * 0x2545f4914f6cdd1dn) / 4294967296n;
  };
  return { u32, u: () => Number(u32() / 256n) * 2 ** -24 };
}

describe("XorShiftAux", () => {
  it("SAMP-XORSHIFT: seed 42 reproduces the reference generator's first outputs (llama2.c values)", () => {
    // Printed by llama2.c's random_u32 / random_f32 (gcc, x86-64) for seed 42.
    const recordedU32 = [1456360119, 3359763283, 3393612768, 4054632243, 3283045847, 3589475362, 877116966, 1888976411];
    const recordedU = [0.339085221, 0.782255828, 0.790136993, 0.944042623, 0.764393628, 0.835739851, 0.204219699, 0.439811587];
    const g = new XorShiftAux(42n);
    const h = new XorShiftAux(42n);
    for (let i = 0; i < recordedU32.length; i++) {
      expect(g.nextU32()).toBe(recordedU32[i]);
      const u = h.next();
      expect(u).toBe((recordedU32[i] >>> 8) / 16777216);
      expect(Number(u.toPrecision(9))).toBe(recordedU[i]);
    }
  });

  it("SAMP-XORSHIFT: the u-stream equals an independent BigInt computation (several seeds, 2000 steps)", () => {
    for (const seed of [42n, 1n, 7n, 1234n, 2n ** 63n + 12345n, 2n ** 64n - 1n]) {
      const ref = referenceStream(seed);
      const g = new XorShiftAux(seed);
      for (let i = 0; i < 2000; i++) expect(g.next()).toBe(ref.u());
      const ref2 = referenceStream(seed);
      const g2 = new XorShiftAux(seed);
      for (let i = 0; i < 50; i++) expect(BigInt(g2.nextU32())).toBe(ref2.u32());
    }
  });

  it("SAMP-XORSHIFT: outputs lie in [0, 1), are float32 values and multiples of 2^-24", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }), (seed) => {
        const g = new XorShiftAux(seed);
        for (let i = 0; i < 200; i++) {
          const u = g.next();
          expect(u >= 0 && u < 1).toBe(true);
          expect(Number.isInteger(u * 2 ** 24)).toBe(true);
          expect(Math.fround(u)).toBe(u);
        }
      }),
      { numRuns: 100 },
    );
  });

  it("SAMP-XORSHIFT: number and bigint seeds agree; invalid seeds are rejected", () => {
    const a = new XorShiftAux(1234);
    const b = new XorShiftAux(1234n);
    for (let i = 0; i < 20; i++) expect(a.next()).toBe(b.next());
    for (const bad of [0, 0n, -1, -1n, 2n ** 64n, 1.5, NaN, Infinity]) {
      expect(() => new XorShiftAux(bad as number)).toThrow(RangeError);
      expect(() => new XorShiftAux(bad as number)).toThrow(/seed must be an integer in \[1, 2\^64 - 1\]/);
    }
    expect(() => new XorShiftAux(0)).toThrow(/u = 0 forever/);
    expect(() => new XorShiftAux("42" as unknown as number)).toThrow(RangeError);
  });
});

describe("ArrayAux", () => {
  it("returns the values in order and reports exhaustion clearly", () => {
    const aux = new ArrayAux([0, 0.5, 0.999]);
    expect(aux.length).toBe(3);
    expect([aux.next(), aux.next()]).toEqual([0, 0.5]);
    expect(aux.position).toBe(2);
    expect(aux.remaining).toBe(1);
    expect(aux.next()).toBe(0.999);
    expect(() => aux.next()).toThrow("u array: needed more than 3 auxiliary variables");
    const named = new ArrayAux(new Float64Array([0.25]), "my u's");
    named.next();
    expect(() => named.next()).toThrow("my u's: needed more than 1 auxiliary variables");
  });

  it("copies its input (later changes to the array do not leak in)", () => {
    const values = [0.1, 0.2];
    const aux = new ArrayAux(values);
    values[0] = 5;
    expect(aux.next()).toBe(0.1);
  });

  it("SAMP-U-RANGE: values outside [0, 1), NaN and Infinity are rejected up front, naming the index", () => {
    for (const bad of [1, -0.1, NaN, Infinity, -Infinity, 7]) {
      expect(() => new ArrayAux([0.1, 0.2, bad])).toThrow(RangeError);
      expect(() => new ArrayAux([0.1, 0.2, bad])).toThrow(/u array: value at index 2: auxiliary variable u must be in \[0, 1\), got/);
    }
    expect(() => new ArrayAux([0.5, Infinity], "file x")).toThrow(/file x: value at index 1: .* got Infinity/);
  });
});

describe("readAuxFile", () => {
  let dir = "";
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "ptp-aux-"));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("reads one u per line, skipping blank lines and # comments (LF and CRLF)", () => {
    const path = file("ok.txt", "# u's for a test\n0.25\n\n  0.5  \n   # indented comment\n1e-3\n0\n.75\n");
    const aux = readAuxFile(path);
    expect(aux.length).toBe(5);
    expect([aux.next(), aux.next(), aux.next(), aux.next(), aux.next()]).toEqual([0.25, 0.5, 0.001, 0, 0.75]);
    expect(() => aux.next()).toThrow(`u file ${path}: needed more than 5 auxiliary variables`);
    const crlf = readAuxFile(file("crlf.txt", "0.1\r\n0.2\r\n"));
    expect([crlf.next(), crlf.next()]).toEqual([0.1, 0.2]);
    expect(readAuxFile(file("empty.txt", "")).length).toBe(0);
  });

  it("SAMP-U-RANGE: out-of-range values, NaN and Infinity are rejected with the file and line number", () => {
    const path = file("range.txt", "# header\n0.5\n1.0\n");
    expect(() => readAuxFile(path)).toThrow(RangeError);
    expect(() => readAuxFile(path)).toThrow(`${path}, line 3: auxiliary variable u must be in [0, 1), got 1`);
    expect(() => readAuxFile(file("neg.txt", "-0.25\n"))).toThrow(/neg\.txt, line 1: auxiliary variable u must be in \[0, 1\), got -0\.25/);
    expect(() => readAuxFile(file("nan.txt", "0.1\n\nNaN\n"))).toThrow(/nan\.txt, line 3: .* got NaN/);
    expect(() => readAuxFile(file("inf.txt", "Infinity\n"))).toThrow(/inf\.txt, line 1: .* got Infinity/);
    expect(() => readAuxFile(file("ninf.txt", "0.2\n-inf\n"))).toThrow(/ninf\.txt, line 2: .* got -Infinity/);
  });

  it("rejects unparsable lines with the file and line number", () => {
    const path = file("bad.txt", "0.1\n0.2\nhello\n");
    expect(() => readAuxFile(path)).toThrow(`${path}, line 3: cannot parse "hello" as a number`);
    expect(() => readAuxFile(file("two.txt", "0.1 0.2\n"))).toThrow(/two\.txt, line 1: cannot parse/);
    expect(() => readAuxFile(file("hex.txt", "0x1\n"))).toThrow(/hex\.txt, line 1: cannot parse/);
  });

  it("names the path of a missing file", () => {
    const path = join(dir, "does-not-exist.txt");
    expect(() => readAuxFile(path)).toThrow(`u file not found: ${path}`);
  });
});
